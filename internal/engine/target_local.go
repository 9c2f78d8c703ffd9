package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/faults"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
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
	if err := checkGreenVersion(sc, bin.Version); err != nil {
		return local.Config{}, err
	}
	fmt.Fprintf(cfg.Log, "starting PostgreSQL %s (embedded, fsync=%v)\n", bin.Version, fsync(sc))
	// The nodes, their replication and the PgBouncers admit this run's password
	// only; it lives in a 0600 file in the run's work directory, which a kept run
	// names (the DSNs carry the file's path, never the password).
	creds, err := local.NewCredentials(abs, cfg.Log)
	if err != nil {
		return local.Config{}, err
	}
	return local.Config{
		Dir: abs, Fsync: fsync(sc),
		MaxConnections: sc.Target.MaxConnections, SharedBuffers: sc.Target.SharedBuffers,
		Log: cfg.Log, Bin: bin, ExtraConf: logicalConf(sc, nil), Credentials: creds,
	}, nil
}

// closeCreds removes a run's password file once its servers are gone; a kept
// run's servers still admit it, so it stays and is named.
func closeCreds(c *local.Credentials, keep bool, log io.Writer) {
	if keep {
		fmt.Fprintf(log, "the kept servers' password is in %s (PGPASSFILE=%s psql ...)\n", c.File(), c.File())
		return
	}
	if err := c.Remove(); err != nil {
		fmt.Fprintf(log, "warning: %v\n", err)
	}
}

// localNode is one embedded PostgreSQL, for runs without a cutover; with network
// faults the load reaches it through its fault proxy at front.
type localNode struct {
	node  *local.Node
	px    *faults.Proxies
	front string
}

func openLocalNode(ctx context.Context, sc *scenarios.Scenario, cfg TargetConfig) (*localNode, error) {
	ncfg, err := localConfig(ctx, sc, cfg)
	if err != nil {
		return nil, err
	}
	ncfg.Name = "node1"
	node, err := local.InitPrimary(ctx, ncfg)
	if err != nil {
		_ = ncfg.Credentials.Remove()
		return nil, interrupted(ctx, "while starting PostgreSQL", err)
	}
	t := &localNode{node: node, px: newProxies(sc, cfg.Log)}
	if t.px != nil {
		if t.front, err = t.px.Front(node.Addr()); err != nil {
			t.Close(ctx, false, cfg.Log)
			return nil, err
		}
	}
	return t, nil
}

func (t *localNode) Kind() scenarios.TargetKind           { return scenarios.TargetLocal }
func (t *localNode) EndpointMode() scenarios.EndpointMode { return scenarios.EndpointDirect }
func (t *localNode) Endpoints() (string, string) {
	dsn := t.node.DSN(local.Database)
	if t.front != "" {
		dsn = endpointDSN(t.node.Credentials(), t.front)
	}
	return dsn, dsn
}
func (t *localNode) ExecMode() pgx.QueryExecMode            { return pgx.QueryExecModeCacheStatement }
func (t *localNode) DNSServer() string                      { return "" }
func (t *localNode) Provider() migrate.Provider             { return nil }
func (t *localNode) DirectWriterDSN(context.Context) string { return t.node.DSN(local.Database) }
func (t *localNode) Notes() []string                        { return nil }

func (t *localNode) Close(ctx context.Context, keep bool, log io.Writer) {
	defer t.px.Close()
	defer closeCreds(t.node.Credentials(), keep, log)
	if keep {
		fmt.Fprintf(log, "kept PostgreSQL running (pid %d, data %s): %s\n", t.node.PID(), t.node.DataDir(), t.node.DSN(local.Database))
		return
	}
	if err := t.node.Close(ctx); err != nil {
		fmt.Fprintf(log, "warning: stopping PostgreSQL: %v\n", err)
	}
}

// localCluster is an embedded primary behind writer and reader endpoints, which the
// cutover adds replicas to. Each node listens on a loopback address of its own, on
// one port; the endpoints are names on the cluster's DNS server.
type localCluster struct {
	cluster   *local.Cluster
	dns       *dnsserver.Server
	mode      scenarios.EndpointMode
	blueGreen bool
	px        *faults.Proxies // fault proxies in front of the nodes (nil: none)
}

func openLocalCluster(ctx context.Context, sc *scenarios.Scenario, cfg TargetConfig) (*localCluster, error) {
	ncfg, err := localConfig(ctx, sc, cfg)
	if err != nil {
		return nil, err
	}
	srv, err := startDNS(ctx, sc, cfg.Log)
	if err != nil {
		_ = ncfg.Credentials.Remove()
		return nil, err
	}
	mode := sc.Target.Endpoint
	px := newProxies(sc, cfg.Log)
	cluster, err := local.StartCluster(ctx, local.ClusterConfig{
		Node:        ncfg,
		Synchronous: synchronous(sc),
		DNS:         srv,
		Endpoints: func(ctx context.Context, writer string) (local.Endpoints, error) {
			return endpoint.New(ctx, endpoint.Config{
				Mode: string(mode), Writer: writer, DNS: srv, Propagation: staleWindow(sc),
				Dir: filepath.Join(ncfg.Dir, "pgbouncer"), Credentials: ncfg.Credentials,
				PoolSize: sc.Load.PoolSize, MaxClientConn: 2*sc.Load.Workers + 20,
				Log: cfg.Log, Via: via(px),
			})
		},
	})
	if err != nil {
		_ = srv.Close()
		_ = ncfg.Credentials.Remove()
		return nil, interrupted(ctx, "while starting PostgreSQL", err)
	}
	t := &localCluster{cluster: cluster, dns: srv, mode: mode, blueGreen: blueGreen(sc), px: px}
	if err := frontDNS(srv, px, cluster.Writer().Addr()); err != nil {
		t.Close(ctx, false, cfg.Log)
		return nil, err
	}
	logNames(cfg.Log, srv, cluster.WriterEndpoint(), cluster.ReaderEndpoint())
	return t, nil
}

func (t *localCluster) Kind() scenarios.TargetKind           { return scenarios.TargetLocal }
func (t *localCluster) EndpointMode() scenarios.EndpointMode { return t.mode }

// Endpoints are the endpoints' names (the cluster endpoint and the reader endpoint,
// or the PgBouncers'), which the load resolves through DNSServer as its client's
// DNS cache says.
func (t *localCluster) Endpoints() (string, string) {
	c := t.cluster.Credentials()
	return endpointDSN(c, t.cluster.WriterEndpoint()), endpointDSN(c, t.cluster.ReaderEndpoint())
}
func (t *localCluster) ExecMode() pgx.QueryExecMode { return endpoint.ExecMode(string(t.mode)) }
func (t *localCluster) DNSServer() string           { return t.dns.Addr() }
func (t *localCluster) Provider() migrate.Provider  { return t.cluster }
func (t *localCluster) DirectWriterDSN(context.Context) string {
	return t.cluster.Writer().DSN(local.Database)
}
func (t *localCluster) Notes() []string {
	notes := []string{clusterNote(t.mode, t.dns, t.cluster.Port(), t.cluster.WriterEndpoint())}
	if t.blueGreen {
		notes = append(notes, blueGreenNote)
	}
	return notes
}

func (t *localCluster) Close(ctx context.Context, keep bool, log io.Writer) {
	defer t.px.Close()
	defer closeCreds(t.cluster.Credentials(), keep, log)
	if keep {
		// The DNS server and the endpoints live in this process (or die with it, as
		// PgBouncer does), so only the nodes outlast the run: name them directly.
		for _, n := range t.cluster.Nodes() {
			fmt.Fprintf(log, "kept PostgreSQL %s running (pid %d, data %s): %s\n", n.Name(), n.PID(), n.DataDir(), n.DSN(local.Database))
		}
		fmt.Fprintf(log, "the writer is %s; the endpoints and their DNS server ended with rehearse\n", t.cluster.Writer().Name())
		_ = t.dns.Close()
		return
	}
	if err := t.cluster.Close(ctx); err != nil {
		fmt.Fprintf(log, "warning: stopping the cluster: %v\n", err)
	}
	if err := t.dns.Close(); err != nil {
		fmt.Fprintf(log, "warning: stopping the DNS server: %v\n", err)
	}
}

// endpointDSN is the DSN of an endpoint of an embedded cluster: the password comes
// from the credentials' file.
func endpointDSN(c *local.Credentials, addr string) string { return c.DSN(addr, local.Database) }

// startDNS starts the DNS server of a cluster target: on target.dns_addr, with
// target.dns_ttl, its names labelled after the scenario. A taken address is an error
// naming it (a runtime failure, not the scenario's: the address is valid).
func startDNS(ctx context.Context, sc *scenarios.Scenario, log io.Writer) (*dnsserver.Server, error) {
	srv, err := dnsserver.Start(ctx, dnsserver.Config{
		Addr: sc.Target.DNSAddr, TTL: sc.Target.DNSTTL.D(), Names: dnsserver.NewNames(sc.Name), Log: log,
	})
	if err != nil {
		return nil, fmt.Errorf("target.dns_addr: %w", err)
	}
	return srv, nil
}

// logNames says where the DNS server is and what it answers, so a user can dig them
// while the run lasts.
func logNames(log io.Writer, srv *dnsserver.Server, writer, reader string) {
	host, port, _ := net.SplitHostPort(srv.Addr())
	w, _, _ := net.SplitHostPort(writer)
	r, _, _ := net.SplitHostPort(reader)
	fmt.Fprintf(log, "DNS server on %s: writer endpoint %s, reader endpoint %s (dig @%s -p %s %s)\n", srv.Addr(), w, r, host, port, w)
}

// clusterNote says what the endpoints of a local or container cluster are.
func clusterNote(mode scenarios.EndpointMode, srv *dnsserver.Server, port int, writer string) string {
	nodes := fmt.Sprintf(" Each node listens on a loopback address of its own, on port %d; a DNS server on %s answers the cluster's names (zone %s, TTL %v).", port, srv.Addr(), srv.Names().Zone, srv.TTL())
	if mode == scenarios.EndpointProxy {
		return endpointNote(mode) + nodes + " The PgBouncers have names of their own there."
	}
	host, _, _ := net.SplitHostPort(writer)
	return "Endpoints: Aurora-like DNS." + nodes + " The cluster endpoint " + host + " answers a CNAME to the writer instance's name and its address, the reader endpoint one reader's per query, in turn; at the redirect the records flip to the new writer after cutover.dns_propagation, and a client reaches the old node (refused while it is down, read-only errors once it is a standby) until its cached answer expires. The load resolves the names through that server, caching each answer as its client's dns_cache_ttl says. Write forwarding is an emulation at the endpoint: while on, the reader endpoint answers the writer."
}
