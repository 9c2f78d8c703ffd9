package engine

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/container"
	"github.com/rehearse-dev/rehearse/migrate/endpoint"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// containerTarget is a writer container on a private network behind endpoints on
// 127.0.0.1; the cutover adds replica containers.
type containerTarget struct {
	cl   *container.Cluster
	mode scenarios.EndpointMode
}

func openContainers(ctx context.Context, sc *scenarios.Scenario, cfg TargetConfig) (*containerTarget, error) {
	img, err := container.ResolveImage(ctx, cfg.Image)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(filepath.Join(cfg.Dir, "pgbouncer"))
	if err != nil {
		return nil, err
	}
	mode := sc.Target.Endpoint
	fmt.Fprintf(cfg.Log, "starting PostgreSQL containers from %s\n", img)
	cl, err := container.Start(ctx, container.Config{
		Image: img, Fsync: fsync(sc),
		MaxConnections: sc.Target.MaxConnections, SharedBuffers: sc.Target.SharedBuffers,
		Endpoint: endpoint.Config{Mode: string(mode), Dir: abs, Stale: staleWindow(sc),
			PoolSize: sc.Load.PoolSize, MaxClientConn: 2*sc.Load.Workers + 20},
		Log: cfg.Log,
	})
	if err != nil {
		return nil, interrupted(ctx, "while starting PostgreSQL", err)
	}
	return &containerTarget{cl: cl, mode: mode}, nil
}

func (t *containerTarget) Kind() scenarios.TargetKind           { return scenarios.TargetContainer }
func (t *containerTarget) EndpointMode() scenarios.EndpointMode { return t.mode }
func (t *containerTarget) Endpoints() (string, string) {
	return t.cl.DSN(t.cl.WriterEndpoint(), container.Database), t.cl.DSN(t.cl.ReaderEndpoint(), container.Database)
}
func (t *containerTarget) ExecMode() pgx.QueryExecMode { return endpoint.ExecMode(string(t.mode)) }
func (t *containerTarget) Provider() migrate.Provider  { return t.cl }
func (t *containerTarget) Notes() []string             { return []string{endpointNote(t.mode)} }

func (t *containerTarget) DirectWriterDSN(ctx context.Context) string {
	if topo, err := t.cl.Describe(ctx); err == nil {
		if addr, err := t.cl.NodeAddr(topo.Writer); err == nil {
			return t.cl.DSN(addr, container.Database)
		}
	}
	w, _ := t.Endpoints()
	return w
}

func (t *containerTarget) Close(ctx context.Context, keep bool, log io.Writer) {
	if keep {
		w, _ := t.Endpoints()
		fmt.Fprintf(log, "kept the containers running (run %s): writer endpoint %s\n", t.cl.RunID(), w)
		return
	}
	if err := t.cl.Close(ctx); err != nil {
		fmt.Fprintf(log, "warning: removing the containers: %v\n", err)
	}
}
