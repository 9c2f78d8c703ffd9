package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// run performs one step.
func (e *Engine) run(ctx context.Context, name string, st *state, cfg Config) (map[string]any, error) {
	if cfg.Strategy == StrategyBlueGreen {
		return e.runBlueGreen(ctx, name, st, cfg)
	}
	p := e.Provider
	switch name {
	case StepPreflight:
		return e.preflight(ctx)
	case StepCreateReplica:
		return e.createReplica(ctx, st)
	case StepCatchUp:
		return e.catchUpReplica(ctx, st, cfg)
	case StepForwardWrites:
		if err := p.SetForwarding(ctx, true); err != nil {
			return nil, err
		}
		st.forwarding = true
		return map[string]any{"forwarding": true}, nil
	case StepSwitchover:
		return e.switchover(ctx, st, cfg)
	case StepRedirect:
		// The writer the plan made (not asked of the provider again: the endpoints
		// are still held, and every query here is write stall).
		return p.Redirect(ctx, st.writer)
	case StepValidate:
		d, err := e.validate(ctx, st)
		if err == nil {
			st.validated = true
		}
		return d, err
	case StepKeepRollbackTarget:
		return e.keepRollbackTarget(ctx, st)
	case StepRollback:
		d, err := e.failBack(ctx, st)
		if err == nil {
			st.rolledBack = true
		}
		return d, err
	case StepDecommission:
		return e.decommission(ctx, st, cfg)
	case StepSettle:
		return e.settle(ctx, cfg)
	}
	return nil, fmt.Errorf("unknown step %q", name)
}

// createReplica is the create_replica step.
func (e *Engine) createReplica(ctx context.Context, st *state) (map[string]any, error) {
	n, err := e.Provider.CreateReplica(ctx)
	if err != nil {
		return nil, err
	}
	st.replica = n.ID
	return map[string]any{"replica": n.ID, "addr": n.Addr, "version": n.Version, "class": n.Class}, nil
}

// catchUpReplica is the catch_up step: wait until the replica has caught up, then
// make it a synchronous standby when the plan asks for that and the provider can.
func (e *Engine) catchUpReplica(ctx context.Context, st *state, cfg Config) (map[string]any, error) {
	if err := e.needReplica(ctx, st); err != nil {
		return nil, err
	}
	target := st.other()
	d, err := e.catchUp(ctx, target, cfg)
	if err != nil || !cfg.Synchronous {
		return d, err
	}
	if s, ok := e.Provider.(Synchronizer); ok {
		if err := s.SetSynchronous(ctx, target); err != nil {
			return d, fmt.Errorf("make %s a synchronous standby: %w", target, err)
		}
		st.syncOn = true
		d["synchronous"] = target
	}
	return d, nil
}

// switchover is the switchover step: a planned switchover to the replica, or for a
// crash plan, killing the writer and failing over to the replica.
func (e *Engine) switchover(ctx context.Context, st *state, cfg Config) (map[string]any, error) {
	p := e.Provider
	if err := e.needReplica(ctx, st); err != nil {
		return nil, err
	}
	target := st.other()
	var (
		pr  Promotion
		err error
	)
	if cfg.Kind == Crash {
		cr, ok := p.(Crasher)
		if !ok {
			return nil, fmt.Errorf("the %s provider cannot crash a node", p.Kind())
		}
		lag, _ := p.Lag(ctx, target)
		if err := cr.Crash(ctx, st.writer); err != nil {
			return nil, fmt.Errorf("crash %s: %w", st.writer, err)
		}
		pr, err = cr.Failover(ctx, target)
		pr.LagTime = lag.Time
		if pr.LagBytes == 0 {
			pr.LagBytes = lag.Bytes
		}
	} else {
		pr, err = p.Switchover(ctx, target)
	}
	d := promotionDetail(pr)
	if err != nil {
		return d, err
	}
	st.promotion, st.switched, st.writer = &pr, true, target
	return d, nil
}

// keepRollbackTarget is the keep_rollback_target step: the old writer follows the
// new one (synchronous replication is off again first).
func (e *Engine) keepRollbackTarget(ctx context.Context, st *state) (map[string]any, error) {
	if !st.switched {
		return nil, errors.New("no switchover happened: there is no old writer to keep")
	}
	if st.syncOn {
		if s, ok := e.Provider.(Synchronizer); ok {
			_ = s.SetSynchronous(ctx, "")
			st.syncOn = false
		}
	}
	// The writer before the last switchover follows the new one.
	return e.Provider.Rejoin(ctx, st.other())
}

// decommission is the decommission step: after the soak, remove the old writer (the
// replica after a rollback).
func (e *Engine) decommission(ctx context.Context, st *state, cfg Config) (map[string]any, error) {
	if !st.validated {
		return nil, errors.New("refusing to decommission: validation did not pass in this run")
	}
	// The node of the pair that no longer writes: the old writer, or the replica
	// after a rollback or an even number of cycles.
	victim := st.other()
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
	if err := e.Provider.Remove(ctx, victim); err != nil {
		return nil, err
	}
	return map[string]any{"removed": victim, "soak_s": cfg.Soak.Seconds()}, nil
}

// settle is the settle step between two cycles: the load runs on for the settle
// period before the next switchover.
func (e *Engine) settle(ctx context.Context, cfg Config) (map[string]any, error) {
	t := time.NewTimer(cfg.Settle)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
	}
	return map[string]any{"settle_s": cfg.Settle.Seconds()}, nil
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
	d, failed := checkDetail(checks, "failed")
	if len(failed) > 0 {
		return d, fmt.Errorf("preflight failed: %v", failed)
	}
	return d, nil
}

// checkDetail is preflight checks as a step's detail: each check's name to its
// status (ok, warning, or bad for a failed check that is not a warning) and
// detail. It returns the failed checks too, named with their detail.
func checkDetail(checks []Check, bad string) (map[string]any, []string) {
	d := map[string]any{}
	var failed []string
	for _, c := range checks {
		status := "ok"
		switch {
		case !c.OK && c.Warning:
			status = "warning"
		case !c.OK:
			status = bad
			failed = append(failed, c.Name+" ("+c.Detail+")")
		}
		d[c.Name] = status + ": " + c.Detail
	}
	return d, failed
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
