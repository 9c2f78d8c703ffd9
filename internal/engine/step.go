package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workload/replay"
)

// HlogFile is the latency log's name in a run's (or a step's) directory. A step
// writes it as HlogFile+".partial"; FinishHlog gives it its name.
const HlogFile = "latency.hlog"

// StepSpec is one run of the load.
type StepSpec struct {
	// Rate holds one open-loop arrival rate (actions/s) for the step, replacing the
	// scenario's rate and ramp; 0 keeps the scenario's schedule.
	Rate float64
	// Sessions overrides load.sessions; 0 keeps it.
	Sessions int
	// Duration overrides load.duration; 0 keeps it. With a cutover the load goes on
	// past it until the cutover has settled.
	Duration time.Duration
	// Cutover runs the scenario's cutover alongside the load, when the target has a
	// provider for it; Dry runs only its read-only checks.
	Cutover bool
	Dry     bool
	// Dir is where the step's latency log goes.
	Dir string
	// Progress gets the load's once-a-second line (nil: none).
	Progress io.Writer
	// Retain keeps this much of the step's per-second latency histograms for
	// StepOutcome.Window (0: none).
	Retain time.Duration
}

// StepOutcome is what a step produced. Result carries everything but the SLO
// verdict, which the caller evaluates against its own SLOs.
type StepOutcome struct {
	// Result is the step's result (result.json without the SLO verdict).
	Result *result.Result
	// Scenario is the step's scenario: the rehearsal's with the spec applied.
	Scenario *scenarios.Scenario
	// Hlog is the step's latency log, still named as partial (see FinishHlog).
	Hlog string
	// Elapsed is how long arrivals ran.
	Elapsed time.Duration
	// CutoverErr is the cutover's failure, if it failed.
	CutoverErr error
	// VerifyErr is set when the integrity check could not run.
	VerifyErr error

	rec *loadgen.Recorder
}

// Window is the step's latency over [from, to) of its timeline (see
// loadgen.Recorder.Window); the step must have retained it (StepSpec.Retain).
func (o *StepOutcome) Window(from, to time.Duration) (loadgen.WindowLatency, error) {
	return o.rec.Window(from, to)
}

// FinishHlog moves a step's latency log to dir/latency.hlog.
func FinishHlog(partial, dir string) error {
	if partial == "" {
		return nil
	}
	if err := os.Rename(partial, filepath.Join(dir, HlogFile)); err != nil {
		return fmt.Errorf("writing %s: %w", HlogFile, err)
	}
	return nil
}

// stepScenario is the rehearsal's scenario with spec applied.
func (r *Rehearsal) stepScenario(spec StepSpec) *scenarios.Scenario {
	s := r.sc.Clone()
	if spec.Rate > 0 {
		s.Load.Rate = spec.Rate
		s.Load.Stages = nil // the step holds its own rate; the scenario's ramp does not apply
	}
	if spec.Sessions > 0 {
		s.Load.Sessions = spec.Sessions
	}
	if spec.Duration > 0 {
		s.Load.Duration = scenarios.Duration(spec.Duration)
	}
	return s
}

// Step runs the load once, with the cutover alongside when spec asks for it, then
// checks integrity on the writer and assembles the result. The load stops at the
// duration, or with a cutover once the cutover has ended and the after phase has
// had afterMin of load. An interrupted step (ctx cancelled) still checks integrity
// and returns its result, marked interrupted. The error is for a step that could
// not run at all.
func (r *Rehearsal) Step(ctx context.Context, spec StepSpec) (*StepOutcome, error) {
	sc := r.stepScenario(spec)
	tel, err := r.startTelemetry(sc)
	if err != nil {
		return nil, err
	}
	defer tel.close()
	out := &StepOutcome{Scenario: sc, Hlog: filepath.Join(spec.Dir, HlogFile+".partial")}
	hf, err := os.Create(out.Hlog)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", out.Hlog, err)
	}
	defer hf.Close()
	// The clock starts once the sessions are built (below); the sink runs only after.
	var (
		start time.Time
		hw    *result.HlogWriter
	)
	out.rec = loadgen.NewRecorder(r.wl.Ops(), tel.sink(func(op string, h *hdr.Histogram, from, to time.Duration) error {
		return hw.WriteInterval(hlogTag(op), start.Add(from), start.Add(to), h)
	}), loadgen.Retain(max(spec.Retain, guardRetain(sc))))
	var cut *cutover
	if spec.Cutover && r.tgt.Provider() != nil {
		cut = newCutover(sc, spec.Dry, r.tgt, r.wl, r.pools, out.rec, r.log)
		cut.listeners = append(cut.listeners, tel.onEvent)
		cut.guard.onFire = tel.guardrail
	}
	out.rec.SetOnPhase(tel.phase)
	cfg, target := r.loadConfig(sc, out.rec, spec.Progress)
	if rp, ok := r.wl.(*replay.Workload); ok {
		sched, err := rp.Arrivals(ctx)
		if err != nil {
			return nil, err
		}
		defer sched.Close()
		target = replaySchedule(&cfg, rp, sched)
		defer func() {
			if err := sched.Err(); err != nil && ctx.Err() == nil {
				fmt.Fprintf(r.log, "warning: reading the capture: %v\n", err)
			}
		}()
	}
	if cut != nil {
		cfg.Duration = 0 // the load runs until the cutover has settled (see settle)
	}
	r.shard.configure(&cfg)
	tel.attach(&cfg, out.rec, func() time.Duration { return time.Since(start) })
	prepared, err := loadgen.Prepare(cfg)
	if err != nil {
		return nil, err
	}
	if start, err = r.shard.start(ctx); err != nil { // now, or a sharded run's agreed start
		return nil, err
	}
	if hw, err = result.NewHlogWriter(hf, start); err != nil {
		return nil, err
	}
	since := func() time.Duration { return time.Since(start) }
	tel.start(ctx, since)
	if c, ok := r.tgt.(clocked); ok {
		c.StartClock(since)
	}
	loadDone := make(chan struct{})
	fx := r.startFaults(ctx, sc, spec.Dry, out.rec, cut, since, tel)
	defer fx.stop()
	if cut != nil {
		cut.start(ctx, since)
		go settle(sc.Load.Duration.D(), start, cut, prepared, loadDone)
	}
	shardDone := r.shard.during(ctx, out.rec, prepared, cut, sc.Load.Duration.D(), start, loadDone)
	r.logStart(sc, cfg, target)
	stats, err := prepared.Run(ctx, start)
	fx.stop() // nothing frozen or held past the load: the cutover's end and the integrity check need the nodes
	close(loadDone)
	<-shardDone
	if cut != nil {
		<-cut.done
	}
	if err != nil {
		return nil, err
	}
	if err := out.rec.SinkErr(); err != nil {
		fmt.Fprintf(r.log, "warning: writing %s: %v\n", HlogFile, err)
	}
	if err := hf.Close(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", HlogFile, err)
	}
	out.Elapsed = stats.Elapsed

	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), VerifyTimeout)
	defer cancel()
	fmt.Fprintln(r.log, "checking integrity")
	integ, verr := r.verifyStep(vctx)
	if verr != nil {
		integ = result.Integrity{Checked: false, Details: []string{"integrity check failed to run: " + verr.Error()}}
		out.VerifyErr = verr
	}
	out.Result = r.buildResult(sc, spec, stats, start, out.rec.Summary(stats.Elapsed), cfg.Workers, target, integ)
	switch {
	case cut != nil:
		var mig *result.Migration
		mig, _, out.CutoverErr = cut.outcome()
		out.Result.Migration = mig
		out.Result.Notes = append(out.Result.Notes, r.tgt.Notes()...)
	case spec.Cutover:
		out.Result.Notes = append(out.Result.Notes, "The scenario has a cutover section, but target.dsn points at a database rehearse does not manage, so the plan was not run; the load ran against that database alone.")
	}
	fillDisruptions(out.Result, out.rec.Cycles(stats.Elapsed))
	fx.fill(out.Result)
	tel.finish(ctx, out.Result)
	if err := r.shard.finishResult(out.Result, out.rec, spec.Dir); err != nil {
		return nil, err
	}
	return out, nil
}

// settle stops the load once the duration has passed, the cutover has ended and the
// after phase has had afterMin of load; or maxExtension after the duration if the
// cutover is still running then. It returns early when the load ends otherwise.
func settle(duration time.Duration, start time.Time, cut *cutover, p *loadgen.Prepared, loadDone <-chan struct{}) {
	wait := func(until time.Time) bool {
		t := time.NewTimer(time.Until(until))
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-loadDone:
			return false
		}
	}
	if !wait(start.Add(duration)) {
		return
	}
	limit := time.NewTimer(time.Until(start.Add(duration + maxExtension)))
	defer limit.Stop()
	select {
	case <-cut.done:
		_, ended, _ := cut.outcome()
		if !wait(start.Add(ended + afterMin)) {
			return
		}
	case <-limit.C:
	case <-loadDone:
		return
	}
	p.Stop()
}

// loadConfig is the load generator's configuration for the step's scenario, and
// the open model's target rate over the duration (0 for the closed model).
func (r *Rehearsal) loadConfig(sc *scenarios.Scenario, rec *loadgen.Recorder, progress io.Writer) (loadgen.Config, float64) {
	l := sc.Load
	cfg := loadgen.Config{
		Workload:        r.wl,
		Instances:       r.loadInstances(),
		Retry:           r.retry,
		Duration:        l.Duration.D(),
		Sessions:        l.Sessions,
		Workers:         l.Workers,
		Think:           loadgen.Think{Dist: l.ThinkTime.Distribution, Mean: l.ThinkTime.Mean.D()},
		OpTimeout:       l.OpTimeout.D(),
		Grace:           l.Grace.D(),
		MaxRetries:      l.MaxRetries,
		MisroutedWrites: sc.Workload.MisroutedWriteFraction,
		Seed:            sc.Workload.Seed,
		Recorder:        rec,
		Progress:        progress,
	}
	if l.Model == "closed" {
		cfg.Workers = l.Connections
		cfg.Sessions = l.Connections
		return cfg, 0
	}
	var prof *loadgen.Profile
	cfg.Pacer, prof = Schedule(sc)
	return cfg, prof.Expected(l.Duration.D()) / l.Duration.D().Seconds()
}

func (r *Rehearsal) logStart(sc *scenarios.Scenario, cfg loadgen.Config, target float64) {
	l := sc.Load
	switch {
	case l.Model == "closed":
		fmt.Fprintf(r.log, "running %s closed-loop on %d connections for %v\n", r.wl.Name(), cfg.Workers, l.Duration)
		return
	case cfg.Arrivals != nil:
		fmt.Fprintf(r.log, "replaying %d captured sessions (%.1f statements/s on average), %d workers, pool %d, for at most %v\n",
			cfg.Sessions, target, cfg.Workers, r.pools.size, l.Duration)
		return
	}
	fmt.Fprintf(r.log, "running %s: %d sessions, %.0f actions/s (%s), %d workers, pool %d, for %v\n",
		r.wl.Name(), cfg.Sessions, target, l.Arrival, cfg.Workers, r.pools.size, l.Duration)
	if n := len(r.pools.instances); n > 1 {
		fmt.Fprintf(r.log, "  from %d application instances (%d connections in all)\n", n, r.pools.connections())
	}
}

// replaySchedule makes cfg replay a capture: the capture's sessions and statements
// instead of a pacer; no retries (the application's own are in the capture, and a
// retried statement would run outside its block); an operation timeout above the
// capture's longest statement. It returns the capture's mean rate.
func replaySchedule(cfg *loadgen.Config, rp *replay.Workload, sched replay.Arrivals) float64 {
	cfg.Pacer = nil
	cfg.Arrivals = sched
	cfg.Sessions = rp.Sessions()
	cfg.MaxRetries = 0
	cfg.Retry = loadgen.Retry{MaxAttempts: 1}
	cfg.OpTimeout = max(cfg.OpTimeout, 2*rp.Summary().Longest+time.Second)
	if s := rp.Duration().Seconds(); s > 0 {
		return float64(rp.Statements()) / s
	}
	return 0
}

// loadInstances wraps each application instance's pools for the load generator.
func (r *Rehearsal) loadInstances() []loadgen.Instance {
	out := make([]loadgen.Instance, len(r.pools.instances))
	for i, in := range r.pools.instances {
		w := loadgen.NewPgxPool(in.writer)
		var rd loadgen.Pool = w
		if in.reader != in.writer {
			rd = loadgen.NewPgxPool(in.reader)
		}
		var wp loadgen.Pool = w
		if in.topo != nil {
			wp = failoverPool{Pool: w, topo: in.topo}
			rd = failoverPool{Pool: rd, topo: in.topo}
		}
		out[i] = loadgen.Instance{Writer: wp, Reader: rd}
	}
	return out
}

// Schedule is the open-loop arrival schedule of sc: its rate profile (ramp stages,
// or the effective rate held, without end: the load generator stops itself), and a
// constant or seeded Poisson pacer over it. Replaying it gives the arrivals a run
// offered.
func Schedule(sc *scenarios.Scenario) (loadgen.Pacer, *loadgen.Profile) {
	l := sc.Load
	stages := make([]loadgen.Stage, len(l.Stages))
	for i, s := range l.Stages {
		stages[i] = loadgen.Stage{Duration: s.Duration.D(), Rate: s.Rate}
	}
	startRate := sc.EffectiveRate()
	if len(stages) > 0 {
		startRate = 0
	}
	prof := loadgen.NewProfile(startRate, stages, 0)
	if l.Arrival == "constant" {
		return loadgen.NewConstant(prof), prof
	}
	return loadgen.NewPoisson(prof, sc.Workload.Seed), prof
}

// hlogTag makes an operation's name a latency.hlog tag, which cannot hold commas,
// spaces or line breaks (a replay's operations are SQL fingerprints).
func hlogTag(op string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ',', ' ', '\n', '\r', '\t':
			return '_'
		}
		return r
	}, op)
}
