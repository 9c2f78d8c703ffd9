package migrate

import (
	"context"
	"fmt"

	"github.com/rehearse-dev/rehearse/result"
)

// rollBack leaves the cluster serving writes after a failed step: it brings the old
// writer back when a switchover failed before the writer changed, then undoes the
// completed mutating steps (done) in reverse, recording each in m.
func (e *Engine) rollBack(ctx context.Context, m *result.Migration, done []string, st *state, cfg Config) {
	// Undo on a context that outlives a cancelled run: the cluster must be left
	// serving writes.
	bg := context.WithoutCancel(ctx)
	// A switchover that failed before the writer changed leaves the writer stopped
	// or held: bring it back first, so the undos have a writer to work on.
	if failedStep(m) == StepSwitchover {
		e.recoverWriter(bg, m, st, cfg)
	}
	// Each step is undone once, however many cycles ran it: the failback undoes
	// every switchover.
	undone := map[string]bool{}
	for i := len(done) - 1; i >= 0; i-- {
		if !undone[done[i]] && hasUndo(done[i], st) {
			undone[done[i]] = true
			e.undoStep(bg, m, done[i], st, cfg)
		}
	}
}

// recoverWriter has the provider make the old writer serve writes again, and
// records that as the step recover_writer.
func (e *Engine) recoverWriter(ctx context.Context, m *result.Migration, st *state, cfg Config) {
	start := e.now()
	e.emit(Event{Step: "recover_writer", Status: "started", At: e.since(), Mutating: true, Undo: true})
	uctx, cancel := context.WithTimeout(ctx, 2*cfg.StepTimeout)
	rerr := e.Provider.Recover(uctx, st.writer)
	cancel()
	status := StatusOK
	detail := map[string]any{"writer": st.writer}
	if rerr != nil {
		status, detail["error"] = StatusFailed, rerr.Error()
	}
	m.Steps = append(m.Steps, result.Step{Name: "recover_writer", Status: status, StartS: start, EndS: e.now(), Detail: detail})
	e.emit(Event{Step: "recover_writer", Status: status, At: e.since(), Mutating: true, Undo: true})
}

// undoStep undoes the completed step name and records that as the step
// undo_<name>; when the undo worked, the step is marked rolled back.
func (e *Engine) undoStep(ctx context.Context, m *result.Migration, name string, st *state, cfg Config) {
	start := e.now()
	e.emit(Event{Step: "undo_" + name, Status: "started", At: e.since(), Mutating: true, Undo: true})
	uctx, cancel := context.WithTimeout(ctx, 2*cfg.StepTimeout)
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
	e.emit(Event{Step: "undo_" + name, Status: status, At: e.since(), Mutating: true, Undo: true})
	for j := range m.Steps {
		// A fail-back also reverses the redirect.
		if uerr == nil && (m.Steps[j].Name == name || name == StepSwitchover && m.Steps[j].Name == StepRedirect) {
			m.Steps[j].Status = StatusRolledBack
		}
	}
	e.logf("undo %s: %s", name, status)
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

// failBack makes the old writer the writer again (rollback and undo of switchover).
func (e *Engine) failBack(ctx context.Context, st *state) (map[string]any, error) {
	p := e.Provider
	topo, err := p.Describe(ctx)
	if err != nil {
		return nil, err
	}
	if topo.Writer == st.writerBefore {
		st.writer = st.writerBefore
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
	st.writer = st.writerBefore
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
