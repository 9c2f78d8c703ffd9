// Package rehearse runs rehearsals: a scenario's load from simulated user sessions
// against PostgreSQL, with its cutover alongside, recorded into latency histograms,
// errors by class, availability windows and an integrity check, and written as
// result.json, report.md, report.html and latency.hlog. Run rehearses once; Capacity
// searches for the highest rate that meets the scenario's SLOs. Both are thin: the
// sequence they share lives in internal/engine (see ARCHITECTURE.md). The rehearse
// CLI only maps flags onto them, and a team's own `go test` can call them directly.
package rehearse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/internal/capacity"
	"github.com/rehearse-dev/rehearse/internal/engine"
	"github.com/rehearse-dev/rehearse/internal/slo"
	"github.com/rehearse-dev/rehearse/report"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// Output file names inside the run's directory.
const (
	ResultFile   = "result.json"
	MarkdownFile = "report.md"
	HTMLFile     = "report.html"
	HlogFile     = engine.HlogFile
)

// Run rehearses sc and returns its result. The result files are written to the output
// directory (see WithOut) whenever load ran, also when the run was interrupted or an
// SLO was breached. The error wraps ErrInvalidInput, ErrSLOBreached or ErrInterrupted
// where those apply; any other error is a runtime failure.
func Run(ctx context.Context, sc *scenarios.Scenario, opts ...Option) (*result.Result, error) {
	o := collect(opts)
	s, err := o.scenario(sc)
	if err != nil {
		return nil, err
	}
	ecfg, err := o.engineConfig(s)
	if err != nil {
		return nil, err
	}
	if s, err = o.shardRun(s, &ecfg); err != nil {
		return nil, err
	}
	for _, n := range s.Notes {
		fmt.Fprintf(o.log, "note: %s\n", n)
	}
	outDir := o.out
	if outDir == "" {
		outDir = DefaultOutDir(s, time.Now())
	}
	created, err := prepareOut(outDir)
	if err != nil {
		return nil, err
	}
	ecfg.Target.Dir = outDir
	reh, err := engine.Open(ctx, s, ecfg)
	if err != nil {
		if created != "" && errors.Is(err, ErrInvalidInput) {
			// Input only the database could refuse (an invariant's SQL, say): the
			// error says what is wrong, and the server's log of a run that never
			// started is not kept in a directory this run made.
			_ = os.RemoveAll(created)
		}
		removeIfEmpty(filepath.Join(outDir, "pg"), created)
		return nil, err
	}
	// Teardown happens even after an interrupt.
	defer reh.Close(context.WithoutCancel(ctx), o.keep)

	out, err := reh.Step(ctx, engine.StepSpec{
		Cutover: s.Cutover.Enabled, Dry: s.Mode != scenarios.ModeWet, Dir: outDir, Progress: o.progress,
	})
	if err != nil {
		return nil, err
	}
	res := out.Result
	res.SLO = slo.Evaluate(res, s.SLO)
	engine.ShardVerdict(res)
	if err := engine.FinishHlog(out.Hlog, outDir); err != nil {
		return res, err
	}
	if err := writeOutputs(outDir, res, report.Markdown, report.HTML, result.Encode); err != nil {
		return res, err
	}
	switch {
	case res.Interrupted:
		return res, fmt.Errorf("%w: results so far are in %s", ErrInterrupted, outDir)
	case errors.Is(out.CutoverErr, ErrAborted):
		return res, fmt.Errorf("%w: %w: %s (results are in %s)", ErrSLOBreached, ErrAborted, strings.Join(report.Reasons(res.SLO), "; "), outDir)
	case out.CutoverErr != nil:
		return res, fmt.Errorf("the cutover failed (results are in %s): %w", outDir, out.CutoverErr)
	case out.VerifyErr != nil:
		return res, fmt.Errorf("integrity check failed to run: %w", out.VerifyErr)
	case res.Shard != nil:
		return res, engine.ShardOutcome(res, outDir)
	case !res.SLO.Passed:
		return res, fmt.Errorf("%w: %s", ErrSLOBreached, strings.Join(report.Reasons(res.SLO), "; "))
	}
	return res, nil
}

// DefaultOutDir is the output directory used when none is given:
// runs/<UTC timestamp>-<scenario name>.
func DefaultOutDir(sc *scenarios.Scenario, now time.Time) string {
	return filepath.Join("runs", now.UTC().Format("20060102T150405Z")+"-"+safeName(sc.Name))
}

// prepareOut creates the output directory and refuses one that already holds a result,
// so an earlier run is never overwritten. It returns what to remove if the run does
// not start: the directory when it created it, else nothing.
func prepareOut(dir string) (created string, err error) {
	if _, err := os.Stat(filepath.Join(dir, ResultFile)); err == nil {
		return "", fmt.Errorf("%w: output directory %s already holds a %s; choose another output directory or remove it", ErrInvalidInput, dir, ResultFile)
	}
	if _, err := os.Stat(dir); err != nil {
		created = dir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("%w: cannot create output directory: %w", ErrInvalidInput, err)
	}
	return created, nil
}

// removeIfEmpty removes each directory that is empty, in order: what a run that
// never started left behind (its output directory, the embedded server's work
// directory once the server removed its data).
func removeIfEmpty(dirs ...string) {
	for _, d := range dirs {
		if d != "" {
			_ = os.Remove(d) // fails, harmlessly, on a directory that is not empty
		}
	}
}

func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, s)
	if s == "" {
		return "run"
	}
	return s
}

// writeOutputs writes the report files and result.json, each atomically, result.json
// last: its presence means the output is complete.
func writeOutputs[R any](dir string, res R, md, html, json func(io.Writer, R) error) error {
	files := []struct {
		name   string
		render func(io.Writer, R) error
	}{{MarkdownFile, md}, {HTMLFile, html}, {ResultFile, json}}
	for _, f := range files {
		if err := result.WriteFileAtomic(filepath.Join(dir, f.name), func(w io.Writer) error { return f.render(w, res) }); err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	return nil
}

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
