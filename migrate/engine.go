package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/rehearse-dev/rehearse/result"
)

// Step statuses recorded in results.
const (
	StatusOK         = "ok"
	StatusFailed     = "failed"
	StatusSkipped    = "skipped"
	StatusPlanned    = "planned"
	StatusRolledBack = "rolled_back"
)

// Event is a step starting or ending, on the run's timeline.
type Event struct {
	// Step is the step's name.
	Step string
	// Status is "started" or the step's final status.
	Status string
	// At is the offset from the run's start.
	At time.Duration
	// Mutating is true for steps that change the cluster.
	Mutating bool
	// Cycle is the cutover cycle the step belongs to (0: none).
	Cycle int
	// Undo is true for the steps that undo a failed or aborted plan
	// (recover_writer, undo_*).
	Undo bool
}

// Validator checks the cluster under load after the redirect (integrity, health). It
// returns details for the record and an error when validation fails.
type Validator func(ctx context.Context) (map[string]any, error)

// Synchronizer is a provider that can make a replica a synchronous standby.
type Synchronizer interface {
	SetSynchronous(ctx context.Context, replica string) error
}

// Engine runs a plan against a provider.
type Engine struct {
	// Provider is the cluster.
	Provider Provider
	// Config is the plan.
	Config Config
	// Dry executes only the read-only checks and records what each step would do.
	Dry bool
	// Validate is the validate step's check beyond the topology (may be nil).
	Validate Validator
	// Since returns the offset from the run's start (the shared timeline).
	Since func() time.Duration
	// OnEvent is called when a step starts and ends (may be nil).
	OnEvent func(Event)
	// Log gets one line per step (may be nil).
	Log io.Writer
}

// state is what the steps learn and leave for later steps and undos.
type state struct {
	writerBefore string
	replica      string
	// writer is the current writer (writerBefore until a switchover changes it).
	writer     string
	promotion  *Promotion
	switched   bool
	forwarding bool
	syncOn     bool
	rolledBack bool
	validated  bool
	// bg is the blue/green deployment's state (blue/green plans only).
	bg bgState
}

// ErrStepFailed wraps the error of the step that failed.
var ErrStepFailed = errors.New("cutover step failed")

// ErrAborted is the cause to cancel Run's context with to abort the plan (a live
// guardrail): the plan stops, its completed steps are undone (a switchover by a
// failback onto the original writer), and the outcome is "aborted". Run's error
// then wraps ErrAborted.
var ErrAborted = errors.New("cutover aborted")

// other is the node of the switchover pair that is not the writer: the replica
// while the original writer writes, the original writer after a switchover.
func (st *state) other() string {
	if st.writer == st.writerBefore {
		return st.replica
	}
	return st.writerBefore
}

// Run executes the plan and returns the migration record. When a step fails it
// undoes the completed steps in reverse, records what it undid, and returns an
// error wrapping ErrStepFailed; the record is complete either way.
func (e *Engine) Run(ctx context.Context) (*result.Migration, error) {
	cfg := e.Config.withDefaults()
	steps, err := cfg.plan()
	if err != nil {
		return nil, err
	}
	m := &result.Migration{Plan: stepNames(steps), Outcome: "completed", Strategy: cfg.strategy()}
	if e.Dry {
		m.Outcome = "dry"
	}
	st := &state{}
	if topo, err := e.Provider.Describe(ctx); err == nil {
		st.writerBefore, st.writer = topo.Writer, topo.Writer
	} else {
		return m, fmt.Errorf("%w: describe the cluster: %w", ErrStepFailed, err)
	}
	m.WriterBefore = st.writerBefore

	done, failure := e.runSteps(ctx, m, steps, st, cfg)
	aborted := errors.Is(context.Cause(ctx), ErrAborted)
	if aborted && failure != nil {
		failure = fmt.Errorf("%w: %w", ErrAborted, failure)
	}
	if failure != nil && !e.Dry {
		m.Outcome = "failed"
		if aborted {
			m.Outcome = "aborted"
		}
		if cfg.Strategy == StrategyBlueGreen {
			e.rollBackBlueGreen(ctx, m, done, st, cfg)
		} else {
			e.rollBack(ctx, m, done, st, cfg)
		}
	}
	if st.rolledBack && failure == nil {
		m.Outcome = "rolled_back"
	}
	if topo, err := e.Provider.Describe(context.WithoutCancel(ctx)); err == nil {
		m.WriterAfter = topo.Writer
	}
	if st.promotion != nil {
		m.LagAtPromotion = result.LagAtPromotion{Bytes: st.promotion.LagBytes, Ms: msf(st.promotion.LagTime)}
	}
	m.Cycles = cycleRecords(m, cfg, st.writerBefore, st.replica)
	return m, failure
}

func stepNames(steps []planStep) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.name
	}
	return out
}

// runSteps runs the steps in order and records them in m, until one fails or ctx
// ends between two steps: the steps after it are recorded as skipped. It returns
// the completed mutating steps, for undo, and the failure (wrapping ErrStepFailed).
func (e *Engine) runSteps(ctx context.Context, m *result.Migration, steps []planStep, st *state, cfg Config) (done []string, failure error) {
	for i, ps := range steps {
		name := ps.name
		if err := ctx.Err(); err != nil && !e.Dry {
			failure = fmt.Errorf("%w: stopped before %s: %w", ErrStepFailed, name, context.Cause(ctx))
			e.skip(m, steps[i:], e.now())
			break
		}
		rec, err := e.step(ctx, ps, st, cfg)
		switch {
		case err != nil:
			rec.Status = StatusFailed
			if rec.Detail == nil {
				rec.Detail = map[string]any{}
			}
			rec.Detail["error"] = err.Error()
			failure = fmt.Errorf("%w: %s: %w", ErrStepFailed, name, err)
		case e.Dry:
			rec.Status = StatusPlanned
		default:
			rec.Status = StatusOK
			if mutating(name) {
				done = append(done, name)
			}
		}
		m.Steps = append(m.Steps, rec)
		e.emit(Event{Step: name, Status: rec.Status, At: e.since(), Mutating: mutating(name), Cycle: ps.cycle})
		e.logf("step %s%s %s (%.1f s)", name, cycleSuffix(ps.cycle), rec.Status, rec.EndS-rec.StartS)
		if failure != nil {
			e.skip(m, steps[i+1:], rec.EndS)
			break
		}
	}
	return done, failure
}

// skip records steps as skipped at offset at.
func (e *Engine) skip(m *result.Migration, steps []planStep, at float64) {
	for _, rest := range steps {
		m.Steps = append(m.Steps, result.Step{Name: rest.name, Status: StatusSkipped, StartS: at, EndS: at, Cycle: rest.cycle})
	}
}

func cycleSuffix(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (cycle %d)", n)
}

// step performs one step (or, dry, its read-only checks) within the step timeout
// and returns its record, without a status, and its error.
func (e *Engine) step(ctx context.Context, ps planStep, st *state, cfg Config) (result.Step, error) {
	name := ps.name
	rec := result.Step{Name: name, StartS: e.now(), Cycle: ps.cycle}
	e.emit(Event{Step: name, Status: "started", At: e.since(), Mutating: mutating(name), Cycle: ps.cycle})
	e.logf("step %s%s ...", name, cycleSuffix(ps.cycle))
	timeout := cfg.stepTimeout(name)
	sctx, cancel := context.WithTimeout(ctx, timeout)
	var (
		detail map[string]any
		err    error
	)
	if e.Dry {
		detail, err = e.dry(sctx, name, st, cfg)
	} else {
		detail, err = e.run(sctx, name, st, cfg)
	}
	cancel()
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("step %s timed out after %v: %w", name, timeout, err)
	}
	rec.Detail = detail
	rec.EndS = e.now()
	return rec, err
}

func (c Config) withDefaults() Config {
	if c.Kind == "" {
		c.Kind = Planned
	}
	if c.StepTimeout <= 0 {
		c.StepTimeout = 60 * time.Second
	}
	if c.CatchUpSamples <= 0 {
		c.CatchUpSamples = 3
	}
	if c.Poll <= 0 {
		c.Poll = 100 * time.Millisecond
	}
	if c.SwitchoverTimeout <= 0 {
		c.SwitchoverTimeout = DefaultSwitchoverTimeout
	}
	if c.Settle <= 0 {
		c.Settle = DefaultSettle
	}
	return c
}

// DefaultSwitchoverTimeout is a blue/green switchover's timeout when the plan sets
// none: AWS's default.
const DefaultSwitchoverTimeout = 300 * time.Second

// strategy is the plan's strategy, in_cluster when unset.
func (c Config) strategy() string {
	if c.Strategy == "" {
		return StrategyInCluster
	}
	return c.Strategy
}

// stepTimeout bounds a step: the step timeout, plus the soak for the steps that
// wait it out, plus the switchover timeout for a blue/green switchover (whose own
// timeout, and the rollback after it, must fit).
func (c Config) stepTimeout(step string) time.Duration {
	t := c.StepTimeout
	switch {
	case step == StepDecommission || step == StepDeleteDeployment:
		t += c.Soak
	case step == StepSettle:
		t += c.Settle
	case step == StepSwitchover && c.Strategy == StrategyBlueGreen:
		t += c.SwitchoverTimeout
	}
	return t
}

func (e *Engine) since() time.Duration {
	if e.Since == nil {
		return 0
	}
	return e.Since()
}

func (e *Engine) now() float64 { return math.Round(e.since().Seconds()*1000) / 1000 }

func (e *Engine) emit(ev Event) {
	if e.OnEvent != nil {
		e.OnEvent(ev)
	}
}

func (e *Engine) logf(format string, args ...any) {
	if e.Log != nil {
		fmt.Fprintf(e.Log, "cutover: "+format+"\n", args...)
	}
}

func msf(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }
