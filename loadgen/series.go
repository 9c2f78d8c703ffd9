package loadgen

import (
	"cmp"
	"slices"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rehearse-dev/rehearse/result"
)

// Series returns a copy of the per-millisecond availability counts the recorder
// kept (see result.AvailabilitySeries): what a shard of a sharded run writes so the
// merge can compute the fleet's unavailability windows.
func (r *Recorder) Series() *result.AvailabilitySeries {
	r.mu.Lock()
	defer r.mu.Unlock()
	cp := func(a availability) result.KindSeries {
		return result.KindSeries{
			Attempts:  append([]uint8(nil), a.attempts...),
			Failures:  append([]uint8(nil), a.failures...),
			Successes: append([]uint8(nil), a.successes...),
		}
	}
	return &result.AvailabilitySeries{Read: cp(r.avail[0]), Write: cp(r.avail[1])}
}

// RunHistograms are a run's whole histograms, each a copy: per operation its
// latency (from the intended start), service time and latency per phase, the
// schedule lag, and per phase window (Summary's PhaseWindows, in order) each
// operation's latency. Values are nanoseconds.
type RunHistograms struct {
	Ops []OpHistograms
	Lag *hdr.Histogram
	// Windows[i][op] is operation op's latency in phase window i (nil: none
	// succeeded there); WindowLag[i] the schedule lag of window i's operations.
	Windows   [][]*hdr.Histogram
	WindowLag []*hdr.Histogram
}

// OpHistograms are one operation's histograms.
type OpHistograms struct {
	Name    string
	Latency *hdr.Histogram
	Service *hdr.Histogram
	// Phases are by phase name; a phase no operation ran in is absent.
	Phases map[string]*hdr.Histogram
}

// Histograms returns copies of the recorder's whole-run histograms: what a shard
// writes so the merge computes exact percentiles from the fleet's histograms
// rather than from each shard's percentiles.
func (r *Recorder) Histograms() RunHistograms {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := RunHistograms{Lag: r.lag.Clone()}
	for i := range r.ops {
		s := &r.ops[i]
		oh := OpHistograms{Name: s.name, Latency: s.all.Clone(), Service: s.service.Clone(), Phases: map[string]*hdr.Histogram{}}
		for p := range numPhases {
			if s.count[p] > 0 {
				oh.Phases[phaseNames[p]] = s.phase[p].Clone()
			}
		}
		out.Ops = append(out.Ops, oh)
	}
	if r.disrupted {
		for _, sp := range r.spans {
			w := make([]*hdr.Histogram, len(sp.ops))
			for i, o := range sp.ops {
				if o.hist != nil {
					w[i] = o.hist.Clone()
				}
			}
			out.Windows = append(out.Windows, w)
			var lag *hdr.Histogram
			if sp.lag != nil {
				lag = sp.lag.Clone()
			}
			out.WindowLag = append(out.WindowLag, lag)
		}
	}
	return out
}

// NewHistogram is a histogram with the recorder's range and precision (1 µs to an
// hour in nanoseconds, 3 significant digits), for merging the recorder's.
func NewHistogram() *hdr.Histogram { return newHist() }

// NewPacked is a sparse histogram with the recorder's range and precision.
func NewPacked() *hdr.PackedHistogram { return hdr.NewPacked(histLowest, histHighest, histSigFigs) }

// LatencyOf summarises a latency histogram (nanoseconds) in milliseconds, as the
// result records latencies.
func LatencyOf(h *hdr.Histogram) result.Latency { return latency(h) }

// ServiceOf summarises a service-time histogram (nanoseconds) in milliseconds.
func ServiceOf(h *hdr.Histogram) result.Service {
	if h.TotalCount() == 0 {
		return result.Service{}
	}
	return result.Service{P50: ms(h.ValueAtQuantile(50)), P99: ms(h.ValueAtQuantile(99)), Max: ms(h.Max())}
}

// Ms is nanoseconds as the result's milliseconds (rounded to the microsecond).
func Ms(ns int64) float64 { return ms(ns) }

// Marks are the disruption windows and cutover cycles a recorder was told of, in
// the order they were opened: what another recorder needs to attribute operations
// to the same phases and windows (MarkFollower). A sharded run's coordinator
// publishes its recorder's; every other shard applies them.
type Marks struct {
	Disruptions []DisruptionMark
	Cycles      []CycleMark
}

// DisruptionMark is one disruption window (see Recorder.BeginDisruption); End is
// valid when Ended.
type DisruptionMark struct {
	Label, Kind string
	Cycle       int
	Start, End  time.Duration
	Ended       bool
}

// CycleMark is the start of a cutover cycle's accounting span (see BeginCycle).
type CycleMark struct {
	Cycle int
	Start time.Duration
}

// Marks returns the disruption windows and cycles the recorder has been told of.
func (r *Recorder) Marks() Marks {
	r.mu.Lock()
	defer r.mu.Unlock()
	var m Marks
	for _, s := range r.spans {
		if s.phase != phaseDuring {
			continue
		}
		d := DisruptionMark{Label: s.label, Kind: s.kind, Cycle: s.cycle, Start: time.Duration(s.start)}
		if s.end != open {
			d.End, d.Ended = time.Duration(s.end), true
		}
		m.Disruptions = append(m.Disruptions, d)
	}
	for _, c := range r.cycles {
		m.Cycles = append(m.Cycles, CycleMark{Cycle: c.cycle, Start: time.Duration(c.start)})
	}
	return m
}

// MarkFollower applies another recorder's marks to a recorder as they arrive: each
// disruption's begin and end and each cycle once, in the order of their times.
type MarkFollower struct {
	rec    *Recorder
	begun  []Disruption
	ended  []bool
	cycles int
}

// NewMarkFollower follows marks onto rec.
func NewMarkFollower(rec *Recorder) *MarkFollower { return &MarkFollower{rec: rec} }

// Apply applies what in m the follower has not applied yet. m must extend what
// it was given before (marks are only added, and windows only closed).
func (f *MarkFollower) Apply(m Marks) {
	type event struct {
		at    time.Duration
		order int // begins before ends before cycles at the same time
		do    func()
	}
	var evs []event
	for i, d := range m.Disruptions {
		if i >= len(f.begun) {
			f.begun = append(f.begun, -1)
			f.ended = append(f.ended, false)
			evs = append(evs, event{d.Start, 0, func() { f.begun[i] = f.rec.BeginDisruption(d.Label, d.Kind, d.Cycle, d.Start) }})
		}
		if d.Ended && !f.ended[i] {
			f.ended[i] = true
			evs = append(evs, event{d.End, 1, func() { f.rec.EndDisruption(f.begun[i], d.End) }})
		}
	}
	for i := f.cycles; i < len(m.Cycles); i++ {
		c := m.Cycles[i]
		evs = append(evs, event{c.Start, 2, func() { f.rec.BeginCycle(c.Cycle, c.Start) }})
	}
	f.cycles = max(f.cycles, len(m.Cycles))
	slices.SortStableFunc(evs, func(a, b event) int {
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
		}
		return a.order - b.order
	})
	for _, e := range evs {
		e.do()
	}
}

// AvailabilityOf computes the unavailability windows of a run from its
// availability series, exactly as a recorder does from its own: end is the run's
// length, marks the disruptions that set its phases. It also returns, per phase
// window (in Summary's order), the longest write and read windows that opened in
// it. The merge of a sharded run calls it on the shards' summed series.
func AvailabilityOf(s *result.AvailabilitySeries, end time.Duration, marks Marks) (result.Availability, [][2]float64) {
	r := NewRecorder(nil, nil)
	NewMarkFollower(r).Apply(marks)
	r.avail[0] = availability{attempts: s.Read.Attempts, failures: s.Read.Failures, successes: s.Read.Successes}
	r.avail[1] = availability{attempts: s.Write.Attempts, failures: s.Write.Failures, successes: s.Write.Successes}
	r.mu.Lock()
	defer r.mu.Unlock()
	var windows [][2]float64
	for _, w := range r.phaseWindowsLocked(int64(end)) {
		windows = append(windows, [2]float64{w.WriteUnavailableMs, w.ReadUnavailableMs})
	}
	return r.availabilityLocked(int64(end)), windows
}
