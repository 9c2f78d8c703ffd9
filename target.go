package rehearse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/aurora"
	"github.com/rehearse-dev/rehearse/migrate/container"
	"github.com/rehearse-dev/rehearse/migrate/endpoint"
	"github.com/rehearse-dev/rehearse/migrate/local"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// target is the database the run goes to: an embedded node, an embedded cluster
// behind endpoints (when a cutover runs), or an existing DSN.
type target struct {
	kind      string // local | dsn
	endpoint  string // dns | proxy, or "" when the load connects directly
	writerDSN string
	readerDSN string
	execMode  pgx.QueryExecMode
	node      *local.Node
	cluster   *local.Cluster
	container *container.Cluster
	aurora    *aurora.Provider
	calls     *callLog
}

// provider is the cutover provider, or nil when the target has none.
func (t *target) provider() migrate.Provider {
	switch {
	case t.cluster != nil:
		return t.cluster
	case t.container != nil:
		return t.container
	case t.aurora != nil:
		return t.aurora
	}
	return nil
}

// directWriterDSN reaches the current writer node itself, not through an endpoint:
// integrity checks use temporary tables, which a transaction-pooling proxy breaks.
func (t *target) directWriterDSN() string {
	switch {
	case t.cluster != nil:
		return t.cluster.Writer().DSN(local.Database)
	case t.container != nil:
		topo, err := t.container.Describe(context.Background())
		if err == nil {
			if addr, err := t.container.NodeAddr(topo.Writer); err == nil {
				return t.container.DSN(addr, container.Database)
			}
		}
		return t.writerDSN
	case t.node != nil:
		return t.node.DSN(local.Database)
	}
	return t.writerDSN
}

func endpointDSN(addr string) string {
	return "postgres://" + local.Superuser + "@" + addr + "/" + local.Database + "?sslmode=disable"
}

func startTarget(ctx context.Context, sc *scenarios.Scenario, o *options, outDir string, logw io.Writer) (*target, error) {
	if sc.Target.Kind == "aurora" {
		return startAurora(ctx, sc, o, logw)
	}
	if sc.Target.DSN != "" {
		return &target{kind: "dsn", writerDSN: sc.Target.DSN, readerDSN: sc.Target.DSN, execMode: pgx.QueryExecModeCacheStatement}, nil
	}
	if sc.Target.Kind == "container" {
		return startContainers(ctx, sc, o, outDir, logw)
	}
	bin, err := local.FindBinaries(ctx, "")
	if err != nil {
		return nil, err
	}
	fsync := sc.Target.Fsync == nil || *sc.Target.Fsync
	abs, err := filepath.Abs(filepath.Join(outDir, "pg"))
	if err != nil {
		return nil, err
	}
	ncfg := local.Config{
		Dir: abs, Fsync: fsync,
		MaxConnections: sc.Target.MaxConnections, SharedBuffers: sc.Target.SharedBuffers,
		Log: logw, Bin: bin,
	}
	fmt.Fprintf(logw, "starting PostgreSQL %s (embedded, fsync=%v)\n", bin.Version, fsync)
	if !sc.Cutover.Enabled {
		ncfg.Name = "node1"
		node, err := local.InitPrimary(ctx, ncfg)
		if err != nil {
			return nil, startErr(ctx, err)
		}
		dsn := node.DSN(local.Database)
		return &target{kind: "local", writerDSN: dsn, readerDSN: dsn, execMode: pgx.QueryExecModeCacheStatement, node: node}, nil
	}
	mode := sc.Target.Endpoint
	cluster, err := local.StartCluster(ctx, local.ClusterConfig{
		Node:        ncfg,
		Synchronous: synchronous(sc),
		Endpoints: func(ctx context.Context, writer string) (local.Endpoints, error) {
			return endpoint.New(ctx, endpoint.Config{
				Mode: mode, Writer: writer, Stale: staleWindow(sc),
				Dir:      filepath.Join(abs, "pgbouncer"),
				PoolSize: sc.Load.PoolSize, MaxClientConn: 2*sc.Load.Workers + 20,
				Log: logw,
			})
		},
	})
	if err != nil {
		return nil, startErr(ctx, err)
	}
	return &target{
		kind: "local", endpoint: mode,
		writerDSN: endpointDSN(cluster.WriterEndpoint()), readerDSN: endpointDSN(cluster.ReaderEndpoint()),
		execMode: endpoint.ExecMode(mode), cluster: cluster,
	}, nil
}

// startContainers starts the container target: a writer container on a private
// network, behind endpoints on 127.0.0.1, replicas added by the cutover.
func startContainers(ctx context.Context, sc *scenarios.Scenario, o *options, outDir string, logw io.Writer) (*target, error) {
	img, err := container.ResolveImage(ctx, o.image)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(filepath.Join(outDir, "pgbouncer"))
	if err != nil {
		return nil, err
	}
	mode := sc.Target.Endpoint
	fmt.Fprintf(logw, "starting PostgreSQL containers from %s\n", img)
	cl, err := container.Start(ctx, container.Config{
		Image: img, Fsync: sc.Target.Fsync == nil || *sc.Target.Fsync,
		MaxConnections: sc.Target.MaxConnections, SharedBuffers: sc.Target.SharedBuffers,
		Endpoint: endpoint.Config{Mode: mode, Dir: abs, Stale: staleWindow(sc),
			PoolSize: sc.Load.PoolSize, MaxClientConn: 2*sc.Load.Workers + 20},
		Log: logw,
	})
	if err != nil {
		return nil, startErr(ctx, err)
	}
	return &target{
		kind: "container", endpoint: mode,
		writerDSN: cl.DSN(cl.WriterEndpoint(), container.Database), readerDSN: cl.DSN(cl.ReaderEndpoint(), container.Database),
		execMode: endpoint.ExecMode(mode), container: cl,
	}, nil
}

// startAurora connects to an Aurora cluster through the RDS API (or the emulator):
// no server is started; the load goes to the cluster endpoints it reports. The DSN
// supplies user, password, database and TLS; the cluster endpoint always follows
// the writer, so integrity checks go through it.
func startAurora(ctx context.Context, sc *scenarios.Scenario, o *options, logw io.Writer) (*target, error) {
	calls := &callLog{}
	p, err := aurora.New(ctx, aurora.Config{
		ClusterID: o.auroraCluster, EndpointURL: o.awsURL, DSN: sc.Target.DSN,
		OnCall: calls.add, Log: logw,
	})
	if err != nil {
		if errors.Is(err, aurora.ErrInvalidConfig) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
		}
		return nil, err
	}
	w, r, err := p.Endpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("aurora cluster %s: %w", o.auroraCluster, err)
	}
	return &target{kind: "aurora", endpoint: "dns", writerDSN: p.DSN(w), readerDSN: p.DSN(r),
		execMode: pgx.QueryExecModeCacheStatement, aurora: p, calls: calls}, nil
}

// callLog keeps the RDS API calls with their times on the run's timeline.
type callLog struct {
	mu    sync.Mutex
	since func() time.Duration
	rows  []string
}

func (l *callLog) add(c aurora.Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := 0.0
	if l.since != nil {
		t = l.since().Seconds()
	}
	l.rows = append(l.rows, fmt.Sprintf("t=%.3fs %s", t, c))
}

func (l *callLog) setClock(since func() time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.since = since
}

func (l *callLog) note() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return "RDS API calls (time on the run's timeline, result, duration): " + strings.Join(l.rows, "; ")
}

func startErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: while starting PostgreSQL: %w", ErrInterrupted, err)
	}
	return err
}

// staleWindow is the dns endpoint's stale window; an explicit 0 means none.
func staleWindow(sc *scenarios.Scenario) time.Duration {
	if d := sc.Cutover.StaleDNSWindow.D(); d > 0 {
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

func (t *target) close(ctx context.Context, keep bool, logw io.Writer) {
	switch {
	case t.node != nil && keep:
		fmt.Fprintf(logw, "kept PostgreSQL running (pid %d, data %s): %s\n", t.node.PID(), t.node.DataDir(), t.writerDSN)
	case t.node != nil:
		if err := t.node.Close(ctx); err != nil {
			fmt.Fprintf(logw, "warning: stopping PostgreSQL: %v\n", err)
		}
	case t.cluster != nil && keep:
		// The endpoints live in this process (dns) or die with it (PgBouncer), so
		// only the nodes outlast the run: name them directly.
		for _, n := range t.cluster.Nodes() {
			fmt.Fprintf(logw, "kept PostgreSQL %s running (pid %d, data %s): %s\n", n.Name(), n.PID(), n.DataDir(), n.DSN(local.Database))
		}
		fmt.Fprintf(logw, "the writer is %s; the endpoints ended with rehearse\n", t.cluster.Writer().Name())
	case t.cluster != nil:
		if err := t.cluster.Close(ctx); err != nil {
			fmt.Fprintf(logw, "warning: stopping the cluster: %v\n", err)
		}
	case t.aurora != nil:
		_ = t.aurora.Close(ctx) // holds nothing; the cluster is never stopped by a run
	case t.container != nil && keep:
		fmt.Fprintf(logw, "kept the containers running (run %s): writer endpoint %s\n", t.container.RunID(), t.writerDSN)
	case t.container != nil:
		if err := t.container.Close(ctx); err != nil {
			fmt.Fprintf(logw, "warning: removing the containers: %v\n", err)
		}
	}
}
