package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rehearse-dev/rehearse/result"
)

// bgState is what the blue/green steps learn and leave for later steps and undos.
type bgState struct {
	// created is set once create_green completed: green exists and replicates.
	created bool
	dep     Deployment
	// switched is set once green took over (the switchover's point of no return).
	switched bool
}

// blueGreen returns the provider's blue/green capability.
func (e *Engine) blueGreen() (BlueGreen, error) {
	bg, ok := e.Provider.(BlueGreen)
	if !ok {
		return nil, fmt.Errorf("%w: the %s provider has no blue/green deployments", ErrNoBlueGreen, e.Provider.Kind())
	}
	return bg, nil
}

// runBlueGreen performs one step of a blue/green plan.
func (e *Engine) runBlueGreen(ctx context.Context, name string, st *state, cfg Config) (map[string]any, error) {
	bg, err := e.blueGreen()
	if err != nil {
		return nil, err
	}
	switch name {
	case StepPreflight:
		return findings(bg.PreflightBlueGreen(ctx, cfg.Green))
	case StepCreateGreen:
		dep, err := bg.CreateGreen(ctx, cfg.Green)
		if err != nil {
			return deploymentDetail(dep), err
		}
		st.bg.created, st.bg.dep = true, dep
		return deploymentDetail(dep), nil
	case StepGreenSync:
		return e.greenSync(ctx, bg, cfg)
	case StepSwitchover:
		return e.switchoverGreen(ctx, bg, st, cfg)
	case StepRedirect:
		topo, err := e.Provider.Describe(ctx)
		if err != nil {
			return nil, err
		}
		return e.Provider.Redirect(ctx, topo.Writer)
	case StepValidate:
		d, err := e.validate(ctx, st)
		if err == nil {
			st.validated = true
		}
		return d, err
	case StepKeepOldBlue:
		if !st.bg.switched {
			return nil, errors.New("no switchover happened: there is no old blue to keep")
		}
		return bg.KeepOldBlue(ctx)
	case StepDeleteDeployment:
		return e.deleteDeployment(ctx, bg, st, cfg)
	}
	return nil, fmt.Errorf("unknown blue/green step %q", name)
}

// greenSync is the green_sync step: sample green's progress until every table is
// copied and the lag stays under the limit for the required samples.
func (e *Engine) greenSync(ctx context.Context, bg BlueGreen, cfg Config) (map[string]any, error) {
	tick := time.NewTicker(cfg.Poll)
	defer tick.Stop()
	good, samples := 0, 0
	var (
		maxLag  int64
		last    GreenSync
		lastErr error
	)
	for {
		gs, err := bg.GreenSync(ctx)
		samples++
		lastErr = err
		if err == nil {
			last = gs
			maxLag = max(maxLag, gs.Lag.Bytes)
			if gs.Switchable && gs.Lag.Bytes <= cfg.CatchUpMaxLagBytes {
				good++
			} else {
				good = 0
			}
		} else {
			good = 0
		}
		d := syncDetail(last)
		d["samples"], d["max_lag_bytes"] = samples, maxLag
		if good >= cfg.CatchUpSamples {
			return d, nil
		}
		select {
		case <-ctx.Done():
			d["last_error"] = fmt.Sprint(lastErr)
			return d, fmt.Errorf("green did not catch up (%s; lag %d bytes after %d samples, last error %v): %w",
				copied(last), last.Lag.Bytes, samples, lastErr, ctx.Err())
		case <-tick.C:
		}
	}
}

// copied says how many tables finished their initial copy.
func copied(gs GreenSync) string {
	if gs.Tables < 0 {
		return "status " + gs.Status
	}
	s := fmt.Sprintf("%d of %d tables copied", gs.Ready, gs.Tables)
	if len(gs.NotReady) > 0 {
		s += fmt.Sprintf(", still copying %v", gs.NotReady)
	}
	return s
}

func syncDetail(gs GreenSync) map[string]any {
	d := map[string]any{"lag_bytes": gs.Lag.Bytes, "blue_lsn": gs.Lag.WriterLSN, "green_confirmed_lsn": gs.Lag.ReplayLSN,
		"switchable": gs.Switchable}
	if gs.Status != "" {
		d["status"] = gs.Status
	}
	if gs.Tables >= 0 {
		d["tables"], d["tables_copied"] = gs.Tables, gs.Ready
	}
	if len(gs.NotReady) > 0 {
		d["tables_copying"] = gs.NotReady
	}
	return d
}

// switchoverGreen is the blue/green switchover step.
func (e *Engine) switchoverGreen(ctx context.Context, bg BlueGreen, st *state, cfg Config) (map[string]any, error) {
	if !st.bg.created {
		return nil, errors.New("there is no green environment: add create_green to the plan")
	}
	sw, err := bg.SwitchoverGreen(ctx, cfg.SwitchoverTimeout)
	d := switchoverDetail(sw, cfg.SwitchoverTimeout)
	if sw.Switched {
		st.bg.switched, st.switched = true, true
		st.promotion = &sw.Promotion
	}
	return d, err
}

func switchoverDetail(sw BlueGreenSwitchover, timeout time.Duration) map[string]any {
	d := promotionDetail(sw.Promotion)
	d["lag_at_switchover_bytes"] = sw.LagBytes
	d["duration_ms"] = msf(sw.Duration)
	d["timeout_s"] = timeout.Seconds()
	d["within_timeout"] = sw.Duration <= timeout
	d["writes_blocked_ms"] = msf(sw.Stall)
	d["rolled_back"] = sw.RolledBack
	d["switched"] = sw.Switched
	d["sequences_synced"] = len(sw.Sequences)
	if len(sw.Sequences) > 0 {
		var seqs []string
		for i, s := range sw.Sequences {
			if i == 20 {
				seqs = append(seqs, fmt.Sprintf("… and %d more", len(sw.Sequences)-i))
				break
			}
			seqs = append(seqs, fmt.Sprintf("%s: blue %d, green set to %d", s.Name, s.Blue, s.Green))
		}
		d["sequences"] = seqs
	}
	if len(sw.BlockedDDL) > 0 {
		d["blocked_ddl"] = sw.BlockedDDL
	}
	if len(sw.Renamed) > 0 {
		d["renamed"] = sw.Renamed
	}
	return d
}

// deleteDeployment is the delete_deployment step: after the soak, delete the
// deployment (gated on validation).
func (e *Engine) deleteDeployment(ctx context.Context, bg BlueGreen, st *state, cfg Config) (map[string]any, error) {
	if !st.validated {
		return nil, errors.New("refusing to delete the deployment: validation did not pass in this run")
	}
	t := time.NewTimer(cfg.Soak)
	select {
	case <-ctx.Done():
		t.Stop()
		return nil, ctx.Err()
	case <-t.C:
	}
	d, err := bg.DeleteDeployment(ctx)
	if d == nil {
		d = map[string]any{}
	}
	d["soak_s"] = cfg.Soak.Seconds()
	return d, err
}

func deploymentDetail(dep Deployment) map[string]any {
	d := map[string]any{}
	for k, v := range map[string]string{"deployment": dep.ID, "blue": dep.Blue, "green": dep.Green,
		"green_writer": dep.GreenWriter, "green_version": dep.GreenVersion, "status": dep.Status} {
		if v != "" {
			d[k] = v
		}
	}
	for k, v := range dep.Detail {
		d[k] = v
	}
	return d
}

// findings turns preflight checks into a step's detail; a failed check that is not
// a warning blocks the plan.
func findings(checks []Check, err error) (map[string]any, error) {
	if err != nil {
		return nil, err
	}
	d, blocking := checkDetail(checks, "blocking")
	if len(blocking) > 0 {
		return d, fmt.Errorf("preflight found what blocks a blue/green deployment: %v", blocking)
	}
	return d, nil
}

// dryBlueGreen runs one blue/green step's read-only checks and says what it would do.
func (e *Engine) dryBlueGreen(ctx context.Context, name string, st *state, cfg Config) (map[string]any, error) {
	p := e.Provider
	action, check := describeBlueGreenStep(name, cfg, p.Kind())
	d := map[string]any{"would": action, "done_when": check}
	bg, err := e.blueGreen()
	if err != nil {
		return d, err
	}
	merge := func(m map[string]any) {
		for k, v := range m {
			d[k] = v
		}
	}
	switch name {
	case StepPreflight:
		fd, err := findings(bg.PreflightBlueGreen(ctx, cfg.Green))
		merge(fd)
		return d, err
	case StepCreateGreen:
		pd, err := bg.PlanGreen(ctx, cfg.Green)
		merge(pd)
		return d, err
	case StepSwitchover, StepRedirect, StepValidate:
		topo, err := p.Describe(ctx)
		if err != nil {
			return d, err
		}
		d["writer_now"] = topo.Writer
		d["writer_endpoint"] = topo.WriterEndpoint
		if name == StepSwitchover {
			d["switchover_timeout_s"] = cfg.SwitchoverTimeout.Seconds()
		}
		if name == StepValidate && e.Validate != nil {
			vd, err := e.Validate(ctx)
			merge(vd)
			return d, err
		}
	}
	return d, nil
}

// rollBackBlueGreen leaves blue serving writes after a failed step: a switchover
// that failed has rolled itself back already, so what is left is green, which it
// removes (undo_create_green). A switchover that completed is not undone: green has
// taken writes the old blue lacks.
func (e *Engine) rollBackBlueGreen(ctx context.Context, m *result.Migration, done []string, st *state, cfg Config) {
	// Undo on a context that outlives a cancelled run.
	bctx := context.WithoutCancel(ctx)
	bg, err := e.blueGreen()
	if err != nil {
		return
	}
	for i := len(done) - 1; i >= 0; i-- {
		switch done[i] {
		case StepSwitchover:
			e.recordUndo(m, StepSwitchover, false, map[string]any{
				"note": "a completed blue/green switchover is not undone: green has taken writes the old blue lacks; the old blue stays read-only under its " + OldSuffix + " names",
			}, errors.New("not undone"))
		case StepCreateGreen:
			if !st.bg.created {
				continue
			}
			if st.bg.switched {
				e.recordUndo(m, StepCreateGreen, false, map[string]any{"note": "green is the writer since the switchover; kept"}, errors.New("not undone"))
				continue
			}
			start := e.now()
			uctx, cancel := context.WithTimeout(bctx, 2*cfg.StepTimeout)
			d, uerr := bg.DeleteDeployment(uctx)
			cancel()
			if uerr == nil {
				st.bg.created = false
			}
			e.recordUndoAt(m, StepCreateGreen, start, true, d, uerr)
		}
	}
}

// recordUndo records the undo of step name as undo_<name>.
func (e *Engine) recordUndo(m *result.Migration, name string, undone bool, detail map[string]any, err error) {
	e.recordUndoAt(m, name, e.now(), undone, detail, err)
}

// recordUndoAt records the undo of step name, started at start; when it undid the
// step (undone and no error) the step is marked rolled back.
func (e *Engine) recordUndoAt(m *result.Migration, name string, start float64, undone bool, detail map[string]any, err error) {
	status := StatusRolledBack
	if err != nil || !undone {
		status = StatusFailed
		if detail == nil {
			detail = map[string]any{}
		}
		if err != nil {
			detail["error"] = err.Error()
		}
	}
	m.Steps = append(m.Steps, result.Step{Name: "undo_" + name, Status: status, StartS: start, EndS: e.now(), Detail: detail})
	if status == StatusRolledBack {
		for j := range m.Steps {
			if m.Steps[j].Name == name {
				m.Steps[j].Status = StatusRolledBack
			}
		}
	}
	e.logf("undo %s: %s", name, status)
}

// describeBlueGreenStep says what a blue/green step does and when it is done, for
// provider kind.
func describeBlueGreenStep(step string, cfg Config, kind string) (action, check string) {
	aurora := kind == "aurora"
	switch step {
	case StepPreflight:
		if aurora {
			return "DescribeDBClusters (status, engine, version) and DescribeBlueGreenDeployments (none yet for the cluster); over SQL on the writer: wal_level logical (rds.logical_replication), tables without a primary key or replica identity, long-running transactions, sequences, unlogged tables, large objects",
				"no blocking finding (a table without a primary key or replica identity, wal_level not logical, a deployment already there, a green engine version older than blue's)"
		}
		return "on blue's writer: wal_level logical, tables without a primary key or replica identity, long-running transactions, sequences, unlogged tables and large objects (not replicated), free replication slots and WAL senders",
			"no blocking finding (a table without a primary key or replica identity, wal_level not logical, no slot or WAL sender free)"
	case StepCreateGreen:
		if aurora {
			return fmt.Sprintf("CreateBlueGreenDeployment Source=the cluster's ARN%s, then DescribeBlueGreenDeployments until it is AVAILABLE", greenParams(cfg.Green)),
				"the deployment is AVAILABLE"
		}
		return "a green cluster of as many nodes as blue (initdb), read-only; on blue a publication FOR ALL TABLES and an event trigger that logs DDL; blue's schema (pg_dump --schema-only, restored on green); a subscription on green with the initial copy",
			"green's nodes run and the subscription exists"
	case StepGreenSync:
		src := "pg_subscription_rel on green; blue's slot: confirmed_flush_lsn against pg_current_wal_lsn"
		if aurora {
			src = "DescribeBlueGreenDeployments (SwitchoverDetails); blue's logical slots: confirmed_flush_lsn against pg_current_wal_lsn"
		}
		return "sample green's progress (" + src + ")",
			fmt.Sprintf("every table copied and lag ≤ %d bytes for %d consecutive samples", cfg.CatchUpMaxLagBytes, cfg.CatchUpSamples)
	case StepSwitchover:
		if aurora {
			return fmt.Sprintf("SwitchoverBlueGreenDeployment SwitchoverTimeout=%d, then DescribeBlueGreenDeployments until SWITCHOVER_COMPLETED (SWITCHOVER_FAILED: rolled back, reported with its StatusDetails)", int(cfg.SwitchoverTimeout.Seconds())),
				fmt.Sprintf("SWITCHOVER_COMPLETED within %v", cfg.SwitchoverTimeout)
		}
		return fmt.Sprintf("guardrails (no DDL on blue since green was created), hold the endpoints, block writes on blue (default_transaction_read_only, blue's sessions ended), wait until green applied blue's final LSN, set green's sequences past blue's, make green writable and move blue's names to green (blue's get %s); roll back after %v", OldSuffix, cfg.SwitchoverTimeout),
			"green is the writer and blue's names lead to it, within the switchover timeout"
	case StepRedirect:
		if aurora {
			return "let the renamed cluster endpoints reach green (DNS)", "the writer endpoint reaches the new writer"
		}
		return "check the endpoints lead to green (dns: after the propagation delay; proxy: repointed and resumed)",
			"a connection through the writer endpoint reaches green's writer"
	case StepValidate:
		return "integrity check (acknowledged writes present, money conserved) and a health write through the writer endpoint",
			"all checks pass"
	case StepKeepOldBlue:
		if aurora {
			return "keep the old blue cluster, renamed " + OldSuffix + ", for reads (DescribeDBClusters)", "the " + OldSuffix + " cluster is there"
		}
		return "keep the old blue, read-only, under its " + OldSuffix + " names", "a read through its writer succeeds and a write is refused"
	case StepDeleteDeployment:
		if aurora {
			return fmt.Sprintf("after a %v soak, DeleteBlueGreenDeployment (the %s cluster is kept: delete it once you no longer need it)", cfg.Soak, OldSuffix),
				"DescribeBlueGreenDeployments no longer finds it"
		}
		return fmt.Sprintf("after a %v soak, remove the old blue's nodes, its %s names and the replication objects", cfg.Soak, OldSuffix),
			"they are gone"
	}
	return "", ""
}

func greenParams(g GreenSpec) string {
	s := ""
	if g.EngineVersion != "" {
		s += " TargetEngineVersion=" + g.EngineVersion
	}
	if g.ParameterGroup != "" {
		s += " TargetDBClusterParameterGroupName=" + g.ParameterGroup
	}
	if g.InstanceClass != "" {
		// RDS takes no TargetDBInstanceClass for an Aurora cluster: say so rather
		// than show a parameter the request does not carry.
		s += " (green.instance_class " + g.InstanceClass + " is not sent: RDS takes no TargetDBInstanceClass for Aurora; green's instances keep blue's classes)"
	}
	return s
}

// undoOf says what undoes step when a later step fails ("" when nothing needs to).
func undoOf(step string, cfg Config, kind string) string {
	aurora := kind == "aurora"
	if cfg.Strategy == StrategyBlueGreen {
		switch step {
		case StepCreateGreen:
			if aurora {
				return "DeleteBlueGreenDeployment DeleteTarget=true (deletes green)"
			}
			return "drop the subscription, remove green's nodes, drop the publication and the DDL trigger on blue"
		case StepSwitchover:
			return "rolls itself back when it fails or times out (blue writable again, the endpoints stay on blue); once green took writes it is not undone"
		}
		return ""
	}
	switch step {
	case StepCreateReplica:
		if aurora {
			return "DeleteDBInstance the new instance"
		}
		return "remove the replica and its slot"
	case StepCatchUp:
		if cfg.Synchronous {
			return "synchronous replication off"
		}
	case StepForwardWrites:
		if aurora {
			return "ModifyDBCluster EnableLocalWriteForwarding=false"
		}
		return "write forwarding off"
	case StepSwitchover:
		return "fail back to the old writer (switchover and redirect); a switchover that failed first brings the old writer back"
	}
	return ""
}
