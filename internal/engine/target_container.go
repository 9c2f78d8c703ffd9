package engine

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/faults"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/container"
	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
	"github.com/rehearse-dev/rehearse/migrate/endpoint"
	"github.com/rehearse-dev/rehearse/migrate/local"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// containerTarget is a writer container on a private network, published on a
// loopback address of its own, behind endpoints whose names the cluster's DNS server
// answers; the cutover adds replica containers.
type containerTarget struct {
	cl        *container.Cluster
	dns       *dnsserver.Server
	mode      scenarios.EndpointMode
	blueGreen bool
	px        *faults.Proxies // fault proxies in front of the published nodes (nil: none)
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
	// The containers and the PgBouncers admit this run's password only, kept in a
	// 0600 file in the run's work directory (see localConfig).
	creds, err := local.NewCredentials(filepath.Dir(abs), cfg.Log)
	if err != nil {
		return nil, err
	}
	srv, err := startDNS(ctx, sc, cfg.Log)
	if err != nil {
		_ = creds.Remove()
		return nil, err
	}
	mode := sc.Target.Endpoint
	px := newProxies(sc, cfg.Log)
	fmt.Fprintf(cfg.Log, "starting PostgreSQL containers from %s\n", img)
	cl, err := container.Start(ctx, container.Config{
		Image: img, Fsync: fsync(sc),
		MaxConnections: sc.Target.MaxConnections, SharedBuffers: sc.Target.SharedBuffers,
		ExtraConf: logicalConf(sc, nil),
		DNS:       srv, Credentials: creds,
		Endpoint: endpoint.Config{Mode: string(mode), Dir: abs, Propagation: staleWindow(sc),
			PoolSize: sc.Load.PoolSize, MaxClientConn: 2*sc.Load.Workers + 20, Via: via(px)},
		Log: cfg.Log,
	})
	if err != nil {
		_ = srv.Close()
		_ = creds.Remove()
		return nil, interrupted(ctx, "while starting PostgreSQL", err)
	}
	if topo, err := cl.Describe(ctx); err == nil && len(topo.Nodes) > 0 {
		if err := checkGreenVersion(sc, topo.Nodes[0].Version); err != nil {
			_ = cl.Close(ctx)
			_ = srv.Close()
			_ = creds.Remove()
			return nil, err
		}
	}
	t := &containerTarget{cl: cl, dns: srv, mode: mode, blueGreen: blueGreen(sc), px: px}
	if px != nil {
		w, err := cl.NodeAddr(cl.NodeIDs()[0])
		if err == nil {
			err = frontDNS(srv, px, w)
		}
		if err != nil {
			t.Close(ctx, false, cfg.Log)
			return nil, err
		}
	}
	logNames(cfg.Log, srv, cl.WriterEndpoint(), cl.ReaderEndpoint())
	return t, nil
}

func (t *containerTarget) Kind() scenarios.TargetKind           { return scenarios.TargetContainer }
func (t *containerTarget) EndpointMode() scenarios.EndpointMode { return t.mode }

// Endpoints are the endpoints' names, which the load resolves through DNSServer as
// its client's DNS cache says.
func (t *containerTarget) Endpoints() (string, string) {
	return t.cl.DSN(t.cl.WriterEndpoint(), container.Database), t.cl.DSN(t.cl.ReaderEndpoint(), container.Database)
}
func (t *containerTarget) ExecMode() pgx.QueryExecMode { return endpoint.ExecMode(string(t.mode)) }
func (t *containerTarget) DNSServer() string           { return t.dns.Addr() }
func (t *containerTarget) Provider() migrate.Provider  { return t.cl }
func (t *containerTarget) Notes() []string {
	notes := []string{clusterNote(t.mode, t.dns, t.cl.Port(), t.cl.WriterEndpoint())}
	if t.blueGreen {
		notes = append(notes, blueGreenNote)
	}
	return notes
}

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
	defer t.px.Close()
	defer closeCreds(t.cl.Credentials(), keep, log)
	if keep {
		// The endpoints and the DNS server end with this process: name the writer
		// container's own address.
		w := t.DirectWriterDSN(ctx)
		fmt.Fprintf(log, "kept the containers running (run %s): the writer at %s; the endpoints and their DNS server ended with rehearse\n", t.cl.RunID(), w)
		_ = t.dns.Close()
		return
	}
	if err := t.cl.Close(ctx); err != nil {
		fmt.Fprintf(log, "warning: removing the containers: %v\n", err)
	}
	if err := t.dns.Close(); err != nil {
		fmt.Fprintf(log, "warning: stopping the DNS server: %v\n", err)
	}
}
