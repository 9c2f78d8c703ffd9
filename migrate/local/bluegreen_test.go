package local

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
	"github.com/rehearse-dev/rehearse/migrate/internal/bluegreen"
)

// startBlue starts a one-node cluster whose WAL carries logical decoding, with a DNS
// server, and a table with serial keys (and one the load does not touch).
func startBlue(t *testing.T) (*Cluster, *dnsserver.Server) {
	t.Helper()
	cfg := testConfig(t)
	cfg.ExtraConf = map[string]string{"wal_level": "logical"}
	srv, err := dnsserver.Start(t.Context(), dnsserver.Config{Names: dnsserver.NewNames("bg")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	c, err := StartCluster(t.Context(), ClusterConfig{Node: cfg, DNS: srv})
	if err != nil {
		t.Fatalf("StartCluster: %v\n%s", err, cfg.Log)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	conn := connect(t, c.Writer(), Database)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `CREATE TABLE orders (id bigserial PRIMARY KEY, pad text);
CREATE TABLE settings (k text PRIMARY KEY, v text); INSERT INTO settings VALUES ('a', 'b')`); err != nil {
		t.Fatal(err)
	}
	return c, srv
}

// serialWriter inserts orders with keys from their sequence into whichever node is
// the cluster's writer, remembering the acknowledged keys: after a blue/green
// switchover the inserts must not collide with blue's keys.
type serialWriter struct {
	c       *Cluster
	mu      sync.Mutex
	acked   []int64
	fails   int
	lastErr error
	stop    chan struct{}
	done    chan struct{}
}

func startSerialWriter(t *testing.T, c *Cluster) *serialWriter {
	w := &serialWriter{c: c, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	t.Cleanup(w.halt)
	return w
}

func (w *serialWriter) run() {
	defer close(w.done)
	var conn *pgx.Conn
	for {
		select {
		case <-w.stop:
			if conn != nil {
				conn.Close(context.Background())
			}
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var err error
		if conn == nil || conn.IsClosed() {
			conn, err = pgx.Connect(ctx, w.c.Writer().DSN(Database))
		}
		var id int64
		if err == nil {
			err = conn.QueryRow(ctx, "INSERT INTO orders (pad) VALUES (repeat('x', 100)) RETURNING id").Scan(&id)
		}
		cancel()
		w.mu.Lock()
		if err == nil {
			w.acked = append(w.acked, id)
		} else {
			w.fails++
			w.lastErr = err
			if conn != nil {
				conn.Close(context.Background())
			}
			conn = nil
		}
		w.mu.Unlock()
	}
}

func (w *serialWriter) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *serialWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func (w *serialWriter) waitAcked(t *testing.T, n int) {
	t.Helper()
	target := w.count() + n
	testutil.Eventually(t, ackTimeout, fmt.Sprintf("%d acknowledged inserts", target), func() bool { return w.count() >= target })
}

// missing stops the writer and returns how many acknowledged keys the cluster's
// writer lacks.
func (w *serialWriter) missing(t *testing.T) int {
	t.Helper()
	w.halt()
	conn := connect(t, w.c.Writer(), Database)
	defer conn.Close(context.Background())
	var have int64
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM orders WHERE id = ANY($1)", w.acked).Scan(&have); err != nil {
		t.Fatal(err)
	}
	return len(w.acked) - int(have)
}

func waitSwitchable(t *testing.T, c *Cluster) migrate.GreenSync {
	t.Helper()
	var gs migrate.GreenSync
	testutil.Eventually(t, 60*time.Second, "green to have copied every table and caught up", func() bool {
		var err error
		gs, err = c.GreenSync(t.Context())
		return err == nil && gs.Switchable && gs.Lag.Bytes < 1<<20
	})
	return gs
}

func resolves(t *testing.T, srv *dnsserver.Server, name string) netip.Addr {
	t.Helper()
	a, err := dnsserver.Lookup(t.Context(), srv.Addr(), name, "udp")
	if err != nil || len(a.Addrs) == 0 {
		t.Fatalf("%s does not resolve: %v %+v", name, err, a)
	}
	return a.Addrs[0]
}

func TestBlueGreenOverLogicalReplication(t *testing.T) {
	c, srv := startBlue(t)
	blue := c.Writer()
	// Blue has a reader: green gets one too, a streaming replica of green's writer.
	blueReader, err := c.CreateReplica(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	checks, err := c.PreflightBlueGreen(t.Context(), migrate.GreenSpec{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range checks {
		if !ck.OK && !ck.Warning {
			t.Errorf("preflight %q blocks: %s", ck.Name, ck.Detail)
		}
	}
	w := startSerialWriter(t, c)
	w.waitAcked(t, 200)
	dep, err := c.CreateGreen(t.Context(), migrate.GreenSpec{})
	if err != nil {
		t.Fatalf("CreateGreen: %v\n%s", err, c.cfg.Node.Log)
	}
	if !strings.HasPrefix(dep.GreenWriter, "node1-green-") || dep.ID == "" {
		t.Errorf("deployment %+v", dep)
	}
	if nodes, _ := dep.Detail["green_nodes"].([]string); len(nodes) != 2 || !strings.HasPrefix(nodes[1], blueReader.ID+"-green-") {
		t.Errorf("green nodes %v, want a writer and a reader", dep.Detail["green_nodes"])
	}
	green := resolves(t, srv, srv.Names().Instance(dep.GreenWriter))
	gs := waitSwitchable(t, c)
	if gs.Tables != 2 || gs.Ready != 2 {
		t.Errorf("green sync %+v, want 2 tables copied", gs)
	}
	// Green is read-only until the switchover.
	gc := connect(t, c.bg.Other.Nodes[dep.GreenWriter], Database)
	if _, err := gc.Exec(t.Context(), "INSERT INTO settings VALUES ('c', 'd')"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("a write on green before the switchover: %v", err)
	}
	gc.Close(context.Background())
	w.waitAcked(t, 200)

	sw, err := c.SwitchoverGreen(t.Context(), 30*time.Second)
	if err != nil {
		t.Fatalf("SwitchoverGreen: %v\n%s", err, c.cfg.Node.Log)
	}
	if !sw.Switched || sw.RolledBack || sw.To != dep.GreenWriter || c.Writer().Name() != dep.GreenWriter {
		t.Fatalf("switchover %+v; writer %s", sw, c.Writer().Name())
	}
	if len(sw.Sequences) != 1 || sw.Sequences[0].Name != "public.orders_id_seq" || sw.Sequences[0].Green < sw.Sequences[0].Blue || sw.Sequences[0].Blue == 0 {
		t.Errorf("sequences %+v", sw.Sequences)
	}
	if sw.Duration > sw.Timeout || sw.Stall <= 0 || sw.FinalLSN == "" {
		t.Errorf("switchover took %v (timeout %v), writes blocked %v, final LSN %q", sw.Duration, sw.Timeout, sw.Stall, sw.FinalLSN)
	}
	// Inserts on green continue past blue's keys: the sequence was synced.
	w.waitAcked(t, 200)
	if n := w.missing(t); n != 0 {
		t.Fatalf("%d acknowledged inserts missing on green", n)
	}
	w.mu.Lock()
	t.Logf("%d inserts acknowledged, %d failed (last: %v); switchover %v, writes blocked %v", len(w.acked), w.fails, w.lastErr, sw.Duration, sw.Stall)
	w.mu.Unlock()

	// The names moved: blue's instance name leads to green, blue's is -old1.
	if got := resolves(t, srv, srv.Names().Instance("node1")); got != green {
		t.Errorf("node1's name resolves to %v, want green's %v", got, green)
	}
	if got := resolves(t, srv, srv.Names().Instance("node1"+migrate.OldSuffix)); got.String() != blue.Host() {
		t.Errorf("node1-old1 resolves to %v, want the old blue's %s", got, blue.Host())
	}
	if got := resolves(t, srv, bluegreen.ClusterNames(srv, migrate.OldSuffix).Writer()); got.String() != blue.Host() {
		t.Errorf("the -old1 cluster endpoint resolves to %v, want the old blue's %s", got, blue.Host())
	}
	if got, want := resolves(t, srv, srv.Names().Instance(blueReader.ID)), c.readerNodes()[0].Host(); got.String() != want {
		t.Errorf("%s's name resolves to %v, want green's reader %s", blueReader.ID, got, want)
	}
	if topo, _ := c.Describe(t.Context()); len(topo.Nodes) != 2 || topo.Writer != dep.GreenWriter {
		t.Errorf("the cluster after the switchover: %+v", topo)
	}
	d, err := c.KeepOldBlue(t.Context())
	if err != nil || d["writes_refused"] != true {
		t.Fatalf("KeepOldBlue: %v %v", d, err)
	}
	if _, err := c.DeleteDeployment(t.Context()); err != nil {
		t.Fatal(err)
	}
	if blue.Running() || c.bg != nil {
		t.Error("the old blue survived DeleteDeployment")
	}
	if _, err := dnsserver.Lookup(t.Context(), srv.Addr(), srv.Names().Instance("node1"+migrate.OldSuffix), "udp"); err == nil {
		t.Error("the old blue's name survived DeleteDeployment")
	}
}

func TestBlueGreenSwitchoverTimeoutRollsBack(t *testing.T) {
	c, _ := startBlue(t)
	blue := c.Writer()
	w := startSerialWriter(t, c)
	w.waitAcked(t, 100)
	dep, err := c.CreateGreen(t.Context(), migrate.GreenSpec{})
	if err != nil {
		t.Fatalf("CreateGreen: %v\n%s", err, c.cfg.Node.Log)
	}
	waitSwitchable(t, c)
	// Hold green's apply worker on a lock: it cannot apply blue's last inserts, so
	// green never confirms blue's final LSN.
	gc, err := c.bg.Other.Nodes[dep.GreenWriter].connectRW(t.Context(), Database)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close(context.Background())
	tx, err := gc.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	w.waitAcked(t, 50)
	start := time.Now()
	sw, err := c.SwitchoverGreen(t.Context(), 2*time.Second)
	_ = tx.Rollback(context.Background())
	if !errors.Is(err, migrate.ErrSwitchoverRolledBack) || !errors.Is(err, migrate.ErrSwitchoverTimeout) {
		t.Fatalf("err = %v, want a rolled back timeout", err)
	}
	if !sw.RolledBack || sw.Switched || time.Since(start) > 20*time.Second {
		t.Errorf("switchover %+v after %v", sw, time.Since(start))
	}
	if c.Writer() != blue {
		t.Fatalf("the writer is %s, want blue %s", c.Writer().Name(), blue.Name())
	}
	// Blue takes writes again, and nothing acknowledged was lost.
	w.waitAcked(t, 100)
	if n := w.missing(t); n != 0 {
		t.Fatalf("%d acknowledged inserts lost", n)
	}
	if _, err := c.DeleteDeployment(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestBlueGreenDDLOnBlueBlocksTheSwitchover(t *testing.T) {
	c, _ := startBlue(t)
	if _, err := c.CreateGreen(t.Context(), migrate.GreenSpec{}); err != nil {
		t.Fatalf("CreateGreen: %v\n%s", err, c.cfg.Node.Log)
	}
	waitSwitchable(t, c)
	conn := connect(t, c.Writer(), Database)
	if _, err := conn.Exec(t.Context(), "CREATE INDEX orders_pad_idx ON orders (pad)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	sw, err := c.SwitchoverGreen(t.Context(), 30*time.Second)
	if !errors.Is(err, migrate.ErrDDLOnBlue) || sw.Switched {
		t.Fatalf("err = %v, switched %v; want ErrDDLOnBlue", err, sw.Switched)
	}
	if len(sw.BlockedDDL) != 1 || !strings.Contains(sw.BlockedDDL[0], "CREATE INDEX public.orders_pad_idx") {
		t.Errorf("blocked DDL %q", sw.BlockedDDL)
	}
	d, err := c.DeleteDeployment(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if removed, _ := d["removed_green"].([]string); len(removed) != 1 {
		t.Errorf("DeleteDeployment %v", d)
	}
	// Blue is as it was: writable, without the deployment's publication, trigger or slot.
	var pubs, triggers, slots int
	if err := c.Writer().dbQuery(Database)(t.Context(), `SELECT (SELECT count(*) FROM pg_publication), (SELECT count(*) FROM pg_event_trigger),
  (SELECT count(*) FROM pg_replication_slots)`, nil, &pubs, &triggers, &slots); err != nil {
		t.Fatal(err)
	}
	if pubs+triggers+slots != 0 {
		t.Errorf("blue keeps %d publications, %d event triggers, %d slots", pubs, triggers, slots)
	}
	conn = connect(t, c.Writer(), Database)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "INSERT INTO orders (pad) VALUES ('after')"); err != nil {
		t.Errorf("blue does not take writes after the refused switchover: %v", err)
	}
}

func TestBlueGreenPreflightFindings(t *testing.T) {
	cfg := testConfig(t)
	c, err := StartCluster(t.Context(), ClusterConfig{Node: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	conn := connect(t, c.Writer(), Database)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `CREATE TABLE events (at timestamptz, what text);
CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE full_identity (x int); ALTER TABLE full_identity REPLICA IDENTITY FULL;
CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY); CREATE SEQUENCE s1; SELECT nextval('s1')`); err != nil {
		t.Fatal(err)
	}
	checks, err := c.PreflightBlueGreen(t.Context(), migrate.GreenSpec{EngineVersion: "14.9"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		ok     bool
		detail string
	}{
		"wal_level is logical (rds.logical_replication)": {false, "wal_level=replica"},
		"tables have a primary key or replica identity":  {false, "without one: public.events ("},
		"green engine version not older than blue's":     {false, "14.9 is older than"},
		"unlogged tables":           {false, "public.scratch: not replicated"},
		"sequences":                 {true, "1: logical replication does not carry them"},
		"long-running transactions": {true, "none"},
		"a replication slot and WAL sender are free": {true, "slots"},
		"pg_dump and pg_restore installed":           {true, ""},
	}
	seen := 0
	for _, ck := range checks {
		w, ok := want[ck.Name]
		if !ok {
			continue
		}
		seen++
		if ck.OK != w.ok || !strings.Contains(ck.Detail, w.detail) {
			t.Errorf("%s: ok %v %q, want ok %v containing %q", ck.Name, ck.OK, ck.Detail, w.ok, w.detail)
		}
	}
	if seen != len(want) {
		t.Errorf("only %d of the %d findings: %+v", seen, len(want), checks)
	}
}
