package engine

import (
	"slices"

	"github.com/rehearse-dev/rehearse/result"
)

// Recovery thresholds: users stop feeling a disruption once the per-second p99
// latency and schedule lag are back within recoveryFactor × their values before it,
// and stay there for recoveryHold seconds.
const (
	recoveryFactor = 2.0
	recoveryHold   = 3
	// recoveryFloorMs keeps a near-zero baseline from making ordinary jitter count
	// as not recovered (a 0.8 ms p99 would otherwise allow 1.6 ms).
	recoveryFloorMs = 2.0
)

// recoveryTime is how long after a disruption ended (at end, seconds on the run's
// timeline) users kept feeling it: until the per-second p99 latency and schedule lag
// were back within recoveryFactor × their baseline (the before phase's p99 latency
// and schedule lag p99, in ms) and stayed there for recoveryHold seconds. ok is false
// when there is no baseline (p99Base 0), or the run ended first (then the time is
// until the run's last second).
func recoveryTime(rows []result.TimelineRow, p99Base, lagBase, end float64) (secs float64, ok bool) {
	if p99Base <= 0 {
		return 0, false
	}
	p99Max := max(p99Base, recoveryFloorMs) * recoveryFactor
	lagMax := max(lagBase, recoveryFloorMs) * recoveryFactor
	within := func(r result.TimelineRow) bool {
		return r.Ops > 0 && r.P99Ms <= p99Max && r.LagP99Ms <= lagMax
	}
	// Seconds that began before the end still hold the disruption's tail.
	first := slices.IndexFunc(rows, func(r result.TimelineRow) bool { return r.TS >= end })
	if first < 0 {
		return 0, false
	}
	run := 0
	for i := first; i < len(rows); i++ {
		if !within(rows[i]) {
			run = 0
			continue
		}
		run++
		if run == recoveryHold {
			start := rows[i-recoveryHold+1].TS
			return max(0, round3(start-end)), true
		}
	}
	last := rows[len(rows)-1].TS + 1
	return max(0, round3(last-end)), false
}

func round3(v float64) float64 { return Round3(v) }
