package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/pgsql"
)

// Endpoints are the cluster's writer and reader endpoints, through which the load
// connects (migrate/endpoint implements them: DNS-like proxies or PgBouncer).
type Endpoints interface {
	// WriterAddr and ReaderAddr are the host:port the load connects to.
	WriterAddr() string
	ReaderAddr() string
	// Hold prepares a writer change: PgBouncer pauses (clients wait); a DNS-like
	// endpoint does nothing (the old writer's connections break when it stops).
	Hold(ctx context.Context) error
	// Release points the endpoints at writer (and readers) and lets traffic flow; a
	// DNS-like endpoint first keeps sending new connections to the old writer for its
	// stale window.
	Release(ctx context.Context, writer string, readers []string) error
	// SetReaders sets the reader endpoint's members (none: the writer).
	SetReaders(ctx context.Context, readers []string) error
	// SetForwarding emulates write forwarding: while on, the reader endpoint's new
	// connections are served by the writer.
	SetForwarding(ctx context.Context, on bool) error
	// Close stops the endpoints.
	Close(ctx context.Context) error
}

// ClusterConfig describes a local cluster.
type ClusterConfig struct {
	// Node is the template for every node (Dir, Bin, Fsync, sizes, Log); Name is
	// ignored: nodes are named node1, node2, ...
	Node Config
	// Endpoints builds the endpoints once the first writer runs, given its address.
	Endpoints func(ctx context.Context, writer string) (Endpoints, error)
	// Synchronous makes a caught-up replica a synchronous standby, as Aurora's shared
	// storage makes every acknowledged write durable on the replica: a crash failover
	// then loses nothing acknowledged. Off, an unplanned failover can lose writes.
	Synchronous bool
}

// Cluster is a local primary/replica cluster of PostgreSQL processes behind writer and
// reader endpoints. It implements migrate.Provider and migrate.Crasher.
type Cluster struct {
	cfg    ClusterConfig
	log    io.Writer
	mu     sync.Mutex
	nodes  map[string]*Node
	order  []string
	writer string
	next   int
	eps    Endpoints
	fwd    bool
	// crashed nodes stopped without a clean shutdown: they may have diverged from the
	// new writer, so they rejoin through pg_rewind.
	crashed map[string]bool
}

var (
	_ migrate.Provider = (*Cluster)(nil)
	_ migrate.Crasher  = (*Cluster)(nil)
)

// StartCluster starts a one-node cluster (the writer, node1) and its endpoints.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	c := &Cluster{cfg: cfg, log: cfg.Node.Log, nodes: map[string]*Node{}, next: 1, crashed: map[string]bool{}}
	if c.log == nil {
		c.log = io.Discard
	}
	ncfg := c.nodeConfig()
	n, err := InitPrimary(ctx, ncfg)
	if err != nil {
		return nil, err
	}
	c.add(n)
	c.writer = n.Name()
	if cfg.Endpoints != nil {
		eps, err := cfg.Endpoints(ctx, addr(n))
		if err != nil {
			_ = n.Close(ctx)
			return nil, err
		}
		c.eps = eps
	}
	return c, nil
}

func addr(n *Node) string { return "127.0.0.1:" + strconv.Itoa(n.Port()) }

func (c *Cluster) nodeConfig() Config {
	cfg := c.cfg.Node
	cfg.Name = "node" + strconv.Itoa(c.next)
	c.next++
	extra := map[string]string{"hot_standby_feedback": "on", "wal_receiver_status_interval": "1s"}
	for k, v := range cfg.ExtraConf {
		extra[k] = v
	}
	cfg.ExtraConf = extra
	return cfg
}

func (c *Cluster) add(n *Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[n.Name()] = n
	c.order = append(c.order, n.Name())
}

func (c *Cluster) node(id string) (*Node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.nodes[id]
	if !ok {
		return nil, fmt.Errorf("local: no node %q in the cluster", id)
	}
	return n, nil
}

// Writer returns the current writer node.
func (c *Cluster) Writer() *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[c.writer]
}

// WriterEndpoint and ReaderEndpoint are what the load connects to (the writer's own
// address when the cluster has no endpoints).
func (c *Cluster) WriterEndpoint() string {
	if c.eps == nil {
		return addr(c.Writer())
	}
	return c.eps.WriterAddr()
}

// ReaderEndpoint is the reader endpoint's address.
func (c *Cluster) ReaderEndpoint() string {
	if c.eps == nil {
		return addr(c.Writer())
	}
	return c.eps.ReaderAddr()
}

// Kind implements migrate.Provider.
func (c *Cluster) Kind() string { return "local" }

// Describe implements migrate.Provider.
func (c *Cluster) Describe(ctx context.Context) (migrate.Topology, error) {
	c.mu.Lock()
	t := migrate.Topology{Writer: c.writer, Forwarding: c.fwd}
	for _, id := range c.order {
		n := c.nodes[id]
		role := "reader"
		if id == c.writer {
			role = "writer"
		}
		t.Nodes = append(t.Nodes, migrate.Node{ID: id, Role: role, Addr: addr(n), Version: n.Version()})
	}
	c.mu.Unlock()
	t.WriterEndpoint, t.ReaderEndpoint = c.WriterEndpoint(), c.ReaderEndpoint()
	return t, nil
}

// readers lists the running standbys other than the writer.
func (c *Cluster) readers(except ...string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range c.order {
		if id == c.writer || contains(except, id) {
			continue
		}
		if n := c.nodes[id]; n.Running() {
			out = append(out, addr(n))
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Preflight implements migrate.Provider: the writer is a primary, WAL can be rewound
// and streamed, and slots are available.
func (c *Cluster) Preflight(ctx context.Context) ([]migrate.Check, error) {
	w := c.Writer()
	return pgsql.Preflight(ctx, w.queryRow, w.Name())
}

// PlanReplica implements migrate.Provider.
func (c *Cluster) PlanReplica(ctx context.Context) (map[string]any, error) {
	w := c.Writer()
	var size int64
	if err := w.queryRow(ctx, "SELECT sum(pg_database_size(oid))::bigint FROM pg_database", nil, &size); err != nil {
		return nil, err
	}
	c.mu.Lock()
	name := "node" + strconv.Itoa(c.next)
	c.mu.Unlock()
	return map[string]any{
		"would_run":  fmt.Sprintf("pg_basebackup -R -C -S %s -X stream from %s", name, w.Name()),
		"node":       name,
		"copy_bytes": size,
	}, nil
}

// CreateReplica implements migrate.Provider: pg_basebackup under load, start, and
// wait until the writer sees it streaming; the reader endpoint then includes it.
func (c *Cluster) CreateReplica(ctx context.Context) (migrate.Node, error) {
	c.mu.Lock()
	cfg := c.nodeConfig()
	c.mu.Unlock()
	w := c.Writer()
	n, err := InitReplica(ctx, cfg, w)
	if err != nil {
		return migrate.Node{}, err
	}
	if err := c.waitStreaming(ctx, w, n.Name()); err != nil {
		_ = n.Close(ctx)
		_ = w.DropSlot(context.WithoutCancel(ctx), n.Name())
		return migrate.Node{}, err
	}
	c.add(n)
	if c.eps != nil {
		if err := c.eps.SetReaders(ctx, c.readers()); err != nil {
			return migrate.Node{}, err
		}
	}
	return migrate.Node{ID: n.Name(), Role: "reader", Addr: addr(n), Version: n.Version()}, nil
}

func (c *Cluster) waitStreaming(ctx context.Context, w *Node, name string) error {
	if err := pgsql.WaitStreaming(ctx, w.queryRow, name, w.cfg.PollInterval); err != nil {
		return fmt.Errorf("local: from %s: %w", w.Name(), err)
	}
	return nil
}

// Lag implements migrate.Provider, from the writer's pg_stat_replication.
func (c *Cluster) Lag(ctx context.Context, replica string) (migrate.Lag, error) {
	w := c.Writer()
	l, err := pgsql.Lag(ctx, w.queryRow, replica)
	if err != nil {
		return l, fmt.Errorf("local: lag of %s behind %s: %w", replica, w.Name(), err)
	}
	return l, nil
}

// SetSynchronous makes replica the writer's synchronous standby ("" turns it off).
func (c *Cluster) SetSynchronous(ctx context.Context, replica string) error {
	w := c.Writer()
	conn, err := w.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = "+quote(replica)); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "SELECT pg_reload_conf()")
	return err
}

func quote(s string) string { return "'" + s + "'" }

// SetForwarding implements migrate.Provider by emulation at the endpoint: while on,
// reader-endpoint connections are served by the writer.
func (c *Cluster) SetForwarding(ctx context.Context, on bool) error {
	if c.eps == nil {
		return errors.New("local: write forwarding is emulated at the endpoints, and this cluster has none")
	}
	if err := c.eps.SetForwarding(ctx, on); err != nil {
		return err
	}
	c.mu.Lock()
	c.fwd = on
	c.mu.Unlock()
	return nil
}

// Switchover implements migrate.Provider: hold the endpoints, fast-stop the writer,
// wait until target has replayed the writer's final (shutdown checkpoint) LSN, and
// promote it. The endpoints stay held until Redirect.
func (c *Cluster) Switchover(ctx context.Context, target string) (migrate.Promotion, error) {
	old := c.Writer()
	t, err := c.node(target)
	if err != nil {
		return migrate.Promotion{}, err
	}
	p := migrate.Promotion{From: old.Name(), To: target, Detail: map[string]any{}}
	if lag, err := c.Lag(ctx, target); err == nil {
		p.LagBytes, p.LagTime = lag.Bytes, lag.Time
	}
	start := time.Now()
	if c.eps != nil {
		if err := c.eps.Hold(ctx); err != nil {
			return p, fmt.Errorf("local: hold endpoints: %w", err)
		}
		p.Detail["hold_ms"] = ms(time.Since(start))
	}
	stopStart := time.Now()
	if err := old.Stop(ctx, Fast); err != nil {
		return p, fmt.Errorf("local: stop writer %s: %w", old.Name(), err)
	}
	p.Detail["stop_ms"] = ms(time.Since(stopStart))
	final, err := old.CheckpointLSN(ctx)
	if err != nil {
		return p, err
	}
	p.FinalLSN = final
	waitStart := time.Now()
	if err := waitReplayed(ctx, t, final); err != nil {
		return p, err
	}
	p.Detail["replay_wait_ms"] = ms(time.Since(waitStart))
	if p.Promote, err = t.Promote(ctx); err != nil {
		return p, err
	}
	if lsn, err := t.CurrentLSN(ctx); err == nil {
		p.PromotedLSN = lsn
	}
	c.mu.Lock()
	c.writer = target
	c.mu.Unlock()
	p.Stall = time.Since(start)
	return p, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// waitReplayed polls until n has replayed past lsn.
func waitReplayed(ctx context.Context, n *Node, lsn string) error {
	if err := pgsql.WaitReplayed(ctx, n.queryRow, lsn, 5*time.Millisecond); err != nil {
		return fmt.Errorf("local: %s: %w", n.Name(), err)
	}
	return nil
}

// Redirect implements migrate.Provider: the endpoints reach writer, and it returns
// once a connection through the writer endpoint lands on a primary.
func (c *Cluster) Redirect(ctx context.Context, writer string) (map[string]any, error) {
	n, err := c.node(writer)
	if err != nil {
		return nil, err
	}
	detail := map[string]any{"writer": writer, "writer_addr": addr(n)}
	if c.eps == nil {
		return detail, nil
	}
	start := time.Now()
	if err := c.eps.Release(ctx, addr(n), c.readers()); err != nil {
		return detail, err
	}
	detail["release_ms"] = ms(time.Since(start))
	port, err := c.probeWriterEndpoint(ctx)
	if err != nil {
		return detail, err
	}
	if port != n.Port() {
		return detail, fmt.Errorf("local: the writer endpoint reaches port %d, not %s's %d", port, writer, n.Port())
	}
	return detail, nil
}

// probeWriterEndpoint connects through the writer endpoint and returns the port of
// the primary it reached.
func (c *Cluster) probeWriterEndpoint(ctx context.Context) (int, error) {
	cfg, err := pgx.ParseConfig("postgres://" + Superuser + "@" + c.WriterEndpoint() + "/postgres?sslmode=disable")
	if err != nil {
		return 0, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		conn, err := pgx.ConnectConfig(cctx, cfg)
		var port int
		var rec bool
		if err == nil {
			err = conn.QueryRow(cctx, "SELECT inet_server_port(), pg_is_in_recovery()").Scan(&port, &rec)
			conn.Close(context.WithoutCancel(ctx))
		}
		cancel()
		if err == nil && !rec {
			return port, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("local: the writer endpoint does not reach a primary (last error %v): %w", err, ctx.Err())
		case <-tick.C:
		}
	}
}

// Rejoin implements migrate.Provider: the former writer follows the current one
// (pg_rewind where its timeline diverged) and joins the reader endpoint.
func (c *Cluster) Rejoin(ctx context.Context, node string) (map[string]any, error) {
	n, err := c.node(node)
	if err != nil {
		return nil, err
	}
	w := c.Writer()
	if n == w {
		return nil, fmt.Errorf("local: %s is the writer; it cannot follow itself", node)
	}
	c.mu.Lock()
	rewind := c.crashed[node]
	c.mu.Unlock()
	rewound, err := n.Follow(ctx, w, rewind)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	delete(c.crashed, node)
	c.mu.Unlock()
	if err := c.waitStreaming(ctx, w, n.Name()); err != nil {
		return nil, err
	}
	if c.eps != nil {
		if err := c.eps.SetReaders(ctx, c.readers()); err != nil {
			return nil, err
		}
	}
	return map[string]any{"node": node, "follows": w.Name(), "rewound": rewound}, nil
}

// Remove implements migrate.Provider: stop and delete the node, drop its slot on
// the writer, and take it out of the reader endpoint.
func (c *Cluster) Remove(ctx context.Context, node string) error {
	n, err := c.node(node)
	if err != nil {
		return err
	}
	w := c.Writer()
	if n == w {
		return fmt.Errorf("local: refusing to remove %s: it is the writer", node)
	}
	c.mu.Lock()
	delete(c.nodes, node)
	for i, id := range c.order {
		if id == node {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	if c.eps != nil {
		if err := c.eps.SetReaders(ctx, c.readers()); err != nil {
			return err
		}
	}
	if err := n.Remove(ctx); err != nil {
		return err
	}
	return w.DropSlot(ctx, node)
}

// Recover implements migrate.Provider: restart writer if it is down (crash recovery
// when it was killed) and point the endpoints back at it.
func (c *Cluster) Recover(ctx context.Context, writer string) error {
	n, err := c.node(writer)
	if err != nil {
		return err
	}
	if !n.Running() {
		if err := n.Start(ctx); err != nil {
			return err
		}
	}
	if rec, err := n.InRecovery(ctx); err != nil {
		return err
	} else if rec {
		return fmt.Errorf("local: %s is a standby; it cannot take writes again without a promotion", writer)
	}
	c.mu.Lock()
	c.writer = writer
	c.mu.Unlock()
	if c.eps == nil {
		return nil
	}
	return c.eps.Release(ctx, addr(n), c.readers())
}

// Crash implements migrate.Crasher: kill -9 every process of the node.
func (c *Cluster) Crash(ctx context.Context, node string) error {
	n, err := c.node(node)
	if err != nil {
		return err
	}
	if c.eps != nil && node == c.writerID() {
		if err := c.eps.Hold(ctx); err != nil {
			return err
		}
	}
	if err := n.Kill(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	c.crashed[node] = true
	c.mu.Unlock()
	return nil
}

func (c *Cluster) writerID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writer
}

// Failover implements migrate.Crasher: promote target after the writer died, with
// whatever it has replayed.
func (c *Cluster) Failover(ctx context.Context, target string) (migrate.Promotion, error) {
	t, err := c.node(target)
	if err != nil {
		return migrate.Promotion{}, err
	}
	p := migrate.Promotion{From: c.writerID(), To: target, Detail: map[string]any{}}
	if bytes, lsn, err := pgsql.StandbyLag(ctx, t.queryRow); err == nil {
		p.LagBytes, p.FinalLSN = bytes, lsn
	}
	start := time.Now()
	if p.Promote, err = t.Promote(ctx); err != nil {
		return p, err
	}
	if lsn, err := t.CurrentLSN(ctx); err == nil {
		p.PromotedLSN = lsn
	}
	c.mu.Lock()
	c.writer = target
	c.mu.Unlock()
	p.Stall = time.Since(start)
	return p, nil
}

// Close implements migrate.Provider: stop the endpoints and every node and remove
// their data directories.
func (c *Cluster) Close(ctx context.Context) error {
	var errs []error
	if c.eps != nil {
		errs = append(errs, c.eps.Close(ctx))
	}
	c.mu.Lock()
	nodes := make([]*Node, 0, len(c.nodes))
	for _, id := range c.order {
		nodes = append(nodes, c.nodes[id])
	}
	c.mu.Unlock()
	for _, n := range nodes {
		errs = append(errs, n.Close(ctx))
	}
	return errors.Join(errs...)
}

// Nodes returns the cluster's nodes, in creation order.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Node, 0, len(c.order))
	for _, id := range c.order {
		out = append(out, c.nodes[id])
	}
	return out
}

// LogDir is where the nodes' server logs are.
func (c *Cluster) LogDir() string { return filepath.Clean(c.cfg.Node.Dir) }
