package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate"
)

func startCluster(t *testing.T, sync bool) *Cluster {
	t.Helper()
	cfg := testConfig(t)
	c, err := StartCluster(t.Context(), ClusterConfig{Node: cfg, Synchronous: sync})
	if err != nil {
		t.Fatalf("StartCluster: %v\n%s", err, cfg.Log)
	}
	t.Cleanup(func() {
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// writer inserts rows into the current writer in a loop and remembers which commits
// were acknowledged.
type writer struct {
	c       *Cluster
	mu      sync.Mutex
	acked   []int64
	errors  int
	lastErr error
	stop    chan struct{}
	done    chan struct{}
}

func startWriter(t *testing.T, c *Cluster) *writer {
	t.Helper()
	conn, err := c.Writer().Connect(t.Context(), Database)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), "CREATE TABLE IF NOT EXISTS t (id bigint PRIMARY KEY, pad text)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	w := &writer{c: c, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	t.Cleanup(w.halt)
	return w
}

func (w *writer) run() {
	defer close(w.done)
	var conn *pgx.Conn
	for id := int64(1); ; id++ {
		select {
		case <-w.stop:
			if conn != nil {
				conn.Close(context.Background())
			}
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if conn == nil || conn.IsClosed() {
			var err error
			if conn, err = pgx.Connect(ctx, w.c.Writer().DSN(Database)); err != nil {
				conn = nil
				cancel()
				w.mu.Lock()
				w.errors++
				w.lastErr = err
				w.mu.Unlock()
				continue
			}
		}
		_, err := conn.Exec(ctx, "INSERT INTO t VALUES ($1, repeat('x', 200))", id)
		cancel()
		w.mu.Lock()
		if err == nil {
			w.acked = append(w.acked, id)
		} else {
			w.errors++
			w.lastErr = err
			conn.Close(context.Background())
			conn = nil
		}
		w.mu.Unlock()
	}
}

func (w *writer) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// ackTimeout bounds how long a writer may go without the commits a test waits for.
const ackTimeout = 30 * time.Second

// waitAcked waits until n more commits were acknowledged (progress, not time), and
// fails the test when they take longer than ackTimeout: a stalled writer fails
// within that, instead of hanging the test binary.
func (w *writer) waitAcked(t *testing.T, n int) {
	t.Helper()
	target := w.count() + n
	defer func() {
		if w.count() < target { // Eventually failed the test
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Logf("the writer: %d writes acknowledged, %d attempts failed (last error: %v)", len(w.acked), w.errors, w.lastErr)
		}
	}()
	testutil.Eventually(t, ackTimeout, fmt.Sprintf("the writer to have %d acknowledged writes (%d more)", target, n),
		func() bool { return w.count() >= target })
}

// missing returns the acknowledged ids absent from the current writer.
func (w *writer) missing(t *testing.T) int {
	t.Helper()
	w.halt()
	conn, err := w.c.Writer().Connect(t.Context(), Database)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var have int64
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM t WHERE id = ANY($1)", w.acked).Scan(&have); err != nil {
		t.Fatal(err)
	}
	return len(w.acked) - int(have)
}

func TestClusterPlannedSwitchoverAndFailback(t *testing.T) {
	c := startCluster(t, false)
	ctx := t.Context()
	w := startWriter(t, c)
	w.waitAcked(t, 50)

	rep, err := c.CreateReplica(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ID != "node2" {
		t.Fatalf("replica id %s", rep.ID)
	}
	// Each node on its own address of the cluster's block, all on one port.
	n1, n2 := c.nodes["node1"], c.nodes["node2"]
	if n1.Host() == n2.Host() || n1.Port() != c.Port() || n2.Port() != c.Port() ||
		!c.Prefix().Contains(netip.MustParseAddr(n1.Host())) || !c.Prefix().Contains(netip.MustParseAddr(n2.Host())) || rep.Addr != n2.Addr() {
		t.Fatalf("node1 %s, node2 %s (reported %s): want two addresses of %s on port %d", n1.Addr(), n2.Addr(), rep.Addr, c.Prefix(), c.Port())
	}
	w.waitAcked(t, 50)
	lag, err := c.Lag(ctx, "node2")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lag under load: %+v", lag)

	p, err := c.Switchover(ctx, "node2")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("switchover: %+v", p)
	if p.FinalLSN == "" || p.PromotedLSN == "" || p.From != "node1" || p.To != "node2" {
		t.Errorf("promotion = %+v", p)
	}
	topo, _ := c.Describe(ctx)
	if topo.Writer != "node2" {
		t.Fatalf("writer = %s", topo.Writer)
	}
	if _, err := c.Redirect(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	w.waitAcked(t, 50) // writes flow to the new writer
	if d, err := c.Rejoin(ctx, "node1"); err != nil {
		t.Fatal(err)
	} else if d["rewound"] != false {
		t.Errorf("a planned switchover needed a rewind: %v", d)
	}
	if rec, err := c.nodes["node1"].InRecovery(ctx); err != nil || !rec {
		t.Fatalf("node1 is not a standby after rejoin: %v %v", rec, err)
	}
	// Fail back: one step, because node1 already streams from node2.
	if _, err := c.Switchover(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Redirect(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	w.waitAcked(t, 50)
	if _, err := c.Rejoin(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	if n := w.missing(t); n != 0 {
		t.Fatalf("%d acknowledged writes lost across switchover and failback", n)
	}
	if err := c.Remove(ctx, "node1"); err == nil {
		t.Fatal("removing the writer was allowed")
	}
}

func TestClusterCrashFailoverSynchronousLosesNothing(t *testing.T) {
	c := startCluster(t, true)
	ctx := t.Context()
	w := startWriter(t, c)
	if _, err := c.CreateReplica(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.SetSynchronous(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	w.waitAcked(t, 100)
	if err := c.Crash(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	p, err := c.Failover(ctx, "node2")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("failover: %+v", p)
	w.waitAcked(t, 50)
	d, err := c.Rejoin(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rejoin after crash: %v", d)
	if n := w.missing(t); n != 0 {
		t.Fatalf("%d acknowledged writes lost in a synchronous crash failover", n)
	}
}

// The engine against a real cluster: the whole wet plan.
func TestEngineOnLocalCluster(t *testing.T) {
	c := startCluster(t, false)
	w := startWriter(t, c)
	w.waitAcked(t, 20)
	start := time.Now()
	steps := []string{"preflight", "create_replica", "catch_up", "switchover", "redirect", "validate", "keep_rollback_target", "decommission"}
	e := &migrate.Engine{Provider: c, Config: migrate.Config{Steps: steps, StepTimeout: 60 * time.Second, CatchUpMaxLagBytes: 1 << 20, CatchUpSamples: 3, Soak: 0, Poll: 20 * time.Millisecond},
		Since: func() time.Duration { return time.Since(start) }}
	m, err := e.Run(t.Context())
	if err != nil {
		t.Fatalf("%v\n%+v", err, m.Steps)
	}
	for _, s := range m.Steps {
		if s.Status != migrate.StatusOK {
			t.Errorf("%s: %s %v", s.Name, s.Status, s.Detail)
		}
	}
	if m.WriterBefore != "node1" || m.WriterAfter != "node2" {
		t.Errorf("writer %s → %s", m.WriterBefore, m.WriterAfter)
	}
	if len(c.Nodes()) != 1 {
		t.Errorf("decommission left %d nodes", len(c.Nodes()))
	}
	if n := w.missing(t); n != 0 {
		t.Fatalf("%d acknowledged writes lost", n)
	}
	fmt.Fprintln(&testLogWriter{t}, "steps:", m.Steps)
}

type testLogWriter struct{ t *testing.T }

func (w *testLogWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// dying wraps a cluster and kills a node at a chosen point of the plan.
type dying struct {
	*Cluster
	t      *testing.T
	killAt string // "lag" or "switchover"
	killed bool
}

func (d *dying) kill(ctx context.Context, node string) {
	if d.killed {
		return
	}
	d.killed = true
	n, err := d.node(node)
	if err != nil {
		d.t.Error(err)
		return
	}
	if err := n.Kill(ctx); err != nil {
		d.t.Error(err)
	}
}

func (d *dying) Lag(ctx context.Context, replica string) (migrate.Lag, error) {
	if d.killAt == "lag" {
		d.kill(ctx, replica)
	}
	return d.Cluster.Lag(ctx, replica)
}

func (d *dying) Switchover(ctx context.Context, target string) (migrate.Promotion, error) {
	if d.killAt == "switchover" {
		d.kill(ctx, target)
	}
	return d.Cluster.Switchover(ctx, target)
}

// A node that dies partway through the plan: the failed step is recorded, what was
// done is undone, and the original writer serves writes again.
func TestEngineNodeDiesPartway(t *testing.T) {
	for _, at := range []string{"lag", "switchover"} {
		t.Run("replica dies at "+at, func(t *testing.T) {
			c := startCluster(t, false)
			w := startWriter(t, c)
			w.waitAcked(t, 20)
			p := &dying{Cluster: c, t: t, killAt: at}
			steps := []string{"preflight", "create_replica", "catch_up", "switchover", "redirect", "validate"}
			start := time.Now()
			// Steps of 20 s: on a busy machine a replica can take more than 5 s to start.
			e := &migrate.Engine{Provider: p, Config: migrate.Config{Steps: steps, StepTimeout: 20 * time.Second, CatchUpMaxLagBytes: 1 << 20, Poll: 20 * time.Millisecond},
				Since: func() time.Duration { return time.Since(start) }}
			m, err := e.Run(t.Context())
			if err == nil {
				t.Fatal("the plan succeeded although the replica died")
			}
			t.Logf("error: %v", err)
			var failed string
			for _, s := range m.Steps {
				t.Logf("%s %s %v", s.Name, s.Status, s.Detail["error"])
				if s.Status == migrate.StatusFailed {
					failed = s.Name
				}
			}
			want := map[string]string{"lag": "catch_up", "switchover": "switchover"}[at]
			if failed != want {
				t.Errorf("failed step %q, want %q", failed, want)
			}
			if m.Outcome != "failed" || m.WriterAfter != "node1" {
				t.Errorf("outcome %s, writer after %s", m.Outcome, m.WriterAfter)
			}
			if len(c.Nodes()) != 1 {
				t.Errorf("the dead replica was not removed: %d nodes", len(c.Nodes()))
			}
			// The cluster serves writes again on node1.
			w.waitAcked(t, 20)
			if n := w.missing(t); n != 0 {
				t.Fatalf("%d acknowledged writes lost", n)
			}
		})
	}
}

// Two blocks differ; a taken address is skipped; the port is shared.
func TestLoopback(t *testing.T) {
	a, err := NewLoopback(0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewLoopback(a.Port())
	if err != nil {
		t.Fatal(err)
	}
	if a.Prefix() == b.Prefix() || b.Port() != a.Port() || a.Prefix().Bits() != 24 || a.Prefix().Addr().As4()[1] == 0 {
		t.Fatalf("blocks %s and %s (ports %d, %d): want two different /24s outside 127.0.0.0/16, one port", a.Prefix(), b.Prefix(), a.Port(), b.Port())
	}
	first, err := a.Next()
	if err != nil || first != hostAt(a.Prefix(), 2) {
		t.Fatalf("first address %v (%v), want .2 of %s", first, err, a.Prefix())
	}
	// Something else listens on .3: the next address is .4.
	busy, err := net.Listen("tcp", net.JoinHostPort(hostAt(a.Prefix(), 3).String(), strconv.Itoa(a.Port())))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if next, err := a.Next(); err != nil || next != hostAt(a.Prefix(), 4) {
		t.Fatalf("next address %v (%v), want .4 (.3 is taken)", next, err)
	}
	if _, err := NewLoopback(70000); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewLoopback(70000) = %v, want ErrInvalidConfig", err)
	}
}
