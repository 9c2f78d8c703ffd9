package loadgen

import (
	"cmp"
	"math"
	"slices"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/workload"
)

// Histogram range: 1 µs to 1 hour in nanoseconds, 3 significant digits. Values outside
// are clamped, so a pathological stall is recorded at the ceiling rather than lost.
const (
	histLowest  = int64(time.Microsecond)
	histHighest = int64(time.Hour)
	histSigFigs = 3
)

func newHist() *hdr.Histogram { return hdr.New(histLowest, histHighest, histSigFigs) }

func recordClamped(h *hdr.Histogram, v int64) {
	_ = h.RecordValue(min(max(v, histLowest), histHighest))
}

// sample is one finished operation. Times are nanoseconds since the run's start.
type sample struct {
	intended int64 // when the arrival was due (latency counts from here)
	start    int64 // when a worker picked it up (schedule lag = start - intended)
	sent     int64 // when it had a connection and was sent (service time from here)
	end      int64
	op       uint16
	class    Class
	flags    uint8
	tries    uint8 // attempts made in all
	failed   uint8 // attempts that failed, the last one included when the operation failed
}

const (
	flagAmbiguous uint8 = 1 << iota
	flagMisrouted
)

type errSample struct {
	at    int64
	op    uint16
	class Class
	err   error
}

// Handle is one worker's recording buffer. A worker owns its handle; the mutex is only
// ever contended by the once-a-second flush, so the hot path takes no shared lock.
type Handle struct {
	mu    sync.Mutex
	buf   []sample
	errs  []errSample
	spare []sample
}

// failed records a failed attempt that was retried (the final outcome is recorded by
// record).
func (h *Handle) failed(at int64, op uint16, class Class, err error) {
	h.mu.Lock()
	h.errs = append(h.errs, errSample{at: at, op: op, class: class, err: err})
	h.mu.Unlock()
}

// record appends one finished operation; err is kept only when the operation failed.
func (h *Handle) record(s sample, err error) {
	h.mu.Lock()
	h.buf = append(h.buf, s)
	if s.class != OK {
		h.errs = append(h.errs, errSample{at: s.end, op: s.op, class: s.class, err: err})
	}
	h.mu.Unlock()
}

// take swaps out the recorded samples; the returned slices are owned by the caller
// until the next take.
func (h *Handle) take(into []sample) ([]sample, []errSample) {
	h.mu.Lock()
	out, errs := h.buf, h.errs
	h.buf = into[:0]
	h.errs = nil
	h.mu.Unlock()
	return out, errs
}

// Phases are numbered in order; phase 0 is "before".
var phaseNames = []string{result.PhaseBefore, result.PhaseDuring, result.PhaseAfter}

const numPhases = 3

type opStats struct {
	name     string
	kind     workload.Kind
	interval *hdr.Histogram // successful latencies completed in the current second
	all      *hdr.Histogram // successful latencies, whole run
	phase    [numPhases]*hdr.Histogram
	service  *hdr.Histogram
	count    [numPhases]int64
	errors   [numPhases]int64
	failedAt [numPhases]int64 // failed attempts, by the operation's intended start
	retried  int64            // operations that needed more than one attempt
	maxTries int
	ivCount  int64
}

type errKey struct {
	class    Class
	sqlstate string
}

type errStat struct {
	count       int64
	first, last int64
	example     string
	phases      [numPhases]int64
}

// IntervalSink receives each operation's latency histogram for every one-second
// interval (for the HdrHistogram interval log). h is reused after the call returns.
type IntervalSink func(op string, h *hdr.Histogram, start, end time.Duration) error

// Recorder aggregates what every worker recorded: per-operation HDR histograms per
// one-second interval, per phase and for the run, errors by class, schedule lag and
// availability. Flush runs once a second from one goroutine.
type Recorder struct {
	mu      sync.Mutex // guards everything below against Flush/Summary/NewHandle races
	handles []*Handle
	ops     []opStats
	lag     *hdr.Histogram
	errs    map[errKey]*errStat
	// spans are the phase windows, in the order they opened: the stable window
	// before the first disruption, then disruptions and the stable windows after
	// them (see BeginDisruption). cycles are a cutover's cycles (see BeginCycle).
	spans     []*span
	cycles    []*span
	disrupted bool
	// marked is the disruption MarkPhase opened (-1: none).
	marked Disruption
	// onPhase is told of phase changes (see SetOnPhase).
	onPhase   func(string)
	timeline  []result.TimelineRow
	avail     [2]availability // indexed by workload.Kind
	lastFlush int64
	sink      IntervalSink
	sinkErr   error

	totals result.Totals
	// scratch buffers reused between flushes
	scratch []sample
	// ivAll merges the operations' interval histograms for the timeline row; it is
	// reused every second rather than allocated (about 200 KB each).
	ivAll    *hdr.Histogram
	ivLag    *hdr.Histogram // schedule lag of the current interval
	errSeen  int64          // failed attempts in the current interval
	ivFailed int64          // operations that finally failed in the current interval
	ivErrs   [numClasses]int64

	// retained intervals (see Retain and Window)
	retain       time.Duration
	intervals    []interval
	droppedUntil int64
	spare        []*hdr.PackedHistogram
}

// NewRecorder returns a recorder for ops. sink may be nil.
func NewRecorder(ops []workload.Op, sink IntervalSink, opts ...RecorderOption) *Recorder {
	r := &Recorder{errs: map[errKey]*errStat{}, lag: newHist(), ivAll: newHist(), ivLag: newHist(), sink: sink}
	for _, o := range opts {
		o(r)
	}
	for _, op := range ops {
		s := opStats{name: op.Name, kind: op.Kind, interval: newHist(), all: newHist(), service: newHist()}
		for p := range s.phase {
			s.phase[p] = newHist()
		}
		r.ops = append(r.ops, s)
	}
	r.spans = []*span{r.newSpan(result.PhaseBefore, "", phaseBefore, 0, 0)}
	r.marked = -1
	return r
}

// NewHandle returns a recording handle for one worker.
func (r *Recorder) NewHandle() *Handle {
	h := &Handle{buf: make([]sample, 0, 1024)}
	r.mu.Lock()
	r.handles = append(r.handles, h)
	r.mu.Unlock()
	return h
}

// MarkPhase records that phase name ("during" or "after") began at offset at from the
// run's start, for a run with one disruption: "during" opens a disruption window
// labelled "cutover", "after" closes it. Operations are attributed to phases by
// their intended start.
func (r *Recorder) MarkPhase(name string, at time.Duration) {
	switch name {
	case result.PhaseDuring:
		r.mu.Lock()
		marked := r.marked
		r.mu.Unlock()
		if marked < 0 {
			d := r.BeginDisruption("cutover", result.DisruptionSwitchover, 0, at)
			r.mu.Lock()
			r.marked = d
			r.mu.Unlock()
		}
	case result.PhaseAfter:
		r.mu.Lock()
		marked := r.marked
		r.mu.Unlock()
		if marked >= 0 {
			r.EndDisruption(marked, at)
		}
	}
}

// PhaseStart reports when phase name first began on the run's timeline, and
// whether it did: "during" at the first disruption, "after" at the end of the
// first stretch of disruptions.
func (r *Recorder) PhaseStart(name string) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.spans {
		if phaseNames[s.phase] == name {
			return time.Duration(s.start), true
		}
	}
	return 0, false
}

// Flush collects every handle's samples, closes the interval ending at now and
// appends its timeline row, which it returns.
func (r *Recorder) Flush(now time.Duration) result.TimelineRow {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushLocked(now, false)
}

// FlushFinal collects what is left after the run; what finished in the partial last
// interval is added to the last timeline row.
func (r *Recorder) FlushFinal(now time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked(now, true)
}

func (r *Recorder) flushLocked(now time.Duration, final bool) result.TimelineRow {
	row := result.TimelineRow{TS: math.Floor(float64(r.lastFlush)/1e9*1000) / 1000}
	ivAll := r.ivAll
	ivAll.Reset()
	for _, h := range r.handles {
		buf, errs := h.take(r.scratch)
		for i := range buf {
			r.add(&buf[i])
		}
		for _, e := range errs {
			r.addErr(e)
		}
		r.scratch = buf
	}
	if r.retain > 0 {
		r.keepInterval(r.lastFlush, int64(now))
	}
	for i := range r.ops {
		s := &r.ops[i]
		if s.ivCount == 0 && s.interval.TotalCount() == 0 {
			continue
		}
		if row.PerOp == nil {
			row.PerOp = map[string]int64{}
		}
		row.PerOp[s.name] += s.ivCount
		row.Ops += s.ivCount
		if s.interval.TotalCount() > 0 {
			ivAll.Merge(s.interval)
			if r.sink != nil && r.sinkErr == nil {
				r.sinkErr = r.sink(s.name, s.interval, time.Duration(r.lastFlush), now)
			}
		}
		s.interval.Reset()
		s.ivCount = 0
	}
	row.Errors = r.ivFailed
	row.FailedAttempts = r.errSeen
	if r.errSeen > 0 {
		row.ErrorsByClass = r.ivErrClasses()
	}
	r.errSeen, r.ivFailed = 0, 0
	clear(r.ivErrs[:])
	if r.ivLag.TotalCount() > 0 {
		row.LagP99Ms = ms(r.ivLag.ValueAtQuantile(99))
		r.ivLag.Reset()
	}
	if ivAll.TotalCount() > 0 {
		row.P50Ms = ms(ivAll.ValueAtQuantile(50))
		row.P99Ms = ms(ivAll.ValueAtQuantile(99))
		row.MaxMs = ms(ivAll.Max())
	}
	r.lastFlush = int64(now)
	switch {
	case !final:
		r.timeline = append(r.timeline, row)
	case len(r.timeline) > 0:
		// What finished after the last full second (in-flight work during the grace
		// period) joins the last row: a partial row would read as a throughput drop.
		last := &r.timeline[len(r.timeline)-1]
		last.Ops += row.Ops
		last.Errors += row.Errors
		last.FailedAttempts += row.FailedAttempts
		last.MaxMs = max(last.MaxMs, row.MaxMs)
		for k, v := range row.PerOp {
			if last.PerOp == nil {
				last.PerOp = map[string]int64{}
			}
			last.PerOp[k] += v
		}
		for k, v := range row.ErrorsByClass {
			if last.ErrorsByClass == nil {
				last.ErrorsByClass = map[string]int64{}
			}
			last.ErrorsByClass[k] += v
		}
	case row.Ops > 0 || row.FailedAttempts > 0:
		r.timeline = append(r.timeline, row)
	}
	return row
}

func (r *Recorder) ivErrClasses() map[string]int64 {
	m := map[string]int64{}
	for c, n := range r.ivErrs {
		if n > 0 {
			m[Class(c).String()] = n
		}
	}
	return m
}

func (r *Recorder) add(s *sample) {
	if int(s.op) >= len(r.ops) {
		return
	}
	st := &r.ops[s.op]
	p := r.phaseOf(s.intended)
	st.count[p]++
	st.ivCount++
	r.totals.Transactions++
	tries := max(int(s.tries), 1)
	r.totals.Attempts += int64(tries)
	r.totals.Retries += int64(tries - 1)
	r.totals.FailedAttempts += int64(s.failed)
	st.failedAt[p] += int64(s.failed)
	if tries > 1 {
		st.retried++
	}
	st.maxTries = max(st.maxTries, tries)
	r.addToSpans(s, s.class != OK, s.flags&flagAmbiguous != 0)
	recordClamped(r.lag, s.start-s.intended)
	recordClamped(r.ivLag, s.start-s.intended)
	r.avail[st.kind].attempt(s.intended)
	switch {
	case s.class == OK:
		r.totals.Succeeded++
		lat := s.end - s.intended
		recordClamped(st.interval, lat)
		recordClamped(st.all, lat)
		recordClamped(st.phase[p], lat)
		recordClamped(st.service, s.end-s.sent)
		r.avail[st.kind].success(s.end)
	default:
		if s.flags&flagAmbiguous != 0 {
			r.totals.Ambiguous++
		} else {
			r.totals.Failed++
		}
		r.ivFailed++
		st.errors[p]++
		r.avail[st.kind].failure(s.intended)
	}
}

func (r *Recorder) addErr(e errSample) {
	r.errSeen++
	r.ivErrs[e.class]++
	_, state := Classify(e.err)
	k := errKey{class: e.class, sqlstate: state}
	st := r.errs[k]
	if st == nil {
		st = &errStat{first: e.at}
		if e.err != nil {
			st.example = e.err.Error()
			if len(st.example) > 300 {
				st.example = st.example[:300] + "…"
			}
		}
		r.errs[k] = st
	}
	st.count++
	st.last = max(st.last, e.at)
	st.first = min(st.first, e.at)
	st.phases[r.phaseOf(e.at)]++
}

// SinkErr returns the first error the interval sink returned, if any.
func (r *Recorder) SinkErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sinkErr
}

// Summary is what the recorder saw over the whole run.
type Summary struct {
	Operations   []result.Operation
	Errors       []result.ErrorClass
	Timeline     []result.TimelineRow
	Availability result.Availability
	Totals       result.Totals
	LagP99Ms     float64
	LagMaxMs     float64
	// PhaseWindows is the timeline as its phases followed the disruptions (nil when
	// there were none).
	PhaseWindows []result.PhaseWindow
}

// Summary summarises the run so far; end is the run's length, which closes any
// unavailability window still open.
func (r *Recorder) Summary(end time.Duration) Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := Summary{
		Timeline: slices.Clone(r.timeline),
		Totals:   r.totals,
		LagP99Ms: ms(r.lag.ValueAtQuantile(99)),
		LagMaxMs: ms(r.lag.Max()),
	}
	for i := range r.ops {
		s := &r.ops[i]
		op := result.Operation{
			Name:      s.name,
			Kind:      s.kind.String(),
			LatencyMs: latency(s.all),
			ServiceMs: result.Service{P50: ms(s.service.ValueAtQuantile(50)), P99: ms(s.service.ValueAtQuantile(99)), Max: ms(s.service.Max())},
			Phases:    map[string]result.Phase{},
			Attempts:  result.Attempts{Retried: s.retried, Max: s.maxTries},
		}
		for p := range numPhases {
			op.Count += s.count[p]
			op.Errors += s.errors[p]
			op.Attempts.Failed += s.failedAt[p]
			if s.count[p] > 0 {
				op.Phases[phaseNames[p]] = result.Phase{Count: s.count[p], Errors: s.errors[p], FailedAttempts: s.failedAt[p], LatencyMs: latency(s.phase[p])}
			}
		}
		out.Operations = append(out.Operations, op)
	}
	for k, st := range r.errs {
		ec := result.ErrorClass{
			Class: k.class.String(), SQLState: k.sqlstate, Count: st.count,
			FirstS: secs(st.first), LastS: secs(st.last), Example: st.example,
			Phases: map[string]int64{},
		}
		for p := range numPhases {
			if st.phases[p] > 0 {
				ec.Phases[phaseNames[p]] = st.phases[p]
			}
		}
		out.Errors = append(out.Errors, ec)
	}
	slices.SortFunc(out.Errors, func(a, b result.ErrorClass) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Class, b.Class), cmp.Compare(a.SQLState, b.SQLState))
	})
	out.Availability = r.availabilityLocked(int64(end))
	out.PhaseWindows = r.phaseWindowsLocked(int64(end))
	return out
}

func latency(h *hdr.Histogram) result.Latency {
	if h.TotalCount() == 0 {
		return result.Latency{}
	}
	return result.Latency{
		P50:  ms(h.ValueAtQuantile(50)),
		P90:  ms(h.ValueAtQuantile(90)),
		P99:  ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)),
		Max:  ms(h.Max()),
	}
}

// ms converts nanoseconds to milliseconds rounded to the microsecond.
func ms(ns int64) float64 { return math.Round(float64(ns)/1e3) / 1e3 }

// secs converts nanoseconds to seconds rounded to the millisecond.
func secs(ns int64) float64 { return math.Round(float64(ns)/1e6) / 1e3 }
