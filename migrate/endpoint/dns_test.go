package endpoint

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
	"github.com/rehearse-dev/rehearse/migrate/local"
)

// startDNSServer starts a DNS server on a free port and closes it at cleanup.
func startDNSServer(t *testing.T, ttl time.Duration, log *testutil.SyncBuffer) *dnsserver.Server {
	t.Helper()
	srv, err := dnsserver.Start(t.Context(), dnsserver.Config{Names: dnsserver.NewNames("test"), TTL: ttl, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close the DNS server: %v", err)
		}
	})
	return srv
}

// lookup asks srv for name's A record and returns the instance its CNAME names.
func lookup(t *testing.T, srv *dnsserver.Server, name string) dnsserver.Answer {
	t.Helper()
	a, err := dnsserver.Lookup(t.Context(), srv.Addr(), name, "udp")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The dns mode's records, without PostgreSQL: three named nodes on one port.
func TestDNSRecords(t *testing.T) {
	log := &testutil.SyncBuffer{}
	srv := startDNSServer(t, 7*time.Second, log)
	n := srv.Names()
	const w1, w2, r1 = "127.66.1.2:5432", "127.66.1.3:5432", "127.66.1.4:5432"
	for node, a := range map[string]string{"node1": w1, "node2": w2, "node3": r1} {
		if err := srv.SetHost(n.Instance(node), netip.MustParseAddrPort(a).Addr()); err != nil {
			t.Fatal(err)
		}
	}
	entered := make(chan time.Duration, 1)
	flip := make(chan time.Time)
	d, err := NewDNS(Config{Writer: w1, Readers: []string{w2, r1}, DNS: srv, Propagation: 3 * time.Second, Log: log},
		WithAfter(func(p time.Duration) <-chan time.Time { entered <- p; return flip }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	if d.WriterAddr() != n.Writer()+":5432" || d.ReaderAddr() != n.Reader()+":5432" {
		t.Errorf("addresses %s and %s: want the endpoint names on the nodes' port", d.WriterAddr(), d.ReaderAddr())
	}
	if !strings.Contains(log.String(), "dig @"+strings.Replace(srv.Addr(), ":", " -p ", 1)+" "+n.Writer()) {
		t.Errorf("the log does not say how to dig the writer endpoint:\n%s", log)
	}

	// The writer endpoint: CNAME to node1, its A record, the TTL.
	if a := lookup(t, srv, n.Writer()); a.CNAME != n.Instance("node1") || len(a.Addrs) != 1 || a.Addrs[0].String() != "127.66.1.2" || a.TTL != 7*time.Second {
		t.Errorf("writer endpoint answered %+v", a)
	}
	// The reader endpoint: node2 and node3 in turn.
	var got []string
	for range 4 {
		got = append(got, strings.SplitN(lookup(t, srv, n.Reader()).CNAME, ".", 2)[0])
	}
	if strings.Join(got, " ") != "node2 node3 node2 node3" {
		t.Errorf("reader endpoint answered %v, want node2 and node3 in turn", got)
	}
	// Forwarding on: the reader endpoint names the writer.
	if err := d.SetForwarding(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if a := lookup(t, srv, n.Reader()); a.CNAME != n.Instance("node1") {
		t.Errorf("forwarding on: reader endpoint answered %s, want node1", a.CNAME)
	}
	if err := d.SetForwarding(t.Context(), false); err != nil {
		t.Fatal(err)
	}

	// A redirect to node2: the records keep node1 for the propagation delay...
	released := make(chan error, 1)
	go func() { released <- d.Release(context.Background(), w2, nil) }()
	select {
	case p := <-entered:
		if p != 3*time.Second {
			t.Errorf("propagation delay %v, want 3s", p)
		}
	case err := <-released:
		t.Fatalf("Release returned before its propagation delay: %v", err)
	}
	if a := lookup(t, srv, n.Writer()); a.CNAME != n.Instance("node1") || d.Writer() != w1 {
		t.Errorf("during the delay the writer endpoint answered %s (Writer %s), want node1 still", a.CNAME, d.Writer())
	}
	if err := d.SetReaders(t.Context(), []string{r1}); err != nil {
		t.Fatal(err)
	}
	if got := srv.Alias(n.Reader()); len(got) != 2 {
		t.Errorf("a reader change took effect during the delay: the reader endpoint names %v", got)
	}
	// ...then flip, and Release returns once the server answers node2.
	flip <- time.Now()
	if err := <-released; err != nil {
		t.Fatalf("Release: %v", err)
	}
	if a := lookup(t, srv, n.Writer()); a.CNAME != n.Instance("node2") || d.Writer() != w2 {
		t.Errorf("after the flip the writer endpoint answered %s (Writer %s), want node2", a.CNAME, d.Writer())
	}
	if a := lookup(t, srv, n.Reader()); a.CNAME != n.Instance("node3") {
		t.Errorf("after the flip the reader endpoint answered %s, want node3 (set during the delay)", a.CNAME)
	}
	// The same writer again: the reader endpoint changes at once, no delay.
	if err := d.Release(t.Context(), w2, nil); err != nil {
		t.Fatal(err)
	}
	if a := lookup(t, srv, n.Reader()); a.CNAME != n.Instance("node2") {
		t.Errorf("no readers: reader endpoint answered %s, want the writer node2", a.CNAME)
	}

	// ctx ends during the delay: the records flip at once, with ctx's error.
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-entered; cancel() }()
	if err := d.Release(ctx, w1, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Release with ctx cancelled in the delay = %v, want context.Canceled", err)
	}
	if a := lookup(t, srv, n.Writer()); a.CNAME != n.Instance("node1") {
		t.Errorf("after a cut-short delay the writer endpoint answered %s, want node1", a.CNAME)
	}

	// Nodes the records cannot name.
	if err := d.SetReaders(t.Context(), []string{"127.66.1.5:5432"}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("a node without an instance name: %v, want ErrInvalidConfig", err)
	}
	if err := d.SetReaders(t.Context(), []string{"127.66.1.3:5433"}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("a node on another port: %v, want ErrInvalidConfig", err)
	}

	if err := d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := dnsserver.Lookup(t.Context(), srv.Addr(), n.Writer(), "udp"); err == nil || !strings.Contains(err.Error(), "NXDOMAIN") {
		t.Errorf("after Close the writer endpoint: %v, want NXDOMAIN", err)
	}
	if err := d.Release(t.Context(), w2, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Release after Close = %v, want ErrClosed", err)
	}
}

// dnsCluster starts a local cluster (node1, and a replica node2) whose endpoints
// are made by mode on a DNS server of its own, and cleans it all up.
func dnsCluster(t *testing.T, mode string, propagation time.Duration) (*local.Cluster, *dnsserver.Server, *testutil.SyncBuffer) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
	bin, err := local.FindBinaries(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	log := &testutil.SyncBuffer{}
	srv := startDNSServer(t, 5*time.Second, log)
	dir := workDir(t)
	c, err := local.StartCluster(t.Context(), local.ClusterConfig{
		Node: local.Config{Dir: dir, Bin: bin, MaxConnections: 30, SharedBuffers: "16MB", Log: log, Credentials: testCreds},
		DNS:  srv,
		Endpoints: func(ctx context.Context, writer string) (local.Endpoints, error) {
			return New(ctx, Config{Mode: mode, Writer: writer, DNS: srv, Propagation: propagation, Dir: filepath.Join(dir, "pgbouncer"), Log: log, Credentials: testCreds})
		},
	})
	if err != nil {
		t.Fatalf("StartCluster: %v\n%s", err, log)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("close the cluster: %v", err)
		}
		if t.Failed() {
			t.Logf("log:\n%s", log)
		}
	})
	if _, err := c.CreateReplica(t.Context()); err != nil {
		t.Fatalf("CreateReplica: %v", err)
	}
	return c, srv, log
}

// resolving connects to addr (a name and port) the way a client without a cache
// does: resolving the name through srv for this connection.
func resolving(ctx context.Context, srv *dnsserver.Server, addr string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn(addr))
	if err != nil {
		return nil, err
	}
	cfg.LookupFunc = dnsserver.NewResolver(srv.Addr()).LookupHost
	cfg.ConnectTimeout = 2 * time.Second
	return pgx.ConnectConfig(ctx, cfg)
}

// serverAddr returns the address (host) of the server conn reached.
func serverAddr(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var host string
	if err := conn.QueryRow(t.Context(), "SELECT host(inet_server_addr())").Scan(&host); err != nil {
		t.Fatal(err)
	}
	return host
}

// write inserts a row through addr (an address already resolved: a client whose
// cache never expires).
func write(ctx context.Context, addr string) error {
	conn, err := tryConnect(ctx, addr, pgx.QueryExecModeCacheStatement)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "INSERT INTO marks VALUES (now())")
	return err
}

// TestDNSSwitchoverClients walks a planned switchover of a real local cluster
// behind the dns endpoints with two clients: one resolved the writer endpoint
// before the switchover and never asks again (a cache that never expires); the
// other resolves it for every connection. The first keeps reaching the old node:
// refused while it is down, SQLSTATE 25006 for a write once it runs as a standby.
// The second reaches the new writer once the records flip, after the propagation
// delay.
func TestDNSSwitchoverClients(t *testing.T) {
	const propagation = 700 * time.Millisecond
	c, srv, _ := dnsCluster(t, ModeDNS, propagation)
	ctx := t.Context()
	n := srv.Names()
	node1, node2 := c.Nodes()[0], c.Nodes()[1]
	writer := c.WriterEndpoint()
	if writer != n.Writer()+":"+strconv.Itoa(c.Port()) {
		t.Fatalf("writer endpoint %s, want %s on port %d", c.WriterEndpoint(), n.Writer(), c.Port())
	}

	// Before: both clients reach node1; the reader endpoint reaches node2.
	conn, err := resolving(ctx, srv, writer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE marks (at timestamptz)"); err != nil {
		t.Fatal(err)
	}
	if got := serverAddr(t, conn); got != node1.Host() {
		t.Fatalf("the writer endpoint reached %s, want node1 %s", got, node1.Host())
	}
	conn.Close(ctx)
	a := lookup(t, srv, n.Writer())
	pinned := a.Addrs[0].String() + ":" + strconv.Itoa(c.Port()) // cached forever
	if err := write(ctx, pinned); err != nil {
		t.Fatalf("the pinned client before the switchover: %v", err)
	}
	rconn, err := resolving(ctx, srv, c.ReaderEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	if got := serverAddr(t, rconn); got != node2.Host() {
		t.Errorf("the reader endpoint reached %s, want node2 %s", got, node2.Host())
	}
	rconn.Close(ctx)

	if _, err := c.Switchover(ctx, "node2"); err != nil {
		t.Fatalf("Switchover: %v", err)
	}
	// node1 is down: the pinned client's connection is refused by node1's address
	// itself (nothing listens there), and so is a fresh lookup's until the flip.
	if err := write(ctx, pinned); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("the pinned client with node1 down: %v, want connection refused", err)
	}
	redirected := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := c.Redirect(ctx, "node2")
		redirected <- err
	}()
	if a := lookup(t, srv, n.Writer()); a.CNAME != n.Instance("node1") {
		t.Errorf("the records flipped before the propagation delay: %s", a.CNAME)
	}
	if err := <-redirected; err != nil {
		t.Fatalf("Redirect: %v", err)
	}
	if el := time.Since(start); el < propagation {
		t.Errorf("Redirect returned after %v, before the propagation delay %v", el, propagation)
	}
	// A client that resolves again reaches node2 and writes.
	conn, err = resolving(ctx, srv, writer)
	if err != nil {
		t.Fatalf("a fresh client after the flip: %v", err)
	}
	defer conn.Close(context.Background())
	if got := serverAddr(t, conn); got != node2.Host() {
		t.Errorf("after the flip the writer endpoint reached %s, want node2 %s", got, node2.Host())
	}
	if _, err := conn.Exec(ctx, "INSERT INTO marks VALUES (now())"); err != nil {
		t.Errorf("a write through the writer endpoint after the flip: %v", err)
	}
	if err := write(ctx, pinned); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("the pinned client after the flip, node1 still down: %v, want connection refused", err)
	}

	// node1 follows node2 (keep_rollback_target): the pinned client reaches it again,
	// and its writes fail read-only.
	if _, err := c.Rejoin(ctx, "node1"); err != nil {
		t.Fatalf("Rejoin: %v", err)
	}
	err = write(ctx, pinned)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Errorf("the pinned client's write to node1 as a standby: %v, want SQLSTATE 25006", err)
	} else {
		t.Logf("the pinned client's write: %v", err)
	}
	// The reader endpoint now names node1.
	rconn, err = resolving(ctx, srv, c.ReaderEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer rconn.Close(context.Background())
	if got := serverAddr(t, rconn); got != node1.Host() {
		t.Errorf("after the rejoin the reader endpoint reached %s, want node1 %s", got, node1.Host())
	}
}

// TestProxyNames: in proxy mode clients reach each PgBouncer by its own name through
// the DNS server, and a switchover keeps their connection; the cluster endpoint
// records follow the writer at once.
func TestProxyNames(t *testing.T) {
	needPgBouncer(t)
	c, srv, _ := dnsCluster(t, ModeProxy, time.Hour)
	ctx := t.Context()
	n := srv.Names()
	if host, _, _ := strings.Cut(c.WriterEndpoint(), ":"); host != n.Proxy("writer") {
		t.Fatalf("writer endpoint %s, want the writer PgBouncer's name %s", c.WriterEndpoint(), n.Proxy("writer"))
	}
	cfg, err := pgx.ParseConfig(dsn(c.WriterEndpoint()))
	if err != nil {
		t.Fatal(err)
	}
	cfg.LookupFunc = dnsserver.NewResolver(srv.Addr()).LookupHost
	cfg.DefaultQueryExecMode = ExecMode(ModeProxy)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect to the writer PgBouncer by name: %v", err)
	}
	defer conn.Close(context.Background())
	if a := lookup(t, srv, n.Proxy("reader")); len(a.Addrs) != 1 || a.Addrs[0].String() != "127.0.0.1" {
		t.Errorf("reader PgBouncer's name answered %+v, want 127.0.0.1", a)
	}
	if a := lookup(t, srv, n.Writer()); a.CNAME != n.Instance("node1") {
		t.Errorf("cluster endpoint answered %s, want node1", a.CNAME)
	}
	if _, err := c.Switchover(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Redirect(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > time.Minute {
		t.Errorf("proxy Redirect took %v: the propagation delay is the dns mode's only", el)
	}
	if got := serverAddr(t, conn); got != c.Nodes()[1].Host() {
		t.Errorf("the client's connection reaches %s after the switchover, want node2", got)
	}
	if a := lookup(t, srv, n.Writer()); a.CNAME != n.Instance("node2") {
		t.Errorf("cluster endpoint answered %s after the redirect, want node2", a.CNAME)
	}
}
