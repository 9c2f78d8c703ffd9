package capacity

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/report"
	"github.com/rehearse-dev/rehearse/result"
)

// saturation is when a step counts as saturated.
type saturation struct {
	maxLagMs    float64
	minAchieved float64
	window      time.Duration
}

// floor is the lowest achieved/target ratio that is not saturation when the offered
// rate is unknown: minAchieved, but looser when the step saw few arrivals, where
// Poisson noise alone (3 σ) would trip it.
func (s saturation) floor(target float64) float64 {
	n := target * s.window.Seconds()
	if n <= 0 {
		return s.minAchieved
	}
	return math.Min(s.minAchieved, 1-3/math.Sqrt(n))
}

// judge sets the step's verdict and reasons from its SLO verdict and the saturation
// criteria. A step that already has a verdict (interrupted, failed) keeps it.
func judge(st *result.CapacityStep, sat saturation) {
	if st.Verdict != "" {
		return
	}
	var breach, saturated []string
	if !st.SLO.Passed {
		breach = report.Reasons(st.SLO)
	}
	switch {
	case st.OfferedRate > 0:
		// The schedule's own arrivals in the window: no sampling noise to allow for.
		if ratio := st.AchievedRate / st.OfferedRate; ratio < sat.minAchieved {
			saturated = append(saturated, fmt.Sprintf("achieved %.1f/s of the %.1f/s offered (%.1f%%, below %.1f%%)", st.AchievedRate, st.OfferedRate, ratio*100, sat.minAchieved*100))
		}
	case st.TargetRate > 0:
		ratio := st.AchievedRate / st.TargetRate
		if f := sat.floor(st.TargetRate); ratio < f {
			saturated = append(saturated, fmt.Sprintf("achieved %.1f/s of %.1f/s target (%.1f%%, below %.1f%%)", st.AchievedRate, st.TargetRate, ratio*100, f*100))
		}
	}
	if st.ScheduleLagP99Ms > sat.maxLagMs {
		saturated = append(saturated, fmt.Sprintf("schedule lag p99 %.1f ms, above %.0f ms", st.ScheduleLagP99Ms, sat.maxLagMs))
	}
	st.Reasons = append(breach, saturated...)
	switch {
	case len(breach) > 0:
		st.Verdict = result.StepBreach
	case len(saturated) > 0:
		st.Verdict = result.StepSaturated
	default:
		st.Verdict = result.StepOK
	}
}

// stepFunc runs the load at rate and measures it; phase is "ladder" or "refine".
// It fills in the SLO verdict; the search judges saturation.
type stepFunc func(ctx context.Context, index int, phase string, rate float64) (result.CapacityStep, error)

// searchResult is what the search found.
type searchResult struct {
	steps       []result.CapacityStep
	sustainable float64
	// limitFound is true when the climb ended on a step that breached an SLO or
	// saturated: the limit lies below that step. Otherwise the sustainable rate is
	// only a lower bound.
	limitFound  bool
	stopped     string
	interrupted bool
	err         error
}

// search climbs the ladder until a step breaches an SLO or saturates the database
// (the first bad step ends the climb), then bisects refine times between the last
// good and the first bad rate. bounded says the ladder ends at a rate asked for
// (rather than at the safety bound). onStep, if set, is called after each step.
func search(ctx context.Context, rates []float64, bounded bool, refine int, sat saturation, run stepFunc, onStep func(i, total int, s result.CapacityStep)) searchResult {
	var sr searchResult
	total := len(rates)
	do := func(phase string, rate float64) (result.CapacityStep, bool) {
		i := len(sr.steps)
		st, err := run(ctx, i, phase, rate)
		st.Phase, st.TargetRate = phase, rate
		switch {
		case ctx.Err() != nil:
			st.Verdict = result.StepInterrupted
			st.Reasons = append(st.Reasons, "interrupted")
			sr.interrupted = true
		case err != nil:
			st.Verdict = result.StepFailed
			st.Reasons = append(st.Reasons, err.Error())
			sr.err = err
		}
		judge(&st, sat)
		sr.steps = append(sr.steps, st)
		if onStep != nil {
			onStep(i, total, st)
		}
		return st, st.OK()
	}
	name := func(i int, st result.CapacityStep) string {
		return fmt.Sprintf("step %d (%s/s)", i+1, FmtRate(st.TargetRate))
	}
	lastGood, firstBad := 0.0, 0.0
	for _, r := range rates {
		st, ok := do("ladder", r)
		if ok {
			lastGood = r
			sr.sustainable = r
			continue
		}
		i := len(sr.steps) - 1
		switch st.Verdict {
		case result.StepInterrupted:
			sr.stopped = name(i, st) + " was interrupted"
			return sr
		case result.StepFailed:
			sr.stopped = name(i, st) + " failed: " + strings.Join(st.Reasons, "; ")
			return sr
		case result.StepBreach:
			sr.stopped = name(i, st) + " breached an SLO: " + someReasons(st.Reasons)
		default:
			sr.stopped = name(i, st) + " saturated the database: " + someReasons(st.Reasons)
		}
		firstBad = r
		sr.limitFound = true
		break
	}
	if firstBad == 0 {
		if len(rates) > 0 {
			top := FmtRate(rates[len(rates)-1])
			if bounded {
				sr.stopped = fmt.Sprintf("reached the highest rate asked for (%s/s) with every step within the SLOs: the limit is at least %s/s; raise the highest rate (--to) to find it", top, top)
			} else {
				sr.stopped = fmt.Sprintf("reached the safety bound (%s/s, %d steps) with every step within the SLOs: the limit is at least %s/s and was not found", top, len(rates), top)
			}
		}
		return sr
	}
	if lastGood == 0 || refine == 0 {
		return sr
	}
	lo, hi := lastGood, firstBad
	n := 0
	for ; n < refine && hi-lo > math.Max(1, lo*0.02); n++ {
		mid := roundRate((lo + hi) / 2)
		if mid <= lo || mid >= hi {
			break
		}
		st, ok := do("refine", mid)
		if st.Verdict == result.StepInterrupted || st.Verdict == result.StepFailed {
			sr.stopped += fmt.Sprintf("; refinement stopped: %s", strings.Join(st.Reasons, "; "))
			return sr
		}
		if ok {
			lo = mid
			sr.sustainable = mid
		} else {
			hi = mid
		}
	}
	sr.stopped += fmt.Sprintf("; refined between %s/s and %s/s in %d step(s)", FmtRate(lastGood), FmtRate(firstBad), n)
	return sr
}

// StepLine is the progress line printed after each step; total is the ladder's
// length when it is bounded, else 0.
func StepLine(i, total int, s result.CapacityStep) string {
	var of string
	switch {
	case s.Phase != "ladder":
		of = " (refine)"
	case total > 0:
		of = "/" + strconv.Itoa(total)
	}
	line := fmt.Sprintf("step %d%s  target %7s/s  achieved %9.1f/s  p50 %7.2f ms  p99 %8.2f ms  p99.9 %8.2f ms  errors %5d  lag p99 %6.1f ms  %s",
		i+1, of, FmtRate(s.TargetRate), s.AchievedRate, s.P50Ms, s.P99Ms, s.P999Ms, s.Errors, s.ScheduleLagP99Ms, strings.ToUpper(s.Verdict))
	if len(s.Reasons) > 0 {
		line += ": " + someReasons(s.Reasons)
	}
	return line
}

// someReasons joins the first three reasons and counts the rest: a breach at a
// saturating rate fails one latency check per operation.
func someReasons(rs []string) string {
	const show = 3
	if len(rs) <= show {
		return strings.Join(rs, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(rs[:show], "; "), len(rs)-show)
}
