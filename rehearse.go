// Package rehearse runs a rehearsal: a scenario's load from simulated user sessions
// against PostgreSQL, recorded into latency histograms, errors by class, availability
// windows and an integrity check, written as result.json, report.md, report.html and
// latency.hlog. Run is the library entry point; the rehearse CLI only maps flags onto
// it, and a team's own `go test` can call it directly.
package rehearse

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/internal/slo"
	"github.com/rehearse-dev/rehearse/migrate/aurora"
	"github.com/rehearse-dev/rehearse/report"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// Output file names inside the run's directory.
const (
	ResultFile   = "result.json"
	MarkdownFile = "report.md"
	HTMLFile     = "report.html"
	HlogFile     = "latency.hlog"
)

// verifyTimeout bounds the post-run integrity check and teardown, which run even when
// the run was interrupted.
const verifyTimeout = 3 * time.Minute

// Run rehearses sc and returns its result. The result files are written to the output
// directory (see WithOut) whenever load ran, also when the run was interrupted or an
// SLO was breached. The error wraps ErrInvalidInput, ErrSLOBreached or ErrInterrupted
// where those apply; any other error is a runtime failure.
func Run(ctx context.Context, sc *scenarios.Scenario, opts ...Option) (*result.Result, error) {
	o := options{mode: "dry", now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	sc, err := o.apply(sc)
	if err != nil {
		return nil, err
	}
	logw := o.log
	if logw == nil {
		logw = io.Discard
	}
	wl, err := newWorkload(sc.Workload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	if a, ok := wl.(activeSessions); ok && sc.Load.Model == "open" {
		a.SetActiveSessions(sc.Load.Sessions)
	}
	outDir := o.out
	if outDir == "" {
		outDir = DefaultOutDir(sc, o.now())
	}
	if err := prepareOut(outDir); err != nil {
		return nil, err
	}

	// Teardown and verification must happen even after an interrupt.
	bg := context.WithoutCancel(ctx)
	tgt, err := startTarget(ctx, sc, &o, outDir, logw)
	if err != nil {
		return nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(bg, verifyTimeout)
		defer cancel()
		tgt.close(cctx, o.keep, logw)
	}()

	eps, err := connect(ctx, tgt, sc)
	if err != nil {
		return nil, err
	}
	defer eps.close()

	fmt.Fprintf(logw, "setting up workload %s\n", wl.Name())
	if err := wl.Setup(ctx, eps.writer, logw); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: during workload setup: %w", ErrInterrupted, err)
		}
		return nil, fmt.Errorf("workload setup failed: %w", err)
	}
	versions := map[string]string{"rehearse": Version(), "go": runtime.Version()}
	if v, err := eps.serverVersion(ctx); err == nil {
		versions["postgresql"] = v
	}

	var cut *cutover
	if sc.Cutover.Enabled && tgt.provider() != nil {
		cut = newCutover(sc, o.mode == "dry", tgt, wl, eps, logw)
	}
	rr, err := runLoad(ctx, sc, wl, eps, outDir, o.progress, logw, cut)
	if err != nil {
		return nil, err
	}

	vctx, cancel := context.WithTimeout(bg, verifyTimeout)
	defer cancel()
	fmt.Fprintln(logw, "checking integrity")
	integ, verr := verify(vctx, wl, tgt)
	if verr != nil {
		integ = result.Integrity{Checked: false, Details: []string{"integrity check failed to run: " + verr.Error()}}
	}

	res := buildResult(sc, &o, rr, tgt, versions, integ)
	var cutErr error
	switch {
	case cut != nil:
		res.Migration, cutErr = cut.mig, cut.err
		if tgt.endpoint != "" {
			res.Notes = append(res.Notes, endpointNote(tgt))
		}
		if tgt.calls != nil {
			res.Notes = append(res.Notes, tgt.calls.note())
		}
	case sc.Cutover.Enabled:
		res.Notes = append(res.Notes, "The scenario has a cutover section, but --dsn points at a database rehearse does not manage, so the plan was not run; the load ran against that database alone.")
	}
	res.SLO = slo.Evaluate(res, sc.SLO)
	if err := writeOutputs(outDir, res, rr.hlogTmp); err != nil {
		return res, err
	}

	switch {
	case res.Interrupted:
		return res, fmt.Errorf("%w: results so far are in %s", ErrInterrupted, outDir)
	case cutErr != nil:
		return res, fmt.Errorf("the cutover failed (results are in %s): %w", outDir, cutErr)
	case verr != nil:
		return res, fmt.Errorf("integrity check failed to run: %w", verr)
	case !res.SLO.Passed:
		return res, fmt.Errorf("%w: %s", ErrSLOBreached, strings.Join(report.Reasons(res.SLO), "; "))
	}
	return res, nil
}

// activeSessions is implemented by workloads whose users can already be logged in
// when the run starts (banking).
type activeSessions interface{ SetActiveSessions(n int) }

// apply validates the options and returns a copy of sc with the overrides applied.
func (o *options) apply(sc *scenarios.Scenario) (*scenarios.Scenario, error) {
	if sc == nil {
		return nil, fmt.Errorf("%w: no scenario", ErrInvalidInput)
	}
	var problems []string
	if o.mode != "dry" && o.mode != "wet" {
		problems = append(problems, fmt.Sprintf("mode %q is not dry or wet", o.mode))
	}
	s := sc.Clone()
	if o.target != "" {
		s.Target.Kind = o.target
	}
	if o.endpoint != "" {
		s.Target.Endpoint = o.endpoint
	}
	if o.dsn != "" {
		s.Target.DSN = o.dsn
	}
	if o.duration != 0 {
		if o.duration < 0 {
			problems = append(problems, fmt.Sprintf("duration %v must be positive", o.duration))
		}
		s.Load.Duration = scenarios.Duration(o.duration)
	}
	if o.sessions != 0 {
		if o.sessions < 0 {
			problems = append(problems, fmt.Sprintf("sessions %d must be positive", o.sessions))
		}
		s.Load.Sessions = o.sessions
	}
	if o.rollback {
		s.Cutover.Rollback = true
	}
	if o.rateSet {
		if o.rate <= 0 {
			problems = append(problems, fmt.Sprintf("rate %v must be positive (actions per second)", o.rate))
		}
		s.Load.Rate = o.rate
		s.Load.Stages = nil // --rate holds one rate; a ramp in the file would override it
	}
	for _, e := range s.Validate() {
		problems = append(problems, e.Error())
	}
	if len(problems) == 0 {
		switch {
		case s.Target.Kind == "aurora":
			problems = append(problems, o.applyAurora(s)...)
		case s.Target.Kind == "container" && s.Target.DSN != "":
			problems = append(problems, "--target container starts its own containers; drop --dsn (or use --target local with --dsn)")
		case o.mode == "wet" && !s.Cutover.Enabled:
			problems = append(problems, "--mode wet performs the scenario's cutover, but its cutover section is not enabled (cutover.enabled: true)")
		case o.mode == "wet" && s.Target.DSN != "" && s.Target.Kind != "aurora":
			problems = append(problems, "--mode wet needs a cluster rehearse manages (--target local or container starts one); --dsn points at a database it cannot fail over")
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w:\n  %s", ErrInvalidInput, strings.Join(problems, "\n  "))
	}
	return s, nil
}

// applyAurora resolves the target cluster and checks --confirm for a wet run.
func (o *options) applyAurora(s *scenarios.Scenario) []string {
	var problems []string
	if o.mode == "wet" && !s.Cutover.Enabled {
		problems = append(problems, "--mode wet performs the scenario's cutover, but its cutover section is not enabled (cutover.enabled: true)")
	}
	id, err := aurora.ResolveClusterID(s.Target.DSN, o.confirm)
	if err != nil {
		return append(problems, err.Error())
	}
	if err := aurora.CheckConfirm(id, o.confirm, o.mode == "wet"); err != nil {
		return append(problems, err.Error())
	}
	o.auroraCluster = id
	return problems
}

// DefaultOutDir is the output directory used when none is given:
// runs/<UTC timestamp>-<scenario name>.
func DefaultOutDir(sc *scenarios.Scenario, now time.Time) string {
	return filepath.Join("runs", now.UTC().Format("20060102T150405Z")+"-"+safeName(sc.Name))
}

// prepareOut creates the output directory and refuses one that already holds a result,
// so an earlier run is never overwritten.
func prepareOut(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, ResultFile)); err == nil {
		return fmt.Errorf("%w: output directory %s already holds a %s; choose another --out or remove it", ErrInvalidInput, dir, ResultFile)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%w: cannot create output directory: %w", ErrInvalidInput, err)
	}
	return nil
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

func writeOutputs(dir string, res *result.Result, hlogTmp string) error {
	files := []struct {
		name   string
		render func(io.Writer, *result.Result) error
	}{
		{MarkdownFile, report.Markdown},
		{HTMLFile, report.HTML},
		{ResultFile, result.Encode}, // last: its presence means the run's output is complete
	}
	if hlogTmp != "" {
		if err := os.Rename(hlogTmp, filepath.Join(dir, HlogFile)); err != nil {
			return fmt.Errorf("writing %s: %w", HlogFile, err)
		}
	}
	for _, f := range files {
		if err := result.WriteFileAtomic(filepath.Join(dir, f.name), func(w io.Writer) error { return f.render(w, res) }); err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	return nil
}
