package rehearse

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rehearse-dev/rehearse/internal/capacity"
	"github.com/rehearse-dev/rehearse/report"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// CapacityConfig is the rate search of a capacity sign-off; zero fields take their
// defaults (see Capacity).
type CapacityConfig = capacity.Config

// RateStep is how a capacity search climbs from one rate to the next.
type RateStep = capacity.RateStep

// ParseRateStep parses a step: an increment ("250") or a factor ("x1.5").
func ParseRateStep(s string) (RateStep, error) {
	st, err := capacity.ParseRateStep(s)
	if err != nil {
		return st, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return st, nil
}

// Capacity runs a capacity sign-off: the scenario's workload, open-loop, at
// increasing arrival rates (cfg), each held for cfg.Hold and judged by the
// scenario's SLOs, until a step breaches one or saturates the database. It returns
// the highest sustainable rate, whether that is the limit or only a lower bound
// (capacity.limit_found), the knee of the latency curve (none when the curve is
// flat) and the headroom over the declared peak (slo.peak_rate or cfg.Peak), and
// writes result.json (schema result.SchemaCapacityV1), report.md and report.html to
// the output directory (WithOut), each step's latency.hlog under steps/.
//
// Without cutover the target starts once, the workload is set up once and every
// step runs against it; the scenario's cutover section is ignored. With
// cfg.WithCutover, every step starts a fresh cluster, sets up the workload and runs
// the cutover for real (a cutover ends with the old writer decommissioned, so a
// cluster serves one step).
//
// Defaults: From 25% of the scenario's rate (100/s without one); no To: the ladder
// climbs until a step breaches or saturates (at most capacity.MaxSteps steps and
// capacity.SafetyRate); Step ×1.5; Hold 15s with the first 2s (Warmup) left out of
// each step's numbers. Each step scales the scenario's sessions with its rate.
// WithMode, WithDuration, WithRate and WithSessions are rejected: the search sets
// them per step.
//
// The error wraps ErrSLOBreached and ErrBelowPeak when the sustainable rate is below
// the peak, or when no step was sustainable (with or without a peak);
// ErrInterrupted when interrupted (results so far are written); ErrInvalidInput for
// bad input. Any other error is a runtime failure.
func Capacity(ctx context.Context, sc *scenarios.Scenario, cfg CapacityConfig, opts ...Option) (*result.CapacityResult, error) {
	o := collect(opts)
	if err := o.reject("Capacity", "WithMode", "WithDuration", "WithRate", "WithSessions", "WithShard", "WithBarrierTimeout"); err != nil {
		return nil, err
	}
	if sc == nil {
		return nil, fmt.Errorf("%w: no scenario", ErrInvalidInput)
	}
	base := sc.Clone()
	base.Load.Model = "open"
	base.Load.Stages = nil
	base.Cutover.Enabled = base.Cutover.Enabled && cfg.WithCutover
	o.over.Mode = scenarios.ModeDry
	if cfg.WithCutover {
		o.over.Mode = scenarios.ModeWet
	}
	merged := base.With(o.over)
	cfg, problems := cfg.WithDefaults(merged)
	if cfg.WithCutover && !sc.Cutover.Enabled {
		merged.Mode = scenarios.ModeDry // reported as capacity.with_cutover, not twice
	}
	s, err := o.scenario(merged)
	if err != nil || len(problems) > 0 {
		var se *scenarios.Errors
		if errors.As(err, &se) {
			problems = append(problems, asErrors(se)...)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, capacity.AsErrors(problems))
	}
	ecfg, err := o.engineConfig(s)
	if err != nil {
		return nil, err
	}
	outDir := o.out
	if outDir == "" {
		outDir = DefaultOutDir(s, time.Now())
	}
	created, err := prepareOut(outDir)
	if err != nil {
		return nil, err
	}
	res, err := capacity.Run(ctx, s, cfg, capacity.Env{Out: outDir, Log: o.log, Progress: o.progress, Keep: o.keep, Engine: ecfg})
	if res == nil {
		removeIfEmpty(created)
		return nil, err
	}
	if werr := writeOutputs(outDir, res, report.CapacityMarkdown, report.CapacityHTML, result.EncodeCapacity); werr != nil {
		return res, werr
	}
	if errors.Is(err, ErrBelowPeak) {
		return res, fmt.Errorf("%w: %w: %s", ErrSLOBreached, ErrBelowPeak, report.CapacityVerdict(res))
	}
	return res, err
}

func asErrors(se *scenarios.Errors) []error {
	out := make([]error, len(se.List))
	for i, fe := range se.List {
		out[i] = fe
	}
	return out
}
