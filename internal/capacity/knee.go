package capacity

import (
	"math"
	"slices"

	"github.com/rehearse-dev/rehearse/result"
)

// knee returns the index of the knee of a latency curve y(x) by Kneedle (Satopää et
// al., 2011) on log-log axes: with log x and log y normalised to [0, 1], the point
// farthest below the chord from the first to the last point. Log axes make it
// scale-free (latency spans orders of magnitude, and the default ladder climbs by a
// factor); y is first made non-decreasing (its running maximum), since latency does
// not truly fall as load rises and a noisy dip would otherwise pass for a knee.
// xs must increase and every value be positive. It returns -1 with fewer than three
// points or when the curve bends too little to name a knee (flat, or a power law,
// which is straight on log-log axes).
func knee(xs, ys []float64) int {
	n := len(xs)
	if n < 3 || len(ys) != n || xs[0] <= 0 {
		return -1
	}
	lx := make([]float64, n)
	ly := make([]float64, n)
	top := math.Inf(-1)
	for i := range n {
		if xs[i] <= 0 || ys[i] <= 0 {
			return -1
		}
		top = math.Max(top, math.Log(ys[i]))
		lx[i], ly[i] = math.Log(xs[i]), top
	}
	x0, x1, y0, y1 := lx[0], lx[n-1], ly[0], ly[n-1]
	if x1 <= x0 || y1 <= y0 {
		return -1
	}
	best, bestD := -1, 0.0
	for i := range n {
		xn := (lx[i] - x0) / (x1 - x0)
		yn := (ly[i] - y0) / (y1 - y0)
		if d := xn - yn; d > bestD {
			best, bestD = i, d
		}
	}
	// A curve within 10% of straight has no knee worth naming.
	if bestD < 0.1 {
		return -1
	}
	return best
}

// curveKnee finds the knee of p99 latency against target rate over the measured
// steps and returns its index into steps (-1 for none), and how far p99 rose across
// them (highest over lowest; 0 without measured steps). A curve whose p99 rose by
// less than FlatFactor is flat: noise, not a knee, so -1.
func curveKnee(steps []result.CapacityStep) (int, float64) {
	var idx []int
	lo, hi := math.Inf(1), 0.0
	for i, s := range steps {
		if s.Transactions > 0 && s.P99Ms > 0 && s.Verdict != result.StepInterrupted && s.Verdict != result.StepFailed {
			idx = append(idx, i)
			lo, hi = math.Min(lo, s.P99Ms), math.Max(hi, s.P99Ms)
		}
	}
	if len(idx) == 0 {
		return -1, 0
	}
	rise := math.Round(hi/lo*100) / 100
	if rise < FlatFactor {
		return -1, rise
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case steps[a].TargetRate < steps[b].TargetRate:
			return -1
		case steps[a].TargetRate > steps[b].TargetRate:
			return 1
		}
		return 0
	})
	xs := make([]float64, len(idx))
	ys := make([]float64, len(idx))
	for j, i := range idx {
		xs[j], ys[j] = steps[i].TargetRate, steps[i].P99Ms
	}
	k := knee(xs, ys)
	if k < 0 {
		return -1, rise
	}
	return idx[k], rise
}
