package container_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/container"
	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
	"github.com/rehearse-dev/rehearse/migrate/endpoint"
	"github.com/rehearse-dev/rehearse/migrate/local"
)

// startCluster starts a one-writer cluster and registers its removal and the check
// that nothing with its run label remains.
func startCluster(t *testing.T, ctx context.Context, image string, cfg container.Config) *container.Cluster {
	t.Helper()
	log := &testutil.SyncBuffer{}
	cfg.Image = image
	cfg.Log = log
	c, err := container.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v\nlog:\n%s", err, log)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := c.Close(cctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		cs, ns, err := container.Leftovers(cctx, c.RunID())
		if err != nil {
			t.Errorf("Leftovers: %v", err)
		}
		if len(cs)+len(ns) > 0 {
			t.Errorf("run %s left containers %v and networks %v behind", c.RunID(), cs, ns)
		}
		if t.Failed() {
			t.Logf("provider log:\n%s", log)
		}
	})
	return c
}

// connConfig is the connection config for addr (an endpoint's name or a node's
// address), resolving names through the cluster's DNS server.
func connConfig(c *container.Cluster, addr string, mode pgx.QueryExecMode) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(c.DSN(addr, container.Database))
	if err != nil {
		return nil, err
	}
	cfg.LookupFunc = dnsserver.NewResolver(c.DNS().Addr()).LookupHost
	cfg.DefaultQueryExecMode = mode
	return cfg, nil
}

func connect(t *testing.T, ctx context.Context, c *container.Cluster, addr string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	cfg, err := connConfig(c, addr, mode)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// writerName connects through the writer endpoint and returns the node it reached.
func writerName(ctx context.Context, c *container.Cluster, mode pgx.QueryExecMode) (string, error) {
	cfg, err := connConfig(c, c.WriterEndpoint(), mode)
	if err != nil {
		return "", err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var name string
	err = conn.QueryRow(ctx, "SELECT current_setting('cluster_name')").Scan(&name)
	return name, err
}

// waitCaughtUp polls Lag until the replica has replayed everything.
func waitCaughtUp(t *testing.T, ctx context.Context, c *container.Cluster, replica string) migrate.Lag {
	t.Helper()
	var lag migrate.Lag
	var lerr error
	caughtUp := func() bool {
		lag, lerr = c.Lag(ctx, replica)
		return lerr == nil && lag.Bytes == 0 && lag.ReplayLSN != ""
	}
	done := false
	defer func() {
		if !done { // Eventually failed the test
			t.Logf("%s: last lag %+v, last error %v", replica, lag, lerr)
		}
	}()
	testutil.Eventually(t, time.Minute, replica+" to replay everything the writer has", caughtUp)
	done = true
	return lag
}

// writer inserts rows through the writer endpoint in a loop, reconnecting after
// errors, and records which inserts were acknowledged: explicit keys into load, or
// (serial) keys from a sequence into orders, which a blue/green switchover must
// carry over to green.
type writer struct {
	serial bool
	mu     sync.Mutex
	acked  []int64
	fails  int
}

func (w *writer) run(ctx context.Context, c *container.Cluster, mode pgx.QueryExecMode) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for i := int64(1); ctx.Err() == nil; i++ {
		if conn == nil {
			cfg, err := connConfig(c, c.WriterEndpoint(), mode)
			if err != nil {
				return
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			conn, err = pgx.ConnectConfig(cctx, cfg)
			cancel()
			if err != nil {
				conn = nil
				w.fail()
				continue
			}
		}
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		id, err := i, error(nil)
		if w.serial {
			err = conn.QueryRow(ictx, "INSERT INTO orders (pad) VALUES ('x') RETURNING id").Scan(&id)
		} else {
			_, err = conn.Exec(ictx, "INSERT INTO load (id) VALUES ($1)", i)
		}
		cancel()
		if err != nil {
			conn.Close(context.Background())
			conn = nil
			w.fail()
			continue
		}
		w.mu.Lock()
		w.acked = append(w.acked, id)
		w.mu.Unlock()
	}
}

func (w *writer) fail() {
	w.mu.Lock()
	w.fails++
	w.mu.Unlock()
}

func (w *writer) ackedIDs() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.acked...)
}

// lookup asks the cluster's DNS server for name's A record.
func lookup(t *testing.T, c *container.Cluster, name string) dnsserver.Answer {
	t.Helper()
	a, err := dnsserver.Lookup(t.Context(), c.DNS().Addr(), name, "udp")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// missing returns the acknowledged ids absent from the load table.
func missing(t *testing.T, ctx context.Context, conn *pgx.Conn, acked []int64) []int64 {
	t.Helper()
	rows, err := conn.Query(ctx, "SELECT id FROM load")
	if err != nil {
		t.Fatal(err)
	}
	have := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, id := range acked {
		if !have[id] {
			out = append(out, id)
		}
	}
	return out
}

// TestClusterLifecycle runs every provider operation against real containers, in
// the order a rehearsal uses them, in dns endpoint mode: writes through the
// endpoint, a replica, a planned switchover under a writing client with no
// acknowledged write lost (the records flip at the redirect), a rejoin, a crash
// failover, a rejoin after the crash, a network cut and restore, and removal.
func TestClusterLifecycle(t *testing.T) {
	image := requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := startCluster(t, ctx, image, container.Config{Endpoint: endpoint.Config{Mode: endpoint.ModeDNS, Propagation: 300 * time.Millisecond}})
	mode := endpoint.ExecMode(endpoint.ModeDNS)
	names := c.DNS().Names()
	if host, _, _ := strings.Cut(c.WriterEndpoint(), ":"); host != names.Writer() {
		t.Fatalf("writer endpoint %s, want the name %s", c.WriterEndpoint(), names.Writer())
	}

	checks, err := c.Preflight(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range checks {
		if !ch.OK {
			t.Errorf("preflight %q failed: %s", ch.Name, ch.Detail)
		}
	}

	conn := connect(t, ctx, c, c.WriterEndpoint(), mode)
	if _, err := conn.Exec(ctx, "CREATE TABLE marks (name text PRIMARY KEY); CREATE TABLE load (id int PRIMARY KEY); INSERT INTO marks VALUES ('before')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	plan, err := c.PlanReplica(ctx)
	if err != nil || plan["node"] != "node2" {
		t.Fatalf("PlanReplica = %v, %v; want node2", plan, err)
	}
	rep, err := c.CreateReplica(ctx)
	if err != nil {
		t.Fatalf("CreateReplica: %v", err)
	}
	if rep.ID != "node2" || rep.Role != "reader" {
		t.Fatalf("CreateReplica = %+v", rep)
	}
	waitCaughtUp(t, ctx, c, "node2")
	// The replica cloned and streams with the password file the entrypoint wrote;
	// without the password every node refuses the superuser.
	bin, err := local.FindBinaries(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range c.NodeIDs() {
		addr, err := c.NodeAddr(id)
		if err != nil {
			t.Fatal(err)
		}
		testutil.RequireRefused(t, addr, bin.Path("psql"))
	}
	topo, err := c.Describe(ctx)
	if err != nil || topo.Writer != "node1" || len(topo.Nodes) != 2 || topo.Nodes[0].Version == "" {
		t.Fatalf("Describe = %+v, %v", topo, err)
	}
	// Each container on a loopback address of its own, all on one port, reachable
	// there directly and by its instance name.
	a1, _ := c.NodeAddr("node1")
	a2, _ := c.NodeAddr("node2")
	h1, p1, _ := net.SplitHostPort(a1)
	h2, p2, _ := net.SplitHostPort(a2)
	if h1 == h2 || p1 != p2 || p1 != strconv.Itoa(c.Port()) || h1 == "127.0.0.1" || !netip.MustParseAddr(h1).IsLoopback() || !netip.MustParseAddr(h2).IsLoopback() {
		t.Fatalf("nodes published on %s and %s: want two loopback addresses of their own, one port", a1, a2)
	}
	for id, addr := range map[string]string{"node1": a1, "node2": a2} {
		for _, via := range []string{addr, net.JoinHostPort(names.Instance(id), p1)} {
			conn := connect(t, ctx, c, via, mode)
			var name string
			if err := conn.QueryRow(ctx, "SELECT current_setting('cluster_name')").Scan(&name); err != nil || name != id {
				t.Errorf("%s reached %q (%v), want %s", via, name, err, id)
			}
			conn.Close(ctx)
		}
	}
	if a := lookup(t, c, names.Writer()); a.CNAME != names.Instance("node1") || a.Addrs[0].String() != h1 {
		t.Errorf("writer endpoint answered %+v, want node1's name and %s", a, h1)
	}

	// Planned switchover with a client writing through the endpoint throughout.
	var w writer
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.run(lctx, c, mode) }()
	testutil.Eventually(t, time.Minute, "50 writes of the client acknowledged before the switchover",
		func() bool { return len(w.ackedIDs()) >= 50 })
	p, err := c.Switchover(ctx, "node2")
	if err != nil {
		t.Fatalf("Switchover: %v", err)
	}
	if p.From != "node1" || p.To != "node2" || p.FinalLSN == "" || p.PromotedLSN == "" {
		t.Errorf("Promotion = %+v", p)
	}
	if a := lookup(t, c, names.Writer()); a.CNAME != names.Instance("node1") {
		t.Errorf("before the redirect the writer endpoint answered %s, want node1 still", a.CNAME)
	}
	if _, err := c.Redirect(ctx, "node2"); err != nil {
		t.Fatalf("Redirect: %v", err)
	}
	if a := lookup(t, c, names.Writer()); a.CNAME != names.Instance("node2") || a.Addrs[0].String() != h2 {
		t.Errorf("after the redirect the writer endpoint answered %+v, want node2's name and %s", a, h2)
	}
	before := len(w.ackedIDs())
	testutil.Eventually(t, time.Minute, "50 more writes of the client acknowledged after the redirect",
		func() bool { return len(w.ackedIDs()) >= before+50 })
	stopLoad()
	wg.Wait()
	if got, err := writerName(ctx, c, mode); err != nil || got != "node2" {
		t.Fatalf("writer endpoint reaches %q (%v), want node2", got, err)
	}
	conn = connect(t, ctx, c, c.WriterEndpoint(), mode)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM marks WHERE name = 'before'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("row written before the switchover: count %d, %v", n, err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO marks VALUES ('after-switchover')"); err != nil {
		t.Fatalf("write after the switchover: %v", err)
	}
	acked := w.ackedIDs()
	if lost := missing(t, ctx, conn, acked); len(lost) > 0 {
		t.Fatalf("switchover lost %d of %d acknowledged writes: %v", len(lost), len(acked), lost)
	}
	t.Logf("switchover: %d acknowledged writes, none lost, %d failed attempts; stall %v, promote %v", len(acked), w.fails, p.Stall, p.Promote)
	conn.Close(ctx)

	// The old writer follows the new one.
	d, err := c.Rejoin(ctx, "node1")
	if err != nil {
		t.Fatalf("Rejoin node1: %v", err)
	}
	t.Logf("rejoin node1: %v", d["rewind"])
	waitCaughtUp(t, ctx, c, "node1")

	// Crash the writer (node2) and fail over to node1, which had caught up.
	if err := c.Crash(ctx, "node2"); err != nil {
		t.Fatalf("Crash: %v", err)
	}
	if _, err := c.Failover(ctx, "node1"); err != nil {
		t.Fatalf("Failover: %v", err)
	}
	if _, err := c.Redirect(ctx, "node1"); err != nil {
		t.Fatalf("Redirect after failover: %v", err)
	}
	conn = connect(t, ctx, c, c.WriterEndpoint(), mode)
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM marks").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows after the failover: %d, %v; want 2", n, err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO marks VALUES ('after-failover')"); err != nil {
		t.Fatalf("write after the failover: %v", err)
	}
	conn.Close(ctx)

	// The crashed container comes back held and follows node1 (pg_rewind runs crash
	// recovery first).
	if d, err = c.Rejoin(ctx, "node2"); err != nil {
		t.Fatalf("Rejoin node2 after crash: %v", err)
	}
	if d["restarted"] != true {
		t.Errorf("Rejoin of a killed node did not restart its container: %v", d)
	}
	waitCaughtUp(t, ctx, c, "node2")

	// Cut node2 off the network: the writer loses it; restore: it streams again.
	if err := c.Cut(ctx, "node2"); err != nil {
		t.Fatalf("Cut: %v", err)
	}
	testutil.Eventually(t, time.Minute, "the writer to stop seeing node2 stream after the cut",
		func() bool { _, err := c.Lag(ctx, "node2"); return err != nil })
	if err := c.Restore(ctx, "node2"); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	waitCaughtUp(t, ctx, c, "node2")

	if err := c.Remove(ctx, "node1"); !errors.Is(err, container.ErrWriter) {
		t.Errorf("Remove(writer) = %v, want ErrWriter", err)
	}
	if err := c.Remove(ctx, "node2"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if topo, _ := c.Describe(ctx); len(topo.Nodes) != 1 {
		t.Errorf("after Remove: %+v", topo.Nodes)
	}
}

// TestProxyModeSwitchover runs a planned switchover behind PgBouncer on the host,
// pointed at the containers' published ports: a client connection survives it.
func TestProxyModeSwitchover(t *testing.T) {
	image := requireDocker(t)
	testutil.RequireTool(t, "pgbouncer", "Debian package pgbouncer; proxy mode runs it on the host")
	if _, err := endpoint.FindPgBouncer(""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := startCluster(t, ctx, image, container.Config{Endpoint: endpoint.Config{Mode: endpoint.ModeProxy, Dir: t.TempDir()}})
	mode := endpoint.ExecMode(endpoint.ModeProxy)
	if host, _, _ := strings.Cut(c.WriterEndpoint(), ":"); host != c.DNS().Names().Proxy("writer") {
		t.Fatalf("writer endpoint %s, want the writer PgBouncer's name", c.WriterEndpoint())
	}
	conn := connect(t, ctx, c, c.WriterEndpoint(), mode)
	if _, err := conn.Exec(ctx, "CREATE TABLE marks (name text PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO marks VALUES ('before')"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateReplica(ctx); err != nil {
		t.Fatalf("CreateReplica: %v", err)
	}
	waitCaughtUp(t, ctx, c, "node2")
	if _, err := c.Switchover(ctx, "node2"); err != nil {
		t.Fatalf("Switchover: %v", err)
	}
	if _, err := c.Redirect(ctx, "node2"); err != nil {
		t.Fatalf("Redirect: %v", err)
	}
	// The same client connection now writes to node2.
	var name string
	if err := conn.QueryRow(ctx, "SELECT current_setting('cluster_name')").Scan(&name); err != nil || name != "node2" {
		t.Fatalf("client connection reaches %q (%v) after the switchover, want node2", name, err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO marks VALUES ('after')"); err != nil {
		t.Fatalf("write after the switchover on the same client connection: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM marks").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows: %d, %v; want 2", n, err)
	}
}

// TestStartFailureLeavesNothing starts with an image that does not exist: the error
// says how to build one and no container or network is left.
func TestStartFailureLeavesNothing(t *testing.T) {
	requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runID := fmt.Sprintf("fail-%d", time.Now().UnixNano())
	_, err := container.Start(ctx, container.Config{Image: "rehearse/absent:0", RunID: runID})
	if !errors.Is(err, container.ErrImageNotFound) {
		t.Fatalf("Start with an absent image = %v, want ErrImageNotFound", err)
	}
	cs, ns, err := container.Leftovers(ctx, runID)
	if err != nil || len(cs)+len(ns) > 0 {
		t.Fatalf("leftovers %v %v (%v)", cs, ns, err)
	}
}

// TestStartCancelledLeavesNothing cancels Start while the writer container starts:
// everything of the run is removed.
func TestStartCancelledLeavesNothing(t *testing.T) {
	image := requireDocker(t)
	ctx, cancel := context.WithCancel(context.Background())
	runID := fmt.Sprintf("cancel-%d", time.Now().UnixNano())
	log := &testutil.SyncBuffer{}
	done := make(chan error, 1)
	finished := make(chan struct{})
	t.Cleanup(func() { // whatever the outcome, nothing of the run stays behind
		cancel()
		select {
		case <-finished:
		case <-time.After(time.Minute):
			t.Errorf("Start still runs a minute after its cancel")
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer ccancel()
		if err := container.Sweep(cctx, runID); err != nil {
			t.Errorf("Sweep: %v", err)
		}
	})
	go func() {
		defer close(finished)
		_, err := container.Start(ctx, container.Config{Image: image, RunID: runID, Log: log})
		done <- err
	}()
	// Cancel once the network exists (the start is under way).
	wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer wcancel()
	testutil.Eventually(t, time.Minute, "the run's network to appear", func() bool {
		_, ns, _ := container.Leftovers(wctx, runID)
		return len(ns) > 0
	})
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Start succeeded after cancel")
		}
	case <-time.After(time.Minute):
		t.Fatal("Start did not return within a minute of its cancel")
	}
	cs, ns, err := container.Leftovers(wctx, runID)
	if err != nil || len(cs)+len(ns) > 0 {
		t.Fatalf("after a cancelled Start: containers %v, networks %v (%v)\nlog:\n%s", cs, ns, err, log)
	}
}
