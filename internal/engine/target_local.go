package engine

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/endpoint"
	"github.com/rehearse-dev/rehearse/migrate/local"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// localConfig is the embedded server's configuration for sc, under dir/pg.
func localConfig(ctx context.Context, sc *scenarios.Scenario, cfg TargetConfig) (local.Config, error) {
	bin, err := local.FindBinaries(ctx, "")
	if err != nil {
		return local.Config{}, err
	}
	abs, err := filepath.Abs(filepath.Join(cfg.Dir, "pg"))
	if err != nil {
		return local.Config{}, err
	}
	fmt.Fprintf(cfg.Log, "starting PostgreSQL %s (embedded, fsync=%v)\n", bin.Version, fsync(sc))
	return local.Config{
		Dir: abs, Fsync: fsync(sc),
		MaxConnections: sc.Target.MaxConnections, SharedBuffers: sc.Target.SharedBuffers,
		Log: cfg.Log, Bin: bin,
	}, nil
}

// localNode is one embedded PostgreSQL, for runs without a cutover.
type localNode struct{ node *local.Node }

func openLocalNode(ctx context.Context, sc *scenarios.Scenario, cfg TargetConfig) (*localNode, error) {
	ncfg, err := localConfig(ctx, sc, cfg)
	if err != nil {
		return nil, err
	}
	ncfg.Name = "node1"
	node, err := local.InitPrimary(ctx, ncfg)
	if err != nil {
		return nil, interrupted(ctx, "while starting PostgreSQL", err)
	}
	return &localNode{node: node}, nil
}

func (t *localNode) Kind() scenarios.TargetKind           { return scenarios.TargetLocal }
func (t *localNode) EndpointMode() scenarios.EndpointMode { return scenarios.EndpointDirect }
func (t *localNode) Endpoints() (string, string) {
	dsn := t.node.DSN(local.Database)
	return dsn, dsn
}
func (t *localNode) ExecMode() pgx.QueryExecMode            { return pgx.QueryExecModeCacheStatement }
func (t *localNode) Provider() migrate.Provider             { return nil }
func (t *localNode) DirectWriterDSN(context.Context) string { return t.node.DSN(local.Database) }
func (t *localNode) Notes() []string                        { return nil }

func (t *localNode) Close(ctx context.Context, keep bool, log io.Writer) {
	if keep {
		fmt.Fprintf(log, "kept PostgreSQL running (pid %d, data %s): %s\n", t.node.PID(), t.node.DataDir(), t.node.DSN(local.Database))
		return
	}
	if err := t.node.Close(ctx); err != nil {
		fmt.Fprintf(log, "warning: stopping PostgreSQL: %v\n", err)
	}
}

// localCluster is an embedded primary behind writer and reader endpoints, which the
// cutover adds replicas to.
type localCluster struct {
	cluster *local.Cluster
	mode    scenarios.EndpointMode
}

func openLocalCluster(ctx context.Context, sc *scenarios.Scenario, cfg TargetConfig) (*localCluster, error) {
	ncfg, err := localConfig(ctx, sc, cfg)
	if err != nil {
		return nil, err
	}
	mode := sc.Target.Endpoint
	cluster, err := local.StartCluster(ctx, local.ClusterConfig{
		Node:        ncfg,
		Synchronous: synchronous(sc),
		Endpoints: func(ctx context.Context, writer string) (local.Endpoints, error) {
			return endpoint.New(ctx, endpoint.Config{
				Mode: string(mode), Writer: writer, Stale: staleWindow(sc),
				Dir:      filepath.Join(ncfg.Dir, "pgbouncer"),
				PoolSize: sc.Load.PoolSize, MaxClientConn: 2*sc.Load.Workers + 20,
				Log: cfg.Log,
			})
		},
	})
	if err != nil {
		return nil, interrupted(ctx, "while starting PostgreSQL", err)
	}
	return &localCluster{cluster: cluster, mode: mode}, nil
}

func (t *localCluster) Kind() scenarios.TargetKind           { return scenarios.TargetLocal }
func (t *localCluster) EndpointMode() scenarios.EndpointMode { return t.mode }
func (t *localCluster) Endpoints() (string, string) {
	return endpointDSN(t.cluster.WriterEndpoint()), endpointDSN(t.cluster.ReaderEndpoint())
}
func (t *localCluster) ExecMode() pgx.QueryExecMode { return endpoint.ExecMode(string(t.mode)) }
func (t *localCluster) Provider() migrate.Provider  { return t.cluster }
func (t *localCluster) DirectWriterDSN(context.Context) string {
	return t.cluster.Writer().DSN(local.Database)
}
func (t *localCluster) Notes() []string { return []string{endpointNote(t.mode)} }

func (t *localCluster) Close(ctx context.Context, keep bool, log io.Writer) {
	if keep {
		// The endpoints live in this process (dns) or die with it (PgBouncer), so
		// only the nodes outlast the run: name them directly.
		for _, n := range t.cluster.Nodes() {
			fmt.Fprintf(log, "kept PostgreSQL %s running (pid %d, data %s): %s\n", n.Name(), n.PID(), n.DataDir(), n.DSN(local.Database))
		}
		fmt.Fprintf(log, "the writer is %s; the endpoints ended with rehearse\n", t.cluster.Writer().Name())
		return
	}
	if err := t.cluster.Close(ctx); err != nil {
		fmt.Fprintf(log, "warning: stopping the cluster: %v\n", err)
	}
}

// endpointDSN is the DSN of an endpoint of an embedded cluster.
func endpointDSN(addr string) string {
	return "postgres://" + local.Superuser + "@" + addr + "/" + local.Database + "?sslmode=disable"
}
