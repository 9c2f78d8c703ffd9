package loadgen

import (
	"slices"

	"github.com/rehearse-dev/rehearse/result"
)

// availability tracks, per millisecond of the run, how many operations of one kind
// were attempted (by intended start), failed (by intended start) and succeeded (by
// completion). Bounded memory: 3 bytes per millisecond, about 11 MB per hour.
type availability struct {
	attempts, failures, successes []uint8
}

func bump(b []uint8, i int) []uint8 {
	if i < 0 {
		i = 0
	}
	if i >= len(b) {
		n := max(2*len(b), i+1, 60_000)
		b = append(b, make([]uint8, n-len(b))...)
	}
	if b[i] < 255 {
		b[i]++
	}
	return b
}

func (a *availability) attempt(at int64) { a.attempts = bump(a.attempts, int(at/1e6)) }
func (a *availability) failure(at int64) { a.failures = bump(a.failures, int(at/1e6)) }
func (a *availability) success(at int64) { a.successes = bump(a.successes, int(at/1e6)) }

func at(b []uint8, i int) uint8 {
	if i < len(b) {
		return b[i]
	}
	return 0
}

// stallListThreshold is the shortest window listed when no attempt in it failed:
// shorter ones are ordinary latency, not unavailability.
const stallListThreshold = 100 // ms

// window is an unavailability window in milliseconds: [start, end).
type window struct {
	start, end int
	attempts   int64
	failed     bool
}

// windows returns the spans in which operations were attempted and none succeeded: each
// opens at the first attempt after a success and closes at the next success (or at
// end, when none came). It calls fn for each, in order, without keeping them.
func (a *availability) windows(endMs int, fn func(window)) {
	open := -1
	var attempts int64
	failed := false
	n := max(len(a.attempts), len(a.successes), endMs)
	for i := 0; i < n; i++ {
		if open < 0 {
			if at(a.attempts, i) > 0 && at(a.successes, i) == 0 {
				open, attempts, failed = i, 0, false
			} else {
				continue
			}
		}
		attempts += int64(at(a.attempts, i))
		failed = failed || at(a.failures, i) > 0
		if at(a.successes, i) > 0 {
			fn(window{start: open, end: i, attempts: attempts, failed: failed})
			open = -1
		}
	}
	if open >= 0 {
		fn(window{start: open, end: max(endMs, open), attempts: attempts, failed: failed})
	}
}

func (r *Recorder) availabilityLocked(end int64) result.Availability {
	out := result.Availability{PerPhase: map[string]result.PhaseWindows{}, Windows: []result.Window{}}
	endMs := int(end / 1e6)
	for kind, a := range r.avail {
		name := "read"
		if kind == 1 {
			name = "write"
		}
		a.windows(endMs, func(w window) {
			d := float64(w.end - w.start)
			phase := phaseNames[r.phaseOf(int64(w.start)*1e6)]
			pw := out.PerPhase[phase]
			if kind == 1 {
				out.WriteUnavailableMaxMs = max(out.WriteUnavailableMaxMs, d)
				pw.WriteMaxMs = max(pw.WriteMaxMs, d)
			} else {
				out.ReadUnavailableMaxMs = max(out.ReadUnavailableMaxMs, d)
				pw.ReadMaxMs = max(pw.ReadMaxMs, d)
			}
			out.PerPhase[phase] = pw
			if w.failed || d >= stallListThreshold {
				out.Windows = append(out.Windows, result.Window{
					Kind: name, StartS: float64(w.start) / 1e3, EndS: float64(w.end) / 1e3,
					Ms: d, Attempts: w.attempts, Phase: phase,
				})
			}
		})
	}
	slices.SortFunc(out.Windows, func(x, y result.Window) int {
		switch {
		case x.StartS < y.StartS:
			return -1
		case x.StartS > y.StartS:
			return 1
		}
		return 0
	})
	return out
}
