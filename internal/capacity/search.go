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
	s := &searcher{ctx: ctx, sat: sat, run: run, onStep: onStep, total: len(rates)}
	lastGood, firstBad, ok := s.climb(rates, bounded)
	if ok && lastGood > 0 && refine > 0 {
		s.refine(lastGood, firstBad, refine)
	}
	return s.sr
}

// searcher is one search in progress.
type searcher struct {
	ctx    context.Context
	sat    saturation
	run    stepFunc
	onStep func(i, total int, s result.CapacityStep)
	total  int
	sr     searchResult
}

// do runs and judges one step, records it, and reports whether it was sustainable.
func (s *searcher) do(phase string, rate float64) (result.CapacityStep, bool) {
	i := len(s.sr.steps)
	st, err := s.run(s.ctx, i, phase, rate)
	st.Phase, st.TargetRate = phase, rate
	switch {
	case s.ctx.Err() != nil:
		st.Verdict = result.StepInterrupted
		st.Reasons = append(st.Reasons, "interrupted")
		s.sr.interrupted = true
	case err != nil:
		st.Verdict = result.StepFailed
		st.Reasons = append(st.Reasons, err.Error())
		s.sr.err = err
	}
	judge(&st, s.sat)
	s.sr.steps = append(s.sr.steps, st)
	if s.onStep != nil {
		s.onStep(i, s.total, st)
	}
	return st, st.OK()
}

// climb runs the ladder up to the first bad step. It returns the last good and the
// first bad rate, and whether the climb found the limit (a breach or saturation,
// which refinement may narrow); an interrupted or failed step ends the search.
func (s *searcher) climb(rates []float64, bounded bool) (lastGood, firstBad float64, found bool) {
	for _, r := range rates {
		st, ok := s.do("ladder", r)
		if ok {
			lastGood = r
			s.sr.sustainable = r
			continue
		}
		name := fmt.Sprintf("step %d (%s/s)", len(s.sr.steps), FmtRate(st.TargetRate))
		switch st.Verdict {
		case result.StepInterrupted:
			s.sr.stopped = name + " was interrupted"
			return lastGood, r, false
		case result.StepFailed:
			s.sr.stopped = name + " failed: " + strings.Join(st.Reasons, "; ")
			return lastGood, r, false
		case result.StepBreach:
			s.sr.stopped = name + " breached an SLO: " + someReasons(st.Reasons)
		default:
			s.sr.stopped = name + " saturated the database: " + someReasons(st.Reasons)
		}
		s.sr.limitFound = true
		return lastGood, r, true
	}
	if len(rates) > 0 {
		top := FmtRate(rates[len(rates)-1])
		if bounded {
			s.sr.stopped = fmt.Sprintf("reached the highest rate asked for (%s/s) with every step within the SLOs: the limit is at least %s/s; raise the highest rate (--to) to find it", top, top)
		} else {
			s.sr.stopped = fmt.Sprintf("reached the safety bound (%s/s, %d steps) with every step within the SLOs: the limit is at least %s/s and was not found", top, len(rates), top)
		}
	}
	return lastGood, 0, false
}

// refine bisects up to n times between the last good and the first bad rate.
func (s *searcher) refine(lastGood, firstBad float64, n int) {
	lo, hi := lastGood, firstBad
	done := 0
	for ; done < n && hi-lo > math.Max(1, lo*0.02); done++ {
		mid := roundRate((lo + hi) / 2)
		if mid <= lo || mid >= hi {
			break
		}
		st, ok := s.do("refine", mid)
		if st.Verdict == result.StepInterrupted || st.Verdict == result.StepFailed {
			s.sr.stopped += fmt.Sprintf("; refinement stopped: %s", strings.Join(st.Reasons, "; "))
			return
		}
		if ok {
			lo = mid
			s.sr.sustainable = mid
		} else {
			hi = mid
		}
	}
	s.sr.stopped += fmt.Sprintf("; refined between %s/s and %s/s in %d step(s)", FmtRate(lastGood), FmtRate(firstBad), done)
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
