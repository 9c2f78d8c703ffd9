package rehearse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rehearse-dev/rehearse/internal/slo"
	"github.com/rehearse-dev/rehearse/report"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workload"
)

// ErrBelowPeak means a capacity sign-off found a sustainable rate below the declared
// peak, or no sustainable rate at all. Capacity wraps it together with
// ErrSLOBreached, so the CLI exits 3.
var ErrBelowPeak = errors.New("sustainable rate below the peak")

// Capacity search defaults.
const (
	// DefaultCapacityHold is how long each step holds its rate.
	DefaultCapacityHold = 15 * time.Second
	// DefaultCapacityWarmup is the start of each step left out of its measurements.
	DefaultCapacityWarmup = 2 * time.Second
	// DefaultCapacityFactor is the default step: each rate is 1.5× the previous.
	DefaultCapacityFactor = 1.5
	// DefaultMaxLagMs is the schedule lag p99 above which a step counts as saturated:
	// the load generator could not start operations on time because every worker was
	// waiting for the database. On a shared 2-core machine, CPU contention alone
	// makes a few tens of milliseconds, hence not lower.
	DefaultMaxLagMs = 100.0
	// DefaultMinAchieved is the achieved/target ratio below which a step counts as
	// saturated (loosened for small samples, see saturationFloor).
	DefaultMinAchieved = 0.97
)

// RateStep is how a capacity search climbs from one rate to the next: by adding Add
// actions/s, or by multiplying by Factor (exactly one is set).
type RateStep struct {
	Add    float64
	Factor float64
}

// ParseRateStep parses a --step value: an increment ("250") or a factor ("x1.5").
func ParseRateStep(s string) (RateStep, error) {
	t := strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(strings.ToLower(t), "x"); ok {
		f, err := strconv.ParseFloat(rest, 64)
		if err != nil || f <= 1 || math.IsInf(f, 0) {
			return RateStep{}, fmt.Errorf("%w: step %q: a factor must be a number above 1, e.g. x1.5", ErrInvalidInput, s)
		}
		return RateStep{Factor: f}, nil
	}
	a, err := strconv.ParseFloat(t, 64)
	if err != nil || a <= 0 || math.IsInf(a, 0) {
		return RateStep{}, fmt.Errorf("%w: step %q: write an increment in actions/s (250) or a factor (x1.5)", ErrInvalidInput, s)
	}
	return RateStep{Add: a}, nil
}

// String formats the step as ParseRateStep reads it.
func (s RateStep) String() string {
	if s.Factor > 0 {
		return "x" + strconv.FormatFloat(s.Factor, 'f', -1, 64)
	}
	return strconv.FormatFloat(s.Add, 'f', -1, 64)
}

// CapacityConfig is the rate search of a capacity sign-off. Zero fields take their
// defaults (see Capacity).
type CapacityConfig struct {
	// From is the first rate (actions/s); default 25% of the scenario's rate, or 100.
	From float64
	// To is the highest rate tried; default 4× the peak, or 16× the scenario's rate.
	To float64
	// Step climbs from one rate to the next; default ×1.5.
	Step RateStep
	// Hold is how long each step holds its rate; default 15s.
	Hold time.Duration
	// Warmup is the start of each step left out of its measurements; default 2s.
	Warmup time.Duration
	// Refine bisects this many more times between the last good and the first bad
	// rate after the climb stops; default 0.
	Refine int
	// WithCutover runs the scenario's cutover (wet) in every step, on a fresh
	// cluster per step.
	WithCutover bool
	// Peak overrides the scenario's slo.peak_rate.
	Peak float64
	// MaxLagMs and MinAchieved override the saturation thresholds.
	MaxLagMs    float64
	MinAchieved float64
}

// withDefaults fills the zero fields for sc and returns every problem at once.
func (c CapacityConfig) withDefaults(sc *scenarios.Scenario) (CapacityConfig, []string) {
	var problems []string
	base := sc.EffectiveRate()
	if c.Peak == 0 {
		c.Peak = sc.SLO.PeakRate
	}
	if c.From == 0 {
		c.From = 100
		if base > 0 {
			c.From = roundRate(base / 4)
		}
	}
	if c.To == 0 {
		switch {
		case c.Peak > 0:
			c.To = 4 * c.Peak
		case base > 0:
			c.To = 16 * base
		default:
			c.To = 16 * c.From
		}
		c.To = math.Max(c.To, c.From)
	}
	if c.Step == (RateStep{}) {
		c.Step = RateStep{Factor: DefaultCapacityFactor}
	}
	if c.Hold == 0 {
		c.Hold = DefaultCapacityHold
	}
	if c.Warmup == 0 {
		c.Warmup = DefaultCapacityWarmup
	}
	if c.MaxLagMs == 0 {
		c.MaxLagMs = DefaultMaxLagMs
	}
	if c.MinAchieved == 0 {
		c.MinAchieved = DefaultMinAchieved
	}
	switch {
	case c.From <= 0 || math.IsNaN(c.From) || math.IsInf(c.From, 0):
		problems = append(problems, fmt.Sprintf("--from %v must be a positive rate (actions/s)", c.From))
	case c.To < c.From || math.IsInf(c.To, 0):
		problems = append(problems, fmt.Sprintf("--to %v must be at least --from %v", c.To, c.From))
	}
	if (c.Step.Add > 0) == (c.Step.Factor > 0) || c.Step.Add < 0 || (c.Step.Factor != 0 && c.Step.Factor <= 1) {
		problems = append(problems, fmt.Sprintf("--step %s: set an increment (250) or a factor above 1 (x1.5)", c.Step))
	}
	if c.Peak < 0 {
		problems = append(problems, fmt.Sprintf("--peak %v must be positive", c.Peak))
	}
	if c.Hold%time.Second != 0 || c.Hold < 3*time.Second {
		problems = append(problems, fmt.Sprintf("--hold %v must be whole seconds, at least 3s", c.Hold))
	}
	if c.Warmup < 0 || c.Warmup%time.Second != 0 || c.Hold-c.Warmup < 2*time.Second {
		problems = append(problems, fmt.Sprintf("--warmup %v must be whole seconds and leave at least 2s of --hold %v measured", c.Warmup, c.Hold))
	}
	if c.Refine < 0 || c.Refine > 10 {
		problems = append(problems, fmt.Sprintf("--refine %d must be between 0 and 10", c.Refine))
	}
	if c.MinAchieved < 0 || c.MinAchieved > 1 {
		problems = append(problems, fmt.Sprintf("minimum achieved ratio %v must be between 0 and 1", c.MinAchieved))
	}
	if len(problems) == 0 && len(c.rates()) > 200 {
		problems = append(problems, fmt.Sprintf("--from %v --to %v --step %s makes more than 200 steps: use a larger --step", c.From, c.To, c.Step))
	}
	return c, problems
}

// rates is the ladder: From, then each step up, while at most To.
func (c CapacityConfig) rates() []float64 {
	var out []float64
	for r := c.From; r <= c.To*(1+1e-9) && len(out) <= 200; {
		out = append(out, roundRate(r))
		if c.Step.Factor > 1 {
			r *= c.Step.Factor
		} else if c.Step.Add > 0 {
			r += c.Step.Add
		} else {
			break
		}
	}
	return out
}

// roundRate keeps rates readable: whole actions/s from 20 up, else one decimal.
func roundRate(r float64) float64 {
	if r >= 20 {
		return math.Round(r)
	}
	return math.Round(r*10) / 10
}

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
	stopped     string
	interrupted bool
	err         error
}

// search climbs the ladder until a step breaches an SLO or saturates the database
// (the first bad step ends the climb), then bisects refine times between the last
// good and the first bad rate. report, if set, is called after each step.
func search(ctx context.Context, rates []float64, refine int, sat saturation, run stepFunc, onStep func(i, total int, s result.CapacityStep)) searchResult {
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
		return fmt.Sprintf("step %d (%s/s)", i+1, fmtRateInt(st.TargetRate))
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
		break
	}
	if firstBad == 0 {
		if len(rates) > 0 {
			sr.stopped = fmt.Sprintf("reached the highest rate asked for (%s/s) with every step within the SLOs: raise --to to find the limit", fmtRateInt(rates[len(rates)-1]))
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
	sr.stopped += fmt.Sprintf("; refined between %s/s and %s/s in %d step(s)", fmtRateInt(lastGood), fmtRateInt(firstBad), n)
	return sr
}

// fmtRateInt formats a rate for a sentence: 1709, 12.5.
func fmtRateInt(r float64) string {
	if r >= 20 || r == math.Trunc(r) {
		return strconv.FormatFloat(math.Round(r), 'f', 0, 64)
	}
	return strconv.FormatFloat(r, 'f', 1, 64)
}

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

// capacityKnee finds the knee over the measured steps in order of target rate and
// returns its index into steps, or -1.
func capacityKnee(steps []result.CapacityStep) int {
	var idx []int
	for i, s := range steps {
		if s.Transactions > 0 && s.P99Ms > 0 && s.Verdict != result.StepInterrupted && s.Verdict != result.StepFailed {
			idx = append(idx, i)
		}
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
		return -1
	}
	return idx[k]
}

// Capacity runs a capacity sign-off: the scenario's workload, open-loop, at
// increasing arrival rates (cfg), each held for cfg.Hold and judged by the
// scenario's SLOs, until a step breaches one or saturates the database. It returns
// the highest sustainable rate, the knee of the latency curve and the headroom over
// the declared peak (slo.peak_rate or cfg.Peak), and writes result.json (schema
// result.SchemaCapacityV1), report.md and report.html to the output directory
// (WithOut), each step's latency.hlog under steps/.
//
// Without cutover the target (embedded PostgreSQL or WithDSN) starts once, the
// workload is set up once and every step runs against it; the scenario's cutover
// section is ignored. With cfg.WithCutover, every step starts a fresh cluster, sets
// up the workload and runs the cutover for real (a cutover ends with the old writer
// decommissioned, so a cluster serves one step).
//
// Defaults: From 25% of the scenario's rate (100/s without one); To 4× the peak, or
// 16× the scenario's rate without a peak; Step ×1.5; Hold 15s with the first 2s
// (Warmup) left out of each step's numbers. Each step scales the scenario's
// sessions with its rate.
//
// The error wraps ErrSLOBreached and ErrBelowPeak when the sustainable rate is below
// the peak, or when no step was sustainable (with or without a peak);
// ErrInterrupted when interrupted (results so far are written); ErrInvalidInput for
// bad input. Any other error is a runtime failure.
func Capacity(ctx context.Context, sc *scenarios.Scenario, cfg CapacityConfig, opts ...Option) (*result.CapacityResult, error) {
	o := options{mode: "dry", now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	if sc == nil {
		return nil, fmt.Errorf("%w: no scenario", ErrInvalidInput)
	}
	base := sc.Clone()
	if cfg.WithCutover {
		if !base.Cutover.Enabled {
			return nil, fmt.Errorf("%w: --with-cutover runs the scenario's cutover in every step, but its cutover section is not enabled (cutover.enabled: true)", ErrInvalidInput)
		}
		o.mode = "wet"
	} else {
		base.Cutover.Enabled = false
		o.mode = "dry"
	}
	base.Load.Model = "open"
	base.Load.Stages = nil
	cfg, problems := cfg.withDefaults(base)
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w:\n  %s", ErrInvalidInput, strings.Join(problems, "\n  "))
	}
	base, err := o.apply(base)
	if err != nil {
		return nil, err
	}
	if cfg.WithCutover && base.Target.DSN != "" {
		return nil, fmt.Errorf("%w: --with-cutover needs clusters rehearse manages (--target local); --dsn points at a database it cannot fail over", ErrInvalidInput)
	}
	if cfg.WithCutover && time.Duration(base.Cutover.Warmup) >= cfg.Hold {
		return nil, fmt.Errorf("%w: --hold %v must be longer than the cutover's warmup %v", ErrInvalidInput, cfg.Hold, base.Cutover.Warmup)
	}
	logw := o.log
	if logw == nil {
		logw = io.Discard
	}
	outDir := o.out
	if outDir == "" {
		outDir = DefaultOutDir(base, o.now())
	}
	if err := prepareOut(outDir); err != nil {
		return nil, err
	}
	rates := cfg.rates()
	cr := &capRun{
		sc: base, o: &o, cfg: cfg, out: outDir, logw: logw,
		baseRate: base.EffectiveRate(), baseSessions: base.Load.Sessions,
		versions: map[string]string{"rehearse": Version(), "go": runtime.Version()},
	}
	if cr.baseRate <= 0 {
		cr.baseRate = cfg.From
	}
	cr.maxSessions = cr.sessionsFor(slices.Max(rates))
	started := time.Now()
	bg := context.WithoutCancel(ctx)
	if !cfg.WithCutover {
		if err := cr.startShared(ctx); err != nil {
			cr.closeShared(bg)
			return nil, err
		}
		defer cr.closeShared(bg)
	}
	fmt.Fprintf(logw, "capacity: %d steps from %s/s to %s/s (step %s), %v each (first %v warm-up)\n",
		len(rates), fmtRateInt(rates[0]), fmtRateInt(rates[len(rates)-1]), cfg.Step, cfg.Hold, cfg.Warmup)
	sat := saturation{maxLagMs: cfg.MaxLagMs, minAchieved: cfg.MinAchieved, window: cfg.Hold - cfg.Warmup}
	if cfg.WithCutover {
		// A switchover stalls operations by design, and the stall shows as schedule
		// lag; the scenario's SLOs (per phase, unavailability) judge it instead.
		sat.maxLagMs = math.Inf(1)
	}
	sr := search(ctx, rates, cfg.Refine, sat, cr.step, func(i, total int, s result.CapacityStep) {
		if o.progress != nil {
			fmt.Fprintln(o.progress, stepLine(i, total, s))
		}
	})
	res := cr.result(sr, started)
	if err := writeCapacity(outDir, res); err != nil {
		return res, err
	}
	switch {
	case sr.interrupted:
		return res, fmt.Errorf("%w: results so far are in %s", ErrInterrupted, outDir)
	case sr.err != nil:
		return res, fmt.Errorf("capacity step failed (results so far are in %s): %w", outDir, sr.err)
	case !res.Capacity.Passed:
		return res, fmt.Errorf("%w: %w: %s", ErrSLOBreached, ErrBelowPeak, report.CapacityVerdict(res))
	}
	return res, nil
}

// stepLine is the progress line printed after each step.
func stepLine(i, total int, s result.CapacityStep) string {
	of := ""
	if s.Phase == "ladder" {
		of = "/" + strconv.Itoa(total)
	} else {
		of = " (refine)"
	}
	line := fmt.Sprintf("step %d%s  target %7s/s  achieved %9.1f/s  p50 %7.2f ms  p99 %8.2f ms  p99.9 %8.2f ms  errors %5d  lag p99 %6.1f ms  %s",
		i+1, of, fmtRateInt(s.TargetRate), s.AchievedRate, s.P50Ms, s.P99Ms, s.P999Ms, s.Errors, s.ScheduleLagP99Ms, strings.ToUpper(s.Verdict))
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

// capRun is one capacity sign-off in progress.
type capRun struct {
	sc           *scenarios.Scenario
	o            *options
	cfg          CapacityConfig
	out          string
	logw         io.Writer
	baseRate     float64
	baseSessions int
	maxSessions  int
	versions     map[string]string

	// shared target, workload and pools (without cutover)
	tgt *target
	wl  workload.Workload
	eps *endpoints
}

// sessionsFor scales the scenario's sessions with the rate, so every step has as
// many users per action as the scenario; at least enough to keep every worker busy.
func (c *capRun) sessionsFor(rate float64) int {
	n := int(math.Ceil(float64(c.baseSessions) * rate / c.baseRate))
	return max(n, 2*c.sc.Load.Workers, 1)
}

// stepScenario is the scenario of one step: the base at rate, for Hold.
func (c *capRun) stepScenario(rate float64) *scenarios.Scenario {
	s := c.sc.Clone()
	s.Load.Rate = rate
	s.Load.Stages = nil // a step holds its own rate; the scenario's ramp does not apply
	s.Load.Duration = scenarios.Duration(c.cfg.Hold)
	s.Load.Sessions = c.sessionsFor(rate)
	return s
}

// prepare starts a target, connects and sets the workload up.
func (c *capRun) prepare(ctx context.Context, dir string) (*target, workload.Workload, *endpoints, error) {
	wl, err := newWorkload(c.sc.Workload)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	if a, ok := wl.(activeSessions); ok {
		a.SetActiveSessions(c.maxSessions)
	}
	tgt, err := startTarget(ctx, c.sc, c.o, dir, c.logw)
	if err != nil {
		return nil, nil, nil, err
	}
	eps, err := connect(ctx, tgt, c.sc)
	if err != nil {
		return tgt, nil, nil, err
	}
	fmt.Fprintf(c.logw, "setting up workload %s\n", wl.Name())
	if err := wl.Setup(ctx, eps.writer, c.logw); err != nil {
		if ctx.Err() != nil {
			return tgt, nil, eps, fmt.Errorf("%w: during workload setup: %w", ErrInterrupted, err)
		}
		return tgt, nil, eps, fmt.Errorf("workload setup failed: %w", err)
	}
	if v, err := eps.serverVersion(ctx); err == nil {
		c.versions["postgresql"] = v
	}
	return tgt, wl, eps, nil
}

func (c *capRun) startShared(ctx context.Context) error {
	var err error
	c.tgt, c.wl, c.eps, err = c.prepare(ctx, c.out)
	return err
}

func (c *capRun) closeShared(bg context.Context) {
	if c.eps != nil {
		c.eps.close()
	}
	if c.tgt != nil {
		cctx, cancel := context.WithTimeout(bg, verifyTimeout)
		defer cancel()
		c.tgt.close(cctx, c.o.keep, c.logw)
	}
	removeEmptyPg(c.out)
}

// removeEmptyPg removes the embedded server's work directory under dir once the
// server has removed its data (it stays when the server was kept).
func removeEmptyPg(dir string) { _ = os.Remove(filepath.Join(dir, "pg")) }

// step runs one step: on the shared target, or on a fresh cluster with a cutover.
func (c *capRun) step(ctx context.Context, index int, phase string, rate float64) (result.CapacityStep, error) {
	ssc := c.stepScenario(rate)
	rel := filepath.Join("steps", fmt.Sprintf("%02d-%s", index+1, fmtRateInt(rate)))
	dir := filepath.Join(c.out, rel)
	st := result.CapacityStep{TargetRate: rate, Sessions: ssc.Load.Sessions, Dir: rel}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return st, fmt.Errorf("creating %s: %w", dir, err)
	}
	bg := context.WithoutCancel(ctx)
	tgt, wl, eps := c.tgt, c.wl, c.eps
	var cut *cutover
	if c.cfg.WithCutover {
		var err error
		tgt, wl, eps, err = c.prepare(ctx, dir)
		defer func() {
			if eps != nil {
				eps.close()
			}
			if tgt != nil {
				cctx, cancel := context.WithTimeout(bg, verifyTimeout)
				defer cancel()
				tgt.close(cctx, false, c.logw)
				removeEmptyPg(dir)
			}
		}()
		if err != nil {
			return st, err
		}
		if tgt.provider() != nil {
			cut = newCutover(ssc, false, tgt, wl, eps, c.logw)
		}
	}
	fmt.Fprintf(c.logw, "step %d: %s/s from %d sessions for %v\n", index+1, fmtRateInt(rate), ssc.Load.Sessions, c.cfg.Hold)
	rr, err := runLoad(ctx, ssc, wl, eps, dir, nil, c.logw, cut)
	if err != nil {
		return st, err
	}
	hlog := filepath.Join(dir, HlogFile)
	if err := os.Rename(rr.hlogTmp, hlog); err != nil {
		return st, fmt.Errorf("writing %s: %w", hlog, err)
	}
	vctx, cancel := context.WithTimeout(bg, verifyTimeout)
	defer cancel()
	integ, verr := verify(vctx, wl, tgt)
	if verr != nil {
		integ = result.Integrity{Details: []string{"integrity check failed to run: " + verr.Error()}}
	}
	res := buildResult(ssc, c.o, rr, tgt, c.versions, integ)
	steady, err := steadyLatency(hlog, rr.start, c.cfg.Warmup)
	if err != nil {
		return st, err
	}
	if cut != nil {
		res.Migration = cut.mig
		if cut.mig != nil {
			st.Cutover = cut.mig.Outcome
		}
	} else {
		// Judge the SLOs on the steady part of the step: every operation's latency
		// after the warm-up (without a cutover, the whole step is the "before" phase).
		for i := range res.Operations {
			op := &res.Operations[i]
			if l, ok := steady.perOp[op.Name]; ok {
				op.LatencyMs = l
				if p, ok := op.Phases[result.PhaseBefore]; ok {
					p.LatencyMs = l
					op.Phases[result.PhaseBefore] = p
				}
			}
		}
	}
	res.SLO = slo.Evaluate(res, ssc.SLO)
	// The window measured: from the warm-up to the hold, or with a cutover to when
	// the load stopped (it runs on until the cutover has settled).
	end := c.cfg.Hold
	if cut != nil {
		end = max(end, rr.stats.Elapsed.Truncate(time.Second))
	}
	measure(&st, res, steady, c.cfg.Warmup, end)
	st.OfferedRate = offeredRate(ssc, c.cfg.Warmup, end)
	st.SLO = res.SLO
	if cut != nil && cut.err != nil {
		st.Verdict = result.StepFailed
		st.Reasons = append(report.Reasons(res.SLO), "cutover failed: "+cut.err.Error())
	}
	if rr.stats.Interrupted {
		return st, ErrInterrupted
	}
	if verr != nil {
		return st, fmt.Errorf("integrity check failed to run: %w", verr)
	}
	return st, nil
}

// steady is a step's latency after its warm-up, read back from its latency.hlog.
type steady struct {
	all   result.Latency
	perOp map[string]result.Latency
}

// steadyLatency merges the interval histograms of hlog that start at or after
// warmup, overall and per operation. Intervals are the load's one-second flushes.
func steadyLatency(path string, start time.Time, warmup time.Duration) (steady, error) {
	f, err := os.Open(path)
	if err != nil {
		return steady{}, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	r := hdr.NewHistogramLogReader(f)
	all := hdr.New(int64(time.Microsecond), int64(time.Hour), 3)
	per := map[string]*hdr.Histogram{}
	from := start.Add(warmup).UnixMilli() - 500 // interval starts fall on whole seconds of the run
	for {
		h, err := r.NextIntervalHistogram()
		if err != nil {
			return steady{}, fmt.Errorf("reading %s: %w", path, err)
		}
		if h == nil {
			break
		}
		if h.StartTimeMs() < from {
			continue
		}
		all.Merge(h)
		p := per[h.Tag()]
		if p == nil {
			p = hdr.New(int64(time.Microsecond), int64(time.Hour), 3)
			per[h.Tag()] = p
		}
		p.Merge(h)
	}
	out := steady{all: latencyOf(all), perOp: map[string]result.Latency{}}
	for k, h := range per {
		out.perOp[k] = latencyOf(h)
	}
	return out, nil
}

func latencyOf(h *hdr.Histogram) result.Latency {
	if h.TotalCount() == 0 {
		return result.Latency{}
	}
	ms := func(ns int64) float64 { return math.Round(float64(ns)/1e3) / 1e3 }
	return result.Latency{
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()),
	}
}

// measure fills the step's numbers from its result: throughput from the timeline
// rows of the window [from, to), latency from the steady histograms, and
// transactions and errors over the whole step, as the error-rate SLO counts them.
func measure(st *result.CapacityStep, res *result.Result, s steady, from, to time.Duration) {
	w0, w1 := from.Seconds(), to.Seconds()
	var done int64
	for _, row := range res.Timeline {
		// Operations finishing after the window (in the grace period) belong to
		// arrivals of the window, but are not throughput within it.
		if row.TS+1e-6 >= w0 && row.TS+1e-6 < w1 {
			done += row.Ops
		}
	}
	st.DurationS = res.DurationS
	if w := w1 - w0; w > 0 {
		st.AchievedRate = round3(float64(done) / w)
	}
	st.Transactions = res.Totals.Transactions
	st.Errors = res.Totals.Failed
	if st.Transactions > 0 {
		st.ErrorRate = float64(st.Errors) / float64(st.Transactions)
	}
	st.P50Ms, st.P99Ms, st.P999Ms, st.MaxMs = s.all.P50, s.all.P99, s.all.P999, s.all.Max
	st.ScheduleLagP99Ms = res.Load.ScheduleLagP99Ms
}

// offeredRate replays the step's arrival schedule, as runLoad builds it (same
// profile, arrival process and seed), and returns the rate of the arrivals due in
// the measured window. A Poisson schedule with a fixed seed offers a few percent
// more or less than the target in a short window; comparing completions with it
// tells saturation from sampling noise.
func offeredRate(sc *scenarios.Scenario, from, to time.Duration) float64 {
	p, _ := schedule(sc)
	var n int64
	prev := time.Duration(-1)
	for {
		due, ok := p.Next(prev)
		if !ok || due >= to {
			break
		}
		prev = due
		if due >= from {
			n++
		}
	}
	w := (to - from).Seconds()
	if w <= 0 {
		return 0
	}
	return round3(float64(n) / w)
}

// result assembles the capacity result.
func (c *capRun) result(sr searchResult, started time.Time) *result.CapacityResult {
	end := time.Now()
	k := result.Capacity{
		MaxSustainableRate: sr.sustainable,
		PeakRate:           c.cfg.Peak,
		StoppedBecause:     sr.stopped,
		WithCutover:        c.cfg.WithCutover,
		HoldS:              c.cfg.Hold.Seconds(),
		WarmupS:            c.cfg.Warmup.Seconds(),
		LatencyLimits:      latencyLimits(c.sc.SLO, c.cfg.WithCutover),
		Steps:              sr.steps,
		KneeStep:           capacityKnee(sr.steps),
	}
	if k.Steps == nil {
		k.Steps = []result.CapacityStep{}
	}
	if k.KneeStep >= 0 {
		k.KneeRate = k.Steps[k.KneeStep].AchievedRate
	}
	if k.PeakRate > 0 {
		k.Headroom = math.Round(k.MaxSustainableRate/k.PeakRate*1000) / 1000
		k.Passed = k.MaxSustainableRate >= k.PeakRate
	} else {
		k.Passed = k.MaxSustainableRate > 0
	}
	if sr.interrupted {
		k.Passed = false
	}
	res := &result.CapacityResult{
		Schema:      result.SchemaCapacityV1,
		Interrupted: sr.interrupted,
		Scenario:    result.ScenarioInfo{Name: c.sc.Name, File: c.sc.File, SHA256: c.sc.SHA256},
		Target: result.TargetInfo{
			Kind: c.sc.Target.Kind, EndpointMode: c.sc.Target.Endpoint, Versions: c.versions,
			Workload: c.sc.Workload.Name,
		},
		StartedAt: started.UTC(),
		EndedAt:   end.UTC(),
		DurationS: round3(end.Sub(started).Seconds()),
		Capacity:  k,
		Version:   Version(),
	}
	if c.sc.Target.DSN != "" {
		res.Target.Kind = "dsn"
	}
	if !c.cfg.WithCutover {
		res.Target.EndpointMode = ""
		res.Notes = append(res.Notes, "Every step ran against one database, set up once: data written by earlier steps stays, as it would in production. The scenario's cutover was not run (use --with-cutover).")
	} else {
		res.Notes = append(res.Notes, "Every step started a fresh cluster, seeded the workload and ran the scenario's cutover for real: a cutover decommissions the old writer, so a cluster serves one step.")
	}
	if c.cfg.Peak <= 0 {
		res.Notes = append(res.Notes, "The scenario declares no peak rate, so no headroom was computed and the verdict passes when some rate was sustainable: set slo.peak_rate in the scenario, or --peak, to judge against today's peak.")
	}
	lag := fmt.Sprintf(", or its schedule lag p99 (over the whole step) exceeds %.0f ms", c.cfg.MaxLagMs)
	if c.cfg.WithCutover {
		lag = " (schedule lag is not a criterion with a cutover, whose switchover stalls operations by design)"
	}
	res.Notes = append(res.Notes, fmt.Sprintf("A step is saturated when the operations it completed fall below %.0f%% of the arrivals its schedule offered in the measured window%s. Sessions scale with the rate (%d sessions at %s/s). The knee is the point of maximum curvature of p99 latency against the target rate on log-log axes (Kneedle).",
		c.cfg.MinAchieved*100, lag, c.baseSessions, fmtRateInt(c.baseRate)))
	return res
}

// latencyLimits lists the scenario's latency SLOs that apply to the steps: without a
// cutover the whole step is the "before" phase.
func latencyLimits(slo scenarios.SLO, withCutover bool) []result.LatencyLimit {
	out := []result.LatencyLimit{}
	for _, l := range slo.Latency {
		ph := l.Phase
		if !withCutover && ph != "" && ph != "all" && ph != result.PhaseBefore {
			continue
		}
		pct := l.Percentile
		if pct == 0 {
			pct = 99
		}
		out = append(out, result.LatencyLimit{Op: l.Op, Phase: ph, Percentile: pct, MaxMs: float64(l.Max.D().Microseconds()) / 1000})
	}
	return out
}

// writeCapacity writes the capacity report files; result.json last, as Run does.
func writeCapacity(dir string, res *result.CapacityResult) error {
	files := []struct {
		name   string
		render func(io.Writer, *result.CapacityResult) error
	}{
		{MarkdownFile, report.CapacityMarkdown},
		{HTMLFile, report.CapacityHTML},
		{ResultFile, result.EncodeCapacity},
	}
	for _, f := range files {
		if err := result.WriteFileAtomic(filepath.Join(dir, f.name), func(w io.Writer) error { return f.render(w, res) }); err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	return nil
}
