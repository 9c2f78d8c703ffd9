package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workload"
)

// afterMin is how long the load keeps running after the cutover ends, so the "after"
// phase has measurements even when the cutover outlasts the scenario's duration.
const afterMin = 3 * time.Second

// maxExtension bounds how long the load may outlast the scenario's duration while a
// cutover is still running.
const maxExtension = 30 * time.Minute

// cutover runs the migration engine alongside the load and marks the phases on the
// load's recorder.
type cutover struct {
	engine *migrate.Engine
	warmup time.Duration
	disr   *disruptions
	guard  *guardrails
	// listeners get every step event after the disruptions have (faults that
	// strike at a step).
	listeners []func(migrate.Event)

	done chan struct{}
	mu   sync.Mutex
	// endedAt is when the engine finished, on the run's timeline (valid after done).
	endedAt time.Duration
	mig     *result.Migration
	err     error
}

func newCutover(sc *scenarios.Scenario, dry bool, tgt Target, wl workload.Workload, p *pools, rec *loadgen.Recorder, log io.Writer) *cutover {
	c := sc.Cutover
	e := &migrate.Engine{
		Provider: tgt.Provider(),
		Config:   PlanConfig(sc),
		Dry:      dry,
		Validate: validator(wl, tgt, p),
		Log:      log,
	}
	cut := &cutover{engine: e, warmup: c.Warmup.D(), done: make(chan struct{}), disr: newDisruptions(sc, rec)}
	cut.guard = newGuardrails(sc, dry, rec, cut.disr.where, log)
	return cut
}

// PlanConfig is the cutover plan sc describes (its cycles too), as a run executes
// it and `rehearse plan` shows it.
func PlanConfig(sc *scenarios.Scenario) migrate.Config {
	c := sc.Cutover
	return migrate.Config{
		Steps: c.Steps, Kind: c.Kind, StepTimeout: c.StepTimeout.D(),
		CatchUpMaxLagBytes: c.CatchUpMaxLagBytes, CatchUpSamples: c.CatchUpSamples,
		Soak: c.Soak.D(), Rollback: c.Rollback, Synchronous: synchronous(sc),
		Strategy: c.Strategy, SwitchoverTimeout: c.SwitchoverTimeout.D(),
		Green:  migrate.GreenSpec{InstanceClass: c.Green.InstanceClass, EngineVersion: c.Green.EngineVersion, ParameterGroup: c.Green.ParameterGroup},
		Cycles: c.Cycles, Settle: c.Settle.D(),
	}
}

// blueGreen reports whether sc runs a blue/green cutover.
func blueGreen(sc *scenarios.Scenario) bool {
	return sc.Cutover.Enabled && sc.Cutover.Strategy == scenarios.StrategyBlueGreen
}

// checkStrategy refuses, before anything starts, a cutover strategy the target
// cannot run: a blue/green deployment needs a target rehearse manages, and has no
// failback to rehearse.
func checkStrategy(sc *scenarios.Scenario) error {
	if !blueGreen(sc) {
		return nil
	}
	switch {
	case sc.Target.Kind != scenarios.TargetAurora && sc.Target.DSN != "":
		return fmt.Errorf("%w: cutover.strategy blue_green: target.dsn points at a database rehearse does not manage, so it cannot create a green copy of it or move its names; use target.kind local, container or aurora", ErrInvalidInput)
	case sc.Cutover.Rollback:
		return fmt.Errorf("%w: cutover.rollback: a blue/green switchover has no failback (the old blue is read-only under its %s names and lacks green's writes); set rollback: false", ErrInvalidInput, migrate.OldSuffix)
	}
	return nil
}

// checkGreenVersion refuses a green engine version older than blue's (version).
func checkGreenVersion(sc *scenarios.Scenario, version string) error {
	if want := sc.Cutover.Green.EngineVersion; blueGreen(sc) && want != "" && version != "" && migrate.CompareVersions(want, version) < 0 {
		return fmt.Errorf("%w: cutover.green.engine_version %s is older than blue's %s: a blue/green deployment upgrades or stays, it cannot downgrade", ErrInvalidInput, want, version)
	}
	return nil
}

// logicalConf adds what a blue/green deployment's blue needs to a server's
// settings: WAL that carries logical decoding (Aurora's rds.logical_replication).
func logicalConf(sc *scenarios.Scenario, conf map[string]string) map[string]string {
	if !blueGreen(sc) {
		return conf
	}
	out := map[string]string{"wal_level": "logical"}
	for k, v := range conf {
		out[k] = v
	}
	return out
}

// blueGreenNote says how a local or container target runs a blue/green deployment.
const blueGreenNote = "Blue/green: green is a second set of nodes (one per blue node) holding blue's schema (pg_dump --schema-only) and fed by logical replication (a publication FOR ALL TABLES on blue, a subscription with the initial copy on green); green is read-only until the switchover. The switchover holds the endpoints (proxy: PgBouncer pauses), makes blue's database read-only (default_transaction_read_only) and ends its sessions, waits until green confirmed blue's final LSN, sets green's sequences past blue's, makes green writable, moves blue's names to green (blue's become -old1) and releases the endpoints to green; past cutover.switchover_timeout it rolls back instead."

// start runs the plan after the warm-up, on the run's clock, with its guardrails
// watching; the phases follow its disruptions (see disruptions).
func (c *cutover) start(ctx context.Context, since func() time.Duration) {
	c.engine.Since = since
	c.engine.OnEvent = func(ev migrate.Event) {
		c.disr.event(ev)
		for _, f := range c.listeners {
			f(ev)
		}
	}
	go func() {
		defer close(c.done)
		t := time.NewTimer(c.warmup - since())
		select {
		case <-ctx.Done():
			t.Stop()
			c.finish(since(), nil, fmt.Errorf("interrupted before the cutover started: %w", ctx.Err()))
			return
		case <-t.C:
		}
		pctx, abort := context.WithCancelCause(ctx)
		defer abort(nil)
		gctx, stopGuard := context.WithCancel(ctx)
		guarded := make(chan struct{})
		go func() {
			defer close(guarded)
			c.guard.watch(gctx, since(), since, abort)
		}()
		mig, err := c.engine.Run(pctx)
		stopGuard()
		<-guarded
		c.disr.close(since())
		if mig != nil {
			mig.Guardrails, mig.Abort = c.guard.result()
		}
		c.finish(since(), mig, err)
	}()
}

func (c *cutover) finish(at time.Duration, mig *result.Migration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endedAt, c.mig, c.err = at, mig, err
}

// outcome is the cutover's record and error, once done is closed.
func (c *cutover) outcome() (*result.Migration, time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mig, c.endedAt, c.err
}

// validator is the validate step's check: the writer endpoint reaches a primary,
// and the integrity check (run on the writer node itself) finds nothing lost. The
// health query opens a connection of its own that resolves the endpoint afresh: it
// checks the endpoint, not what the load's clients cached.
func validator(wl workload.Workload, tgt Target, p *pools) migrate.Validator {
	return func(ctx context.Context) (map[string]any, error) {
		d := map[string]any{}
		var inRecovery bool
		if err := healthQuery(ctx, tgt, &inRecovery); err != nil {
			return d, fmt.Errorf("health query through the writer endpoint: %w", err)
		}
		if inRecovery {
			return d, errors.New("the writer endpoint reaches a node in recovery")
		}
		d["writer_endpoint"] = "primary"
		in, err := verify(ctx, wl, tgt)
		if err != nil {
			return d, fmt.Errorf("integrity check: %w", err)
		}
		d["lost_acknowledged_writes"] = in.LostAcknowledgedWrites
		d["balance_conserved"] = in.BalanceConserved
		d["acknowledged_writes"] = in.AcknowledgedWrites
		if in.LostAcknowledgedWrites > 0 || !in.BalanceConserved {
			return d, fmt.Errorf("integrity check failed: %d acknowledged writes lost, balance conserved %v", in.LostAcknowledgedWrites, in.BalanceConserved)
		}
		return d, nil
	}
}

// verify runs the workload's integrity check on the current writer node directly.
func verify(ctx context.Context, wl workload.Workload, tgt Target) (result.Integrity, error) {
	cfg, err := pgxpool.ParseConfig(tgt.DirectWriterDSN(ctx))
	if err != nil {
		return result.Integrity{}, err
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return result.Integrity{}, err
	}
	defer pool.Close()
	return wl.Verify(ctx, pool)
}

// healthQuery asks the writer endpoint whether it reaches a node in recovery, over a
// fresh connection whose name lookups are not cached.
func healthQuery(ctx context.Context, tgt Target, inRecovery *bool) error {
	wdsn, _ := tgt.Endpoints()
	cfg, err := pgx.ParseConfig(wdsn)
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = tgt.ExecMode()
	if server := tgt.DNSServer(); server != "" {
		r, err := newResolver(server, "0s")
		if err != nil {
			return err
		}
		cfg.LookupFunc = r.LookupHost
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(inRecovery)
}
