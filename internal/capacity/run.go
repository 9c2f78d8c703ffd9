package capacity

import (
	"context"

	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rehearse-dev/rehearse/internal/engine"
	"github.com/rehearse-dev/rehearse/internal/slo"
	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/report"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// Env is where a sign-off runs and reports.
type Env struct {
	// Out is the output directory; each step's latency.hlog goes under steps/.
	Out string
	// Log gets what is happening; Progress one line per step (nil: none).
	Log, Progress io.Writer
	// Keep leaves the shared target running after the search.
	Keep bool
	// Engine opens the targets; its Target.Dir is set per target.
	Engine engine.Config
}

// Run runs the sign-off. sc must be valid and ready for it: the open model without
// ramp stages, its cutover enabled only with cfg.WithCutover; cfg must have its
// defaults (Config.WithDefaults). The result is complete also when the error is
// not nil: the error wraps engine.ErrInterrupted when interrupted, ErrBelowPeak when
// the sustainable rate is below the peak (or none was), or is a step's runtime
// failure.
func Run(ctx context.Context, sc *scenarios.Scenario, cfg Config, env Env) (*result.CapacityResult, error) {
	if env.Log == nil {
		env.Log = io.Discard
	}
	rates := cfg.Rates()
	r := &runner{sc: sc, cfg: cfg, env: env, baseRate: sc.EffectiveRate(), baseSessions: sc.Load.Sessions}
	if r.baseRate <= 0 {
		r.baseRate = cfg.From
	}
	r.maxSessions = r.sessionsFor(slices.Max(rates))
	started := time.Now()
	bg := context.WithoutCancel(ctx)
	if !cfg.WithCutover {
		reh, err := r.open(ctx, env.Out)
		if err != nil {
			removeEmptyPg(env.Out)
			return nil, err
		}
		r.shared = reh
		defer func() {
			reh.Close(bg, env.Keep)
			removeEmptyPg(env.Out)
		}()
	}
	if cfg.Bounded() {
		fmt.Fprintf(env.Log, "capacity: %d steps from %s/s to %s/s (step %s), %v each (first %v warm-up)\n",
			len(rates), FmtRate(rates[0]), FmtRate(rates[len(rates)-1]), cfg.Step, cfg.Hold, cfg.Warmup)
	} else {
		fmt.Fprintf(env.Log, "capacity: climbing from %s/s (step %s) until a step breaches an SLO or saturates (at most %d steps, %s/s), %v each (first %v warm-up)\n",
			FmtRate(rates[0]), cfg.Step, len(rates), FmtRate(rates[len(rates)-1]), cfg.Hold, cfg.Warmup)
	}
	sat := saturation{maxLagMs: cfg.MaxLagMs, minAchieved: cfg.MinAchieved, window: cfg.Hold - cfg.Warmup}
	if cfg.WithCutover {
		// A switchover stalls operations by design, and the stall shows as schedule
		// lag; the scenario's SLOs (per phase, unavailability) judge it instead.
		sat.maxLagMs = math.Inf(1)
	}
	total := 0
	if cfg.Bounded() {
		total = len(rates)
	}
	sr := search(ctx, rates, cfg.Bounded(), cfg.Refine, sat, r.step, func(i, _ int, s result.CapacityStep) {
		if env.Progress != nil {
			fmt.Fprintln(env.Progress, StepLine(i, total, s))
		}
	})
	res := r.assemble(sr, started)
	switch {
	case sr.interrupted:
		return res, fmt.Errorf("%w: results so far are in %s", engine.ErrInterrupted, env.Out)
	case sr.err != nil:
		return res, fmt.Errorf("capacity step failed (results so far are in %s): %w", env.Out, sr.err)
	case !res.Capacity.Passed:
		return res, ErrBelowPeak
	}
	return res, nil
}

// runner is one capacity sign-off in progress.
type runner struct {
	sc           *scenarios.Scenario
	cfg          Config
	env          Env
	baseRate     float64
	baseSessions int
	maxSessions  int
	versions     map[string]string
	shared       *engine.Rehearsal // without cutover: one target for every step
}

// sessionsFor scales the scenario's sessions with the rate, so every step has as
// many users per action as the scenario; at least enough to keep every worker busy.
func (r *runner) sessionsFor(rate float64) int {
	n := int(math.Ceil(float64(r.baseSessions) * rate / r.baseRate))
	return max(n, 2*r.sc.Load.Workers, 1)
}

// open starts a target in dir with the workload set up for the largest step.
func (r *runner) open(ctx context.Context, dir string) (*engine.Rehearsal, error) {
	ec := r.env.Engine
	ec.Target.Dir = dir
	ec.Target.Log = r.env.Log
	ec.ActiveSessions = r.maxSessions
	reh, err := engine.Open(ctx, r.sc, ec)
	if err != nil {
		return nil, err
	}
	r.versions = reh.Versions()
	return reh, nil
}

// removeEmptyPg removes the embedded server's work directory under dir once the
// server has removed its data (it stays when the server was kept).
func removeEmptyPg(dir string) { _ = os.Remove(filepath.Join(dir, "pg")) }

// step runs one step: on the shared target, or on a fresh cluster with a cutover.
func (r *runner) step(ctx context.Context, index int, phase string, rate float64) (result.CapacityStep, error) {
	sessions := r.sessionsFor(rate)
	rel := filepath.Join("steps", fmt.Sprintf("%02d-%s", index+1, FmtRate(rate)))
	dir := filepath.Join(r.env.Out, rel)
	st := result.CapacityStep{TargetRate: rate, Sessions: sessions, Dir: rel}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return st, fmt.Errorf("creating %s: %w", dir, err)
	}
	reh := r.shared
	if r.cfg.WithCutover {
		var err error
		if reh, err = r.open(ctx, dir); err != nil {
			removeEmptyPg(dir)
			return st, err
		}
		defer func() {
			reh.Close(context.WithoutCancel(ctx), false)
			removeEmptyPg(dir)
		}()
	}
	fmt.Fprintf(r.env.Log, "step %d: %s/s from %d sessions for %v\n", index+1, FmtRate(rate), sessions, r.cfg.Hold)
	out, err := reh.Step(ctx, engine.StepSpec{
		Rate: rate, Sessions: sessions, Duration: r.cfg.Hold,
		Cutover: r.cfg.WithCutover, Dir: dir, Retain: loadgen.RetainAll,
	})
	if err != nil {
		return st, err
	}
	if err := engine.FinishHlog(out.Hlog, dir); err != nil {
		return st, err
	}
	res := out.Result
	steady, err := out.Window(r.cfg.Warmup, loadgen.RetainAll)
	if err != nil {
		return st, err
	}
	if res.Migration != nil {
		st.Cutover = res.Migration.Outcome
	} else {
		// Judge the SLOs on the steady part of the step: every operation's latency
		// after the warm-up (without a cutover, the whole step is the "before" phase).
		for i := range res.Operations {
			op := &res.Operations[i]
			if l, ok := steady.PerOp[op.Name]; ok {
				op.LatencyMs = l
				if p, ok := op.Phases[result.PhaseBefore]; ok {
					p.LatencyMs = l
					op.Phases[result.PhaseBefore] = p
				}
			}
		}
	}
	res.SLO = slo.Evaluate(res, out.Scenario.SLO)
	// The window measured: from the warm-up to the hold, or with a cutover to when
	// the load stopped (it runs on until the cutover has settled).
	end := r.cfg.Hold
	if r.cfg.WithCutover {
		end = max(end, out.Elapsed.Truncate(time.Second))
	}
	measure(&st, res, steady, r.cfg.Warmup, end)
	st.OfferedRate = offeredRate(out.Scenario, r.cfg.Warmup, end)
	st.SLO = res.SLO
	if out.CutoverErr != nil {
		st.Verdict = result.StepFailed
		st.Reasons = append(report.Reasons(res.SLO), "cutover failed: "+out.CutoverErr.Error())
	}
	switch {
	case res.Interrupted:
		return st, engine.ErrInterrupted
	case out.VerifyErr != nil:
		return st, fmt.Errorf("integrity check failed to run: %w", out.VerifyErr)
	}
	return st, nil
}

// measure fills the step's numbers from its result: throughput from the timeline
// rows of the window [from, to), latency from the steady histograms, and
// transactions and errors over the whole step, as the error-rate SLO counts them.
func measure(st *result.CapacityStep, res *result.Result, s loadgen.WindowLatency, from, to time.Duration) {
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
		st.AchievedRate = engine.Round3(float64(done) / w)
	}
	st.Transactions = res.Totals.Transactions
	st.Errors = res.Totals.Failed
	if st.Transactions > 0 {
		st.ErrorRate = float64(st.Errors) / float64(st.Transactions)
	}
	st.P50Ms, st.P99Ms, st.P999Ms, st.MaxMs = s.All.P50, s.All.P99, s.All.P999, s.All.Max
	st.ScheduleLagP99Ms = res.Load.ScheduleLagP99Ms
}

// offeredRate replays the step's arrival schedule (engine.Schedule: the same
// profile, arrival process and seed) and returns the rate of the arrivals due in
// the measured window. A Poisson schedule with a fixed seed offers a few percent
// more or less than the target in a short window; comparing completions with it
// tells saturation from sampling noise.
func offeredRate(sc *scenarios.Scenario, from, to time.Duration) float64 {
	p, _ := engine.Schedule(sc)
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
	return engine.Round3(float64(n) / w)
}
