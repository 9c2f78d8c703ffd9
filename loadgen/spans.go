package loadgen

import (
	"math"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rehearse-dev/rehearse/result"
)

// open is the end of a span that has not ended.
const open = math.MaxInt64

// span is a stretch of the run's timeline the recorder counts separately: a phase
// window (the stable stretch before the first disruption, a disruption, a stable
// stretch after one) or a cutover cycle's accounting span. Operations are
// attributed by their intended start.
type span struct {
	label, kind string
	phase       int // phase index; -1 for a cycle's accounting span
	cycle       int
	start, end  int64 // ns on the run's timeline; end is open while it lasts

	count, errors, failed, attempts int64
	ops                             []spanOp          // per operation (phase windows only)
	lag                             *hdr.Histogram    // schedule lag (phase windows only)
	classes                         [numClasses]int64 // failed operations by error class
}

type spanOp struct {
	count, errors, failed int64
	hist                  *hdr.Histogram // successful latencies, allocated on first use
}

func (s *span) contains(t int64) bool { return t >= s.start && t < s.end }

// Disruption identifies a disruption window opened with BeginDisruption.
type Disruption int

// SetOnPhase has f told of every change of the run's phase ("during" when a first
// disruption opens, "after" when the last one open closes); nil: nobody. f runs
// outside the recorder's lock.
func (r *Recorder) SetOnPhase(f func(phase string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onPhase = f
}

// phaseChanged tells the phase listener, if any, of phase (called without r.mu).
func (r *Recorder) phaseChanged(phase string, f func(string)) {
	if f != nil {
		f(phase)
	}
}

// BeginDisruption opens a disruption window at offset at of the run's timeline:
// operations intended from then until EndDisruption are in phase "during" and in
// this window, labelled label (kind is a result.Disruption* kind, cycle the cutover
// cycle or 0). The stable stretch before it ends there. Disruptions may overlap.
func (r *Recorder) BeginDisruption(label, kind string, cycle int, at time.Duration) Disruption {
	r.mu.Lock()
	t := int64(at)
	first := r.openDisruptions() == 0
	if first {
		if st := r.stable(); st != nil {
			st.end = max(st.start, t)
		}
	}
	r.spans = append(r.spans, r.newSpan(label, kind, phaseDuring, cycle, t))
	r.disrupted = true
	d, f := Disruption(len(r.spans)-1), r.onPhase
	r.mu.Unlock()
	if first {
		r.phaseChanged(result.PhaseDuring, f)
	}
	return d
}

// EndDisruption closes disruption d at offset at. When no other disruption is still
// open, a stable "after" window begins there.
func (r *Recorder) EndDisruption(d Disruption, at time.Duration) {
	r.mu.Lock()
	if int(d) < 0 || int(d) >= len(r.spans) || r.spans[d].end != open {
		r.mu.Unlock()
		return
	}
	s := r.spans[d]
	s.end = max(s.start, int64(at))
	last := r.openDisruptions() == 0
	if last {
		r.spans = append(r.spans, r.newSpan("after "+s.label, "", phaseAfter, s.cycle, s.end))
	}
	f := r.onPhase
	r.mu.Unlock()
	if last {
		r.phaseChanged(result.PhaseAfter, f)
	}
}

// DisruptionErrors counts the operations intended within disruption d that failed,
// by error class (nil when none failed).
func (r *Recorder) DisruptionErrors(d Disruption) map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if int(d) < 0 || int(d) >= len(r.spans) {
		return nil
	}
	var out map[string]int64
	for c, n := range r.spans[d].classes {
		if n > 0 {
			if out == nil {
				out = map[string]int64{}
			}
			out[Class(c).String()] = n
		}
	}
	return out
}

// BeginCycle starts cutover cycle n's accounting span at offset at (the previous
// cycle's ends there; the first cycle's starts at the run's start, whatever at).
func (r *Recorder) BeginCycle(n int, at time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := int64(at)
	c := &span{kind: "cycle", phase: -1, cycle: n, start: t, end: open}
	if len(r.cycles) == 0 {
		// The first cycle holds everything from the run's start, recorded already.
		c.start = 0
		c.count, c.errors = r.totals.Transactions, r.totals.Failed
		c.attempts, c.failed = r.totals.Attempts, r.totals.FailedAttempts
	} else {
		last := r.cycles[len(r.cycles)-1]
		last.end = max(last.start, t)
	}
	r.cycles = append(r.cycles, c)
}

// setPhases gives a recorder built outside NewRecorder the phases of a run with one
// disruption: "during" began at phases["during"] and "after" at phases["after"]
// (a phase absent did not occur).
func (r *Recorder) setPhases(phases map[string]time.Duration) {
	r.spans = []*span{r.newSpan(result.PhaseBefore, "", phaseBefore, 0, 0)}
	r.marked = -1
	if at, ok := phases[result.PhaseDuring]; ok {
		r.spans[0].end = int64(at)
		d := &span{label: "cutover", kind: result.DisruptionSwitchover, phase: phaseDuring, start: int64(at), end: open}
		r.spans = append(r.spans, d)
		r.disrupted = true
		if after, ok := phases[result.PhaseAfter]; ok {
			d.end = int64(after)
			r.spans = append(r.spans, &span{label: "after cutover", phase: phaseAfter, start: int64(after), end: open})
		}
	}
}

// openDisruptions counts the disruption windows still open.
func (r *Recorder) openDisruptions() int {
	n := 0
	for _, s := range r.spans {
		if s.phase == phaseDuring && s.end == open {
			n++
		}
	}
	return n
}

// stable is the open stable window, if any.
func (r *Recorder) stable() *span {
	for i := len(r.spans) - 1; i >= 0; i-- {
		if s := r.spans[i]; s.phase != phaseDuring && s.end == open {
			return s
		}
	}
	return nil
}

func (r *Recorder) newSpan(label, kind string, phase, cycle int, start int64) *span {
	return &span{label: label, kind: kind, phase: phase, cycle: cycle, start: start, end: open, ops: make([]spanOp, len(r.ops)), lag: newHist()}
}

const (
	phaseBefore = iota
	phaseDuring
	phaseAfter
)

// phaseOf is the phase of an operation intended at t: during while any disruption
// window holds t; before until the first disruption; after otherwise.
func (r *Recorder) phaseOf(t int64) int {
	first := int64(open)
	for _, s := range r.spans {
		if s.phase != phaseDuring {
			continue
		}
		if s.contains(t) {
			return phaseDuring
		}
		first = min(first, s.start)
	}
	if t < first {
		return phaseBefore
	}
	return phaseAfter
}

// addToSpans counts sample s in every span its intended start falls in. failed is
// true when it failed; ambiguous when its outcome is unknown (a cycle counts it
// apart from its failures, as the run's totals do).
func (r *Recorder) addToSpans(s *sample, failed, ambiguous bool) {
	tries := max(int64(s.tries), 1)
	for _, sp := range r.spans {
		if !sp.contains(s.intended) {
			continue
		}
		sp.count++
		sp.attempts += tries
		recordClamped(sp.lag, s.start-s.intended)
		sp.failed += int64(s.failed)
		o := &sp.ops[s.op]
		o.count++
		o.failed += int64(s.failed)
		if failed {
			sp.errors++
			sp.classes[s.class]++
			o.errors++
			continue
		}
		if o.hist == nil {
			o.hist = newHist()
		}
		recordClamped(o.hist, s.end-s.intended)
	}
	for i := len(r.cycles) - 1; i >= 0; i-- {
		c := r.cycles[i]
		if c.contains(s.intended) {
			c.count++
			c.attempts += tries
			c.failed += int64(s.failed)
			if failed && !ambiguous {
				c.errors++
			}
			break
		}
	}
}

// CycleCount is what the operations of one cutover cycle's accounting span did.
type CycleCount struct {
	Cycle                                          int
	Start, End                                     time.Duration
	Transactions, Failed, Attempts, FailedAttempts int64
}

// phaseWindowsLocked summarises the phase windows; end is the run's length, which
// closes any window still open. Unavailability windows count in the window they
// opened in.
func (r *Recorder) phaseWindowsLocked(end int64) []result.PhaseWindow {
	if !r.disrupted {
		return nil
	}
	out := make([]result.PhaseWindow, 0, len(r.spans))
	for _, s := range r.spans {
		e := min(s.end, max(end, s.start))
		w := result.PhaseWindow{
			Phase: phaseNames[s.phase], Label: s.label, Kind: s.kind, Cycle: s.cycle,
			StartS: secs(s.start), EndS: secs(e),
			Count: s.count, Errors: s.errors, FailedAttempts: s.failed,
			Operations: map[string]result.Phase{},
		}
		all := newHist()
		for i, o := range s.ops {
			if o.count == 0 {
				continue
			}
			p := result.Phase{Count: o.count, Errors: o.errors, FailedAttempts: o.failed}
			if o.hist != nil {
				p.LatencyMs = latency(o.hist)
				all.Merge(o.hist)
			}
			w.Operations[r.ops[i].name] = p
		}
		w.LatencyMs = latency(all)
		if s.lag != nil && s.lag.TotalCount() > 0 {
			w.ScheduleLagP99Ms = ms(s.lag.ValueAtQuantile(99))
		}
		out = append(out, w)
	}
	r.attributeUnavailability(out, end)
	return out
}

// attributeUnavailability gives each unavailability window to the phase window it
// overlaps most (the one it started in, for an instant): a stall that opened a
// moment before a fault struck (the operations sent just before it hung) is the
// fault's, not the stable stretch's before it.
func (r *Recorder) attributeUnavailability(ws []result.PhaseWindow, end int64) {
	endMs := int(end / 1e6)
	for kind, a := range r.avail {
		a.windows(endMs, func(u window) {
			best, most := -1, -1.0
			for i, w := range ws {
				lo, hi := max(float64(u.start), w.StartS*1e3), min(float64(u.end), w.EndS*1e3)
				ov := hi - lo
				if u.end == u.start && float64(u.start) >= w.StartS*1e3 && float64(u.start) < w.EndS*1e3 {
					ov = 0
				} else if ov <= 0 {
					continue
				}
				if ov >= most {
					best, most = i, ov
				}
			}
			if best < 0 {
				return
			}
			d := float64(u.end - u.start)
			if kind == 1 {
				ws[best].WriteUnavailableMs = max(ws[best].WriteUnavailableMs, d)
			} else {
				ws[best].ReadUnavailableMs = max(ws[best].ReadUnavailableMs, d)
			}
		})
	}
}

// cyclesLocked is the cycles' accounting; end is the run's length.
func (r *Recorder) cyclesLocked(end int64) []CycleCount {
	out := make([]CycleCount, 0, len(r.cycles))
	for _, c := range r.cycles {
		out = append(out, CycleCount{
			Cycle: c.cycle, Start: time.Duration(c.start), End: time.Duration(min(c.end, max(end, c.start))),
			Transactions: c.count, Failed: c.errors, Attempts: c.attempts, FailedAttempts: c.failed,
		})
	}
	return out
}

// Cycles is what the operations of each cutover cycle did (see BeginCycle); end is
// the run's length.
func (r *Recorder) Cycles(end time.Duration) []CycleCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cyclesLocked(int64(end))
}

// LongestUnavailable is the longest write and read unavailability windows, in
// milliseconds, that opened in [from, to) of the run's timeline; end is the run's
// length so far (closing a window still open).
func (r *Recorder) LongestUnavailable(from, to, end time.Duration) (writeMs, readMs float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.longestWithin(int64(from), int64(to), int64(end))
}

func (r *Recorder) longestWithin(from, to, end int64) (writeMs, readMs float64) {
	endMs := int(end / 1e6)
	for kind, a := range r.avail {
		a.windows(endMs, func(w window) {
			s := int64(w.start) * 1e6
			if s < from || s >= to {
				return
			}
			d := float64(w.end - w.start)
			if kind == 1 {
				writeMs = max(writeMs, d)
			} else {
				readMs = max(readMs, d)
			}
		})
	}
	return writeMs, readMs
}

// StalledFor is how long, at offset now, writes (or reads) have gone without a
// success: since the later of from and the last one that succeeded, once any has
// succeeded in the run (0 before). Operations are recorded when they finish, so
// counting from the last success is what shows a hang (a blackhole, a frozen
// writer) while its operations are still waiting.
func (r *Recorder) StalledFor(writes bool, from, now time.Duration) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := &r.avail[0]
	if writes {
		a = &r.avail[1]
	}
	nowMs := int(now / time.Millisecond)
	last := -1
	for i := min(len(a.successes), nowMs+1) - 1; i >= 0; i-- {
		if a.successes[i] > 0 {
			last = i
			break
		}
	}
	if last < 0 {
		return 0
	}
	since := max(int(from/time.Millisecond), last+1)
	return time.Duration(max(nowMs-since, 0)) * time.Millisecond
}

// Counts is what the operations that finished in a span of the run did.
type Counts struct {
	// Ops finished (succeeded or failed); Failed failed after the client's retries.
	Ops, Failed int64
	// Attempts were made in all; FailedAttempts failed (retried or final).
	Attempts, FailedAttempts int64
}

// Recent counts the operations that finished in the one-second intervals starting
// in [from, to) of the run's timeline.
func (r *Recorder) Recent(from, to time.Duration) Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	var c Counts
	for i := len(r.timeline) - 1; i >= 0; i-- {
		row := &r.timeline[i]
		t := time.Duration(row.TS * float64(time.Second))
		if t >= to {
			continue
		}
		// Half a second of slack keeps a late flush's interval in its second.
		if t+500*time.Millisecond < from {
			break
		}
		c.Ops += row.Ops
		c.Failed += row.Errors
		c.FailedAttempts += row.FailedAttempts
		c.Attempts += row.Ops - row.Errors + row.FailedAttempts
	}
	return c
}
