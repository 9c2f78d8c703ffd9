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
	shardVerdict(res)
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
		return res, shardOutcome(res, outDir)
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
