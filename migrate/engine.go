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
	promotion    *Promotion
	switched     bool
	forwarding   bool
	syncOn       bool
	rolledBack   bool
	validated    bool
}

// ErrStepFailed wraps the error of the step that failed.
var ErrStepFailed = errors.New("cutover step failed")

// Run executes the plan and returns the migration record. When a step fails it
// undoes the completed steps in reverse, records what it undid, and returns an
// error wrapping ErrStepFailed; the record is complete either way.
func (e *Engine) Run(ctx context.Context) (*result.Migration, error) {
	cfg := e.Config.withDefaults()
	steps, err := cfg.steps()
	if err != nil {
		return nil, err
	}
	m := &result.Migration{Plan: steps, Outcome: "completed"}
	if e.Dry {
		m.Outcome = "dry"
	}
	st := &state{}
	if topo, err := e.Provider.Describe(ctx); err == nil {
		st.writerBefore = topo.Writer
	} else {
		return m, fmt.Errorf("%w: describe the cluster: %w", ErrStepFailed, err)
	}
	m.WriterBefore = st.writerBefore

	var done []string // completed mutating steps, for undo
	var failure error
	for i, name := range steps {
		rec := result.Step{Name: name, StartS: e.now()}
		e.emit(Event{Step: name, Status: "started", At: e.since(), Mutating: mutating(name)})
		e.logf("step %s ...", name)
		timeout := cfg.StepTimeout
		if name == StepDecommission {
			timeout += cfg.Soak
		}
		sctx, cancel := context.WithTimeout(ctx, timeout)
		var detail map[string]any
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
		e.emit(Event{Step: name, Status: rec.Status, At: e.since(), Mutating: mutating(name)})
		e.logf("step %s %s (%.1f s)", name, rec.Status, rec.EndS-rec.StartS)
		if failure != nil {
			for _, rest := range steps[i+1:] {
				m.Steps = append(m.Steps, result.Step{Name: rest, Status: StatusSkipped, StartS: rec.EndS, EndS: rec.EndS})
			}
			break
		}
	}
	if failure != nil && !e.Dry {
		m.Outcome = "failed"
		// Undo on a context that outlives a cancelled run: the cluster must be left
		// serving writes.
		bg := context.WithoutCancel(ctx)
		// A switchover that failed before the writer changed leaves the old writer
		// stopped or held: bring it back first, so the undos have a writer to work on.
		if !st.switched && failedStep(m) == StepSwitchover {
			start := e.now()
			uctx, cancel := context.WithTimeout(bg, 2*cfg.StepTimeout)
			rerr := e.Provider.Recover(uctx, st.writerBefore)
			cancel()
			status := StatusOK
			detail := map[string]any{"writer": st.writerBefore}
			if rerr != nil {
				status, detail["error"] = StatusFailed, rerr.Error()
			}
			m.Steps = append(m.Steps, result.Step{Name: "recover_writer", Status: status, StartS: start, EndS: e.now(), Detail: detail})
		}
		for i := len(done) - 1; i >= 0; i-- {
			name := done[i]
			if !hasUndo(name, st) {
				continue
			}
			start := e.now()
			uctx, cancel := context.WithTimeout(bg, 2*cfg.StepTimeout)
			detail, uerr := e.undo(uctx, name, st)
			cancel()
			status := StatusRolledBack
			if uerr != nil {
				status = StatusFailed
				if detail == nil {
					detail = map[string]any{}
				}
				detail["error"] = uerr.Error()
			}
			m.Steps = append(m.Steps, result.Step{Name: "undo_" + name, Status: status, StartS: start, EndS: e.now(), Detail: detail})
			for j := range m.Steps {
				// A fail-back also reverses the redirect.
				if uerr == nil && (m.Steps[j].Name == name || name == StepSwitchover && m.Steps[j].Name == StepRedirect) {
					m.Steps[j].Status = StatusRolledBack
				}
			}
			e.logf("undo %s: %s", name, status)
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
	return m, failure
}

// hasUndo reports whether a completed step left something to reverse.
func hasUndo(step string, st *state) bool {
	switch step {
	case StepCreateReplica:
		return st.replica != ""
	case StepCatchUp:
		return st.syncOn
	case StepForwardWrites:
		return st.forwarding
	case StepSwitchover:
		return st.switched
	}
	return false
}

func failedStep(m *result.Migration) string {
	for _, s := range m.Steps {
		if s.Status == StatusFailed {
			return s.Name
		}
	}
	return ""
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
	return c
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

// run performs one step.
func (e *Engine) run(ctx context.Context, name string, st *state, cfg Config) (map[string]any, error) {
	p := e.Provider
	switch name {
	case StepPreflight:
		return e.preflight(ctx)
	case StepCreateReplica:
		n, err := p.CreateReplica(ctx)
		if err != nil {
			return nil, err
		}
		st.replica = n.ID
		return map[string]any{"replica": n.ID, "addr": n.Addr, "version": n.Version, "class": n.Class}, nil
	case StepCatchUp:
		if err := e.needReplica(ctx, st); err != nil {
			return nil, err
		}
		d, err := e.catchUp(ctx, st.replica, cfg)
		if err != nil || !cfg.Synchronous {
			return d, err
		}
		if s, ok := p.(Synchronizer); ok {
			if err := s.SetSynchronous(ctx, st.replica); err != nil {
				return d, fmt.Errorf("make %s a synchronous standby: %w", st.replica, err)
			}
			st.syncOn = true
			d["synchronous"] = st.replica
		}
		return d, nil
	case StepForwardWrites:
		if err := p.SetForwarding(ctx, true); err != nil {
			return nil, err
		}
		st.forwarding = true
		return map[string]any{"forwarding": true}, nil
	case StepSwitchover:
		if err := e.needReplica(ctx, st); err != nil {
			return nil, err
		}
		var (
			pr  Promotion
			err error
		)
		if cfg.Kind == Crash {
			cr, ok := p.(Crasher)
			if !ok {
				return nil, fmt.Errorf("the %s provider cannot crash a node", p.Kind())
			}
			lag, _ := p.Lag(ctx, st.replica)
			if err := cr.Crash(ctx, st.writerBefore); err != nil {
				return nil, fmt.Errorf("crash %s: %w", st.writerBefore, err)
			}
			pr, err = cr.Failover(ctx, st.replica)
			pr.LagTime = lag.Time
			if pr.LagBytes == 0 {
				pr.LagBytes = lag.Bytes
			}
		} else {
			pr, err = p.Switchover(ctx, st.replica)
		}
		d := promotionDetail(pr)
		if err != nil {
			return d, err
		}
		st.promotion, st.switched = &pr, true
		return d, nil
	case StepRedirect:
		topo, err := p.Describe(ctx)
		if err != nil {
			return nil, err
		}
		return p.Redirect(ctx, topo.Writer)
	case StepValidate:
		d, err := e.validate(ctx, st)
		if err == nil {
			st.validated = true
		}
		return d, err
	case StepKeepRollbackTarget:
		if !st.switched {
			return nil, errors.New("no switchover happened: there is no old writer to keep")
		}
		if st.syncOn {
			if s, ok := p.(Synchronizer); ok {
				_ = s.SetSynchronous(ctx, "")
				st.syncOn = false
			}
		}
		return p.Rejoin(ctx, st.writerBefore)
	case StepRollback:
		d, err := e.failBack(ctx, st)
		if err == nil {
			st.rolledBack = true
		}
		return d, err
	case StepDecommission:
		if !st.validated {
			return nil, errors.New("refusing to decommission: validation did not pass in this run")
		}
		victim := st.writerBefore
		if st.rolledBack {
			victim = st.replica
		}
		if victim == "" {
			return nil, errors.New("nothing to decommission")
		}
		t := time.NewTimer(cfg.Soak)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		if err := p.Remove(ctx, victim); err != nil {
			return nil, err
		}
		return map[string]any{"removed": victim, "soak_s": cfg.Soak.Seconds()}, nil
	}
	return nil, fmt.Errorf("unknown step %q", name)
}

// needReplica fills st.replica from the topology when create_replica was not in the
// plan (a scenario may start from an existing reader).
func (e *Engine) needReplica(ctx context.Context, st *state) error {
	if st.replica != "" {
		return nil
	}
	topo, err := e.Provider.Describe(ctx)
	if err != nil {
		return err
	}
	for _, n := range topo.Nodes {
		if n.ID != topo.Writer {
			st.replica = n.ID
			return nil
		}
	}
	return errors.New("the cluster has no replica to promote: add create_replica to the plan")
}

func promotionDetail(pr Promotion) map[string]any {
	d := map[string]any{
		"from": pr.From, "to": pr.To,
		"lag_bytes": pr.LagBytes, "lag_ms": msf(pr.LagTime),
		"final_lsn": pr.FinalLSN, "promoted_lsn": pr.PromotedLSN,
		"promote_ms": msf(pr.Promote), "stall_ms": msf(pr.Stall),
	}
	for k, v := range pr.Detail {
		d[k] = v
	}
	return d
}

func (e *Engine) preflight(ctx context.Context) (map[string]any, error) {
	checks, err := e.Provider.Preflight(ctx)
	if err != nil {
		return nil, err
	}
	d := map[string]any{}
	var failed []string
	for _, c := range checks {
		status := "ok"
		switch {
		case !c.OK && c.Warning:
			status = "warning"
		case !c.OK:
			status = "failed"
			failed = append(failed, c.Name+" ("+c.Detail+")")
		}
		d[c.Name] = status + ": " + c.Detail
	}
	if len(failed) > 0 {
		return d, fmt.Errorf("preflight failed: %v", failed)
	}
	return d, nil
}

// catchUp samples lag until it is under the limit for the required samples.
func (e *Engine) catchUp(ctx context.Context, replica string, cfg Config) (map[string]any, error) {
	tick := time.NewTicker(cfg.Poll)
	defer tick.Stop()
	good, samples := 0, 0
	var maxLag int64
	var last Lag
	for {
		lag, err := e.Provider.Lag(ctx, replica)
		samples++
		if err == nil {
			last = lag
			maxLag = max(maxLag, lag.Bytes)
			if lag.Bytes <= cfg.CatchUpMaxLagBytes {
				good++
			} else {
				good = 0
			}
		} else {
			good = 0
		}
		if good >= cfg.CatchUpSamples {
			return map[string]any{"replica": replica, "samples": samples, "max_lag_bytes": maxLag,
				"lag_bytes": last.Bytes, "lag_ms": msf(last.Time), "writer_lsn": last.WriterLSN, "replay_lsn": last.ReplayLSN}, nil
		}
		select {
		case <-ctx.Done():
			return map[string]any{"replica": replica, "samples": samples, "lag_bytes": last.Bytes, "last_error": fmt.Sprint(err)},
				fmt.Errorf("replica %s did not catch up (lag %d bytes after %d samples): %w", replica, last.Bytes, samples, ctx.Err())
		case <-tick.C:
		}
	}
}

func (e *Engine) validate(ctx context.Context, st *state) (map[string]any, error) {
	topo, err := e.Provider.Describe(ctx)
	if err != nil {
		return nil, err
	}
	d := map[string]any{"writer": topo.Writer}
	if st.switched && st.promotion != nil && topo.Writer != st.promotion.To {
		return d, fmt.Errorf("the writer is %s, not the promoted %s", topo.Writer, st.promotion.To)
	}
	if e.Validate != nil {
		vd, err := e.Validate(ctx)
		for k, v := range vd {
			d[k] = v
		}
		if err != nil {
			return d, err
		}
	}
	return d, nil
}

// failBack makes the old writer the writer again (rollback and undo of switchover).
func (e *Engine) failBack(ctx context.Context, st *state) (map[string]any, error) {
	p := e.Provider
	topo, err := p.Describe(ctx)
	if err != nil {
		return nil, err
	}
	if topo.Writer == st.writerBefore {
		return map[string]any{"writer": topo.Writer, "note": "already the writer"}, nil
	}
	d := map[string]any{}
	if _, ok := topo.Node(st.writerBefore); !ok {
		return nil, fmt.Errorf("the old writer %s is gone", st.writerBefore)
	}
	if rd, err := p.Rejoin(ctx, st.writerBefore); err != nil {
		// Already following is fine (keep_rollback_target ran).
		d["rejoin_error"] = err.Error()
	} else {
		d["rejoin"] = rd
	}
	pr, err := p.Switchover(ctx, st.writerBefore)
	d["switchover"] = promotionDetail(pr)
	if err != nil {
		return d, err
	}
	rd, err := p.Redirect(ctx, st.writerBefore)
	d["redirect"] = rd
	if err != nil {
		return d, err
	}
	// The promoted replica now follows the old writer again.
	if jd, err := p.Rejoin(ctx, pr.From); err == nil {
		d["rejoin_replica"] = jd
	}
	return d, nil
}

// undo reverses a completed mutating step.
func (e *Engine) undo(ctx context.Context, name string, st *state) (map[string]any, error) {
	p := e.Provider
	switch name {
	case StepCreateReplica:
		if topo, err := p.Describe(ctx); err == nil && topo.Writer == st.replica {
			return map[string]any{"note": st.replica + " is the writer; kept"}, nil
		}
		if st.syncOn {
			if s, ok := p.(Synchronizer); ok {
				_ = s.SetSynchronous(ctx, "")
			}
		}
		return map[string]any{"removed": st.replica}, p.Remove(ctx, st.replica)
	case StepForwardWrites:
		st.forwarding = false
		return map[string]any{"forwarding": false}, p.SetForwarding(ctx, false)
	case StepSwitchover:
		return e.failBack(ctx, st)
	case StepCatchUp:
		if st.syncOn {
			if s, ok := p.(Synchronizer); ok {
				st.syncOn = false
				return map[string]any{"synchronous": false}, s.SetSynchronous(ctx, "")
			}
		}
		return nil, nil
	}
	return map[string]any{"note": "nothing to undo"}, nil
}

// dry runs one step's read-only checks and says what it would do.
func (e *Engine) dry(ctx context.Context, name string, st *state, cfg Config) (map[string]any, error) {
	p := e.Provider
	action, check := describeStep(name, cfg, p.Kind())
	d := map[string]any{"would": action, "done_when": check}
	switch name {
	case StepPreflight:
		pd, err := e.preflight(ctx)
		for k, v := range pd {
			d[k] = v
		}
		return d, err
	case StepCreateReplica:
		pd, err := p.PlanReplica(ctx)
		for k, v := range pd {
			d[k] = v
		}
		return d, err
	case StepCatchUp:
		topo, err := p.Describe(ctx)
		if err != nil {
			return d, err
		}
		for _, n := range topo.Nodes {
			if n.ID == topo.Writer {
				continue
			}
			if lag, err := p.Lag(ctx, n.ID); err == nil {
				d["lag_bytes_"+n.ID] = lag.Bytes
			}
		}
	case StepForwardWrites:
		topo, err := p.Describe(ctx)
		if err != nil {
			return d, err
		}
		d["forwarding_now"] = topo.Forwarding
	case StepSwitchover, StepRedirect, StepValidate:
		topo, err := p.Describe(ctx)
		if err != nil {
			return d, err
		}
		d["writer_now"] = topo.Writer
		d["writer_endpoint"] = topo.WriterEndpoint
		if name == StepSwitchover && cfg.Kind == Crash {
			if _, ok := p.(Crasher); !ok {
				return d, fmt.Errorf("the %s provider cannot crash a node", p.Kind())
			}
		}
		if name == StepValidate && e.Validate != nil {
			vd, err := e.Validate(ctx)
			for k, v := range vd {
				d[k] = v
			}
			return d, err
		}
	}
	return d, nil
}
