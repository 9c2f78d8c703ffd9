package engine

import (
	"context"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// Target is the database a rehearsal's load goes to, whatever runs it: an embedded
// node or cluster, containers, an existing DSN, an Aurora cluster. Each kind is one
// small adapter; OpenTarget chooses it.
type Target interface {
	// Kind is what the result records as target.kind.
	Kind() scenarios.TargetKind
	// EndpointMode is dns or proxy when endpoints stand in front of the load, direct
	// when it reaches a node itself.
	EndpointMode() scenarios.EndpointMode
	// Endpoints are the DSNs the load's writes and reads go to.
	Endpoints() (writer, reader string)
	// DNSServer is the host:port (UDP and TCP) of the DNS server that answers for
	// the target's endpoint and instance names; "" when the endpoints are plain
	// addresses (a node, a DSN, Aurora).
	DNSServer() string
	// ExecMode is how the load sends statements: a transaction-pooling proxy cannot
	// keep a connection's prepared statements.
	ExecMode() pgx.QueryExecMode
	// Provider runs a cutover on the target; nil when it cannot (one node, a DSN).
	Provider() migrate.Provider
	// DirectWriterDSN reaches the current writer node itself, not through an
	// endpoint: integrity checks use temporary tables, which a transaction-pooling
	// proxy breaks.
	DirectWriterDSN(ctx context.Context) string
	// Notes are sentences for the result on how the target was reached.
	Notes() []string
	// Close stops what the target started. With keep it leaves the servers running
	// and writes to log how to reach them.
	Close(ctx context.Context, keep bool, log io.Writer)
}

// clocked is a target that records events on the run's timeline (the RDS API calls
// of the aurora target) once the run's clock starts.
type clocked interface {
	StartClock(since func() time.Duration)
}

// TargetConfig is what starting a target needs beyond the scenario.
type TargetConfig struct {
	// Dir is the run's work directory; embedded servers live under it.
	Dir string
	// Image is the PostgreSQL image of the container target ("" chooses one).
	Image string
	// AuroraCluster is the Aurora cluster id (resolved from the DSN or --confirm).
	AuroraCluster string
	// AWSEndpointURL points the RDS API client elsewhere (the emulator).
	AWSEndpointURL string
	// Log gets what the target is doing.
	Log io.Writer
}

// OpenTarget starts or connects to the target sc names. It is the one place where
// the kind of target is chosen: an Aurora cluster, an existing DSN, containers, an
// embedded cluster (when the scenario has a cutover) or a single embedded node.
func OpenTarget(ctx context.Context, sc *scenarios.Scenario, cfg TargetConfig) (Target, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if err := checkStrategy(sc); err != nil {
		return nil, err
	}
	switch {
	case sc.Target.Kind == scenarios.TargetAurora:
		return openAurora(ctx, sc, cfg)
	case sc.Target.DSN != "":
		return openDSN(sc), nil
	case sc.Target.Kind == scenarios.TargetContainer:
		return openContainers(ctx, sc, cfg)
	case sc.Cutover.Enabled:
		return openLocalCluster(ctx, sc, cfg)
	default:
		return openLocalNode(ctx, sc, cfg)
	}
}

// dsnTarget is an existing database rehearse does not manage: no cutover, no
// teardown.
type dsnTarget struct{ dsn string }

func openDSN(sc *scenarios.Scenario) *dsnTarget { return &dsnTarget{dsn: sc.Target.DSN} }

func (t *dsnTarget) Kind() scenarios.TargetKind             { return scenarios.TargetDSN }
func (t *dsnTarget) EndpointMode() scenarios.EndpointMode   { return scenarios.EndpointDirect }
func (t *dsnTarget) Endpoints() (string, string)            { return t.dsn, t.dsn }
func (t *dsnTarget) DNSServer() string                      { return "" }
func (t *dsnTarget) ExecMode() pgx.QueryExecMode            { return pgx.QueryExecModeCacheStatement }
func (t *dsnTarget) Provider() migrate.Provider             { return nil }
func (t *dsnTarget) DirectWriterDSN(context.Context) string { return t.dsn }
func (t *dsnTarget) Close(context.Context, bool, io.Writer) {}
func (t *dsnTarget) Notes() []string                        { return nil }

// fsync is the scenario's fsync setting (default on).
func fsync(sc *scenarios.Scenario) bool { return sc.Target.Fsync == nil || *sc.Target.Fsync }

// staleWindow is the dns endpoints' propagation delay; an explicit 0 means none.
func staleWindow(sc *scenarios.Scenario) time.Duration {
	if d := sc.Cutover.DNSPropagation.D(); d > 0 {
		return d
	}
	return -1
}

// synchronous says whether the caught-up replica becomes a synchronous standby.
func synchronous(sc *scenarios.Scenario) bool {
	if sc.Cutover.Synchronous != nil {
		return *sc.Cutover.Synchronous
	}
	return sc.Cutover.Kind == migrate.Crash
}

// endpointNote says what the endpoints of a local or container cluster emulate.
func endpointNote(mode scenarios.EndpointMode) string {
	if mode == scenarios.EndpointProxy {
		return "Endpoints: a real PgBouncer per endpoint in transaction pooling mode, paused for the switchover, repointed and resumed (as RDS Proxy keeps client connections). Write forwarding is an emulation at the endpoint: while on, reader-endpoint connections are served by the writer."
	}
	return "Endpoints: emulated Aurora DNS cluster endpoints (TCP forwarders): at failover the old writer's connections drop, and new connections reach the old node for the stale-DNS window. Write forwarding is an emulation at the endpoint: while on, reader-endpoint connections are served by the writer."
}
