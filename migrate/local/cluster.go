package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
	"github.com/rehearse-dev/rehearse/migrate/pgsql"
)

// Endpoints are the cluster's writer and reader endpoints, through which the load
// connects (migrate/endpoint implements them: DNS records, PgBouncer, or TCP
// forwarders).
type Endpoints interface {
	// WriterAddr and ReaderAddr are the host:port the load connects to: a name the
	// cluster's DNS server answers, or an IP address.
	WriterAddr() string
	ReaderAddr() string
	// Hold prepares a writer change: PgBouncer pauses (clients wait); DNS does
	// nothing (the old writer's connections break when it stops).
	Hold(ctx context.Context) error
	// Release points the endpoints at writer (and readers, node addresses) and lets
	// traffic flow; DNS records flip only after their propagation delay, and until
	// then the names still lead to the old writer.
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
	// Node is the template for every node (Dir, Bin, Fsync, sizes, Log); Name, Host
	// and Port are ignored: nodes are named node1, node2, ..., and each listens on an
	// address of its own (see Loopback) on the cluster's Port.
	Node Config
	// Port is the port every node listens on; 0 means PreferredPort (5432) when it is
	// free, else any free port.
	Port int
	// DNS is the cluster's DNS server, on which each node's instance name answers
	// its address while the node is in the cluster; nil: no names. The caller owns
	// it (and closes it after the cluster).
	DNS *dnsserver.Server
	// Endpoints builds the endpoints once the first writer runs, given its address.
	Endpoints func(ctx context.Context, writer string) (Endpoints, error)
	// Node.Credentials are the credentials every node admits (PgBouncer's auth file
	// must hold their verifier too); nil makes StartCluster generate them in
	// Node.Dir, and Close remove them.
	//
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
	lb     *Loopback
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
	// labels are the nodes' instance names' first labels on the DNS server (the node's
	// name unless a blue/green switchover renamed it).
	labels map[string]string
	// bg is the blue/green deployment, if one was created.
	bg *blueGreen
	// ownCreds: the credentials were generated for the cluster (Close removes them).
	ownCreds bool
}

var (
	_ migrate.Provider = (*Cluster)(nil)
	_ migrate.Crasher  = (*Cluster)(nil)
)

// StartCluster starts a one-node cluster (the writer, node1) and its endpoints.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	c := &Cluster{cfg: cfg, log: cfg.Node.Log, nodes: map[string]*Node{}, next: 1, crashed: map[string]bool{}, labels: map[string]string{}}
	if c.log == nil {
		c.log = io.Discard
	}
	lb, err := NewLoopback(cfg.Port)
	if err != nil {
		return nil, err
	}
	c.lb = lb
	if c.cfg.Node.Credentials == nil {
		creds, err := NewCredentials(cfg.Node.Dir, c.log)
		if err != nil {
			return nil, err
		}
		c.cfg.Node.Credentials, c.ownCreds = creds, true
	}
	fmt.Fprintf(c.log, "cluster nodes on %s, port %d\n", lb.Prefix(), lb.Port())
	n, err := c.initNode(ctx, func(cfg Config) (*Node, error) { return InitPrimary(ctx, cfg) })
	if err != nil {
		c.removeCreds()
		return nil, err
	}
	c.add(n)
	c.writer = n.Name()
	if cfg.Endpoints != nil {
		eps, err := cfg.Endpoints(ctx, addr(n))
		if err != nil {
			_ = n.Close(ctx)
			c.unname(n.Name())
			c.removeCreds()
			return nil, err
		}
		c.eps = eps
	}
	return c, nil
}

func addr(n *Node) string { return n.Addr() }

// Credentials are the credentials every node of the cluster admits.
func (c *Cluster) Credentials() *Credentials { return c.cfg.Node.Credentials }

// removeCreds removes credentials the cluster generated.
func (c *Cluster) removeCreds() error {
	if !c.ownCreds {
		return nil
	}
	return c.cfg.Node.Credentials.Remove()
}

// initNode creates the next node with init (InitPrimary, or InitReplica of the
// writer) on the next free address of the cluster's block. When another process
// takes the address before the server binds it, it moves on to the next address.
func (c *Cluster) initNode(ctx context.Context, init func(Config) (*Node, error)) (*Node, error) {
	c.mu.Lock()
	cfg := c.nodeConfig()
	c.mu.Unlock()
	return c.initNodeAs(ctx, cfg, init)
}

// initNodeAs is initNode for a node configured as cfg (its name chosen by the
// caller).
func (c *Cluster) initNodeAs(ctx context.Context, cfg Config, init func(Config) (*Node, error)) (*Node, error) {
	var last error
	for range portAttempts {
		host, err := c.lb.Next()
		if err != nil {
			return nil, err
		}
		cfg.Host, cfg.Port = host.String(), c.lb.Port()
		n, err := init(cfg)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, ErrPortInUse) || ctx.Err() != nil {
			return nil, err
		}
		fmt.Fprintf(c.log, "%s was taken before %s could bind it; trying the next address\n", c.lb.HostPort(host), cfg.Name)
		last = err
	}
	return nil, last
}

func (c *Cluster) nodeConfig() Config {
	cfg := c.template("node" + strconv.Itoa(c.next))
	c.next++
	return cfg
}

// template is the configuration of a node named name.
func (c *Cluster) template(name string) Config {
	cfg := c.cfg.Node
	cfg.Name = name
	extra := map[string]string{"hot_standby_feedback": "on", "wal_receiver_status_interval": "1s"}
	for k, v := range cfg.ExtraConf {
		extra[k] = v
	}
	cfg.ExtraConf = extra
	return cfg
}

// add makes n a member and gives it its instance name.
func (c *Cluster) add(n *Node) {
	c.mu.Lock()
	c.nodes[n.Name()] = n
	c.order = append(c.order, n.Name())
	c.mu.Unlock()
	c.name(n)
}

// name gives n its instance name on the DNS server.
func (c *Cluster) name(n *Node) {
	c.mu.Lock()
	label := c.labelLocked(n.Name())
	c.mu.Unlock()
	if d := c.cfg.DNS; d != nil {
		if err := d.SetHost(d.Names().Instance(label), netip.MustParseAddr(n.Host())); err != nil {
			fmt.Fprintf(c.log, "warning: instance name of %s: %v\n", n.Name(), err)
		}
	}
}

// labelLocked is node's instance name's label; c.mu must be held.
func (c *Cluster) labelLocked(node string) string {
	if l, ok := c.labels[node]; ok {
		return l
	}
	return node
}

// unname removes node's instance name.
func (c *Cluster) unname(node string) {
	c.mu.Lock()
	label := c.labelLocked(node)
	delete(c.labels, node)
	c.mu.Unlock()
	if d := c.cfg.DNS; d != nil {
		d.Remove(d.Names().Instance(label))
	}
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

func (c *Cluster) writerID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writer
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

// Port returns the port every node listens on, each on its own address.
func (c *Cluster) Port() int { return c.lb.Port() }

// Prefix returns the block of loopback addresses the nodes listen on.
func (c *Cluster) Prefix() netip.Prefix { return c.lb.Prefix() }

// Kind implements migrate.Provider.
func (c *Cluster) Kind() string { return "local" }

// members is the cluster's nodes for the shared bookkeeping; c.mu must be held.
func (c *Cluster) members() pgsql.Members[*Node] {
	return pgsql.Members[*Node]{Nodes: c.nodes, Order: c.order, Writer: c.writer}
}

// Describe implements migrate.Provider.
func (c *Cluster) Describe(ctx context.Context) (migrate.Topology, error) {
	c.mu.Lock()
	t := c.members().Topology(func(n *Node) migrate.Node {
		return migrate.Node{Addr: addr(n), Version: n.Version()}
	})
	t.Forwarding = c.fwd
	c.mu.Unlock()
	t.WriterEndpoint, t.ReaderEndpoint = c.WriterEndpoint(), c.ReaderEndpoint()
	return t, nil
}

// readers lists the running standbys other than the writer.
func (c *Cluster) readers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members().Readers((*Node).Running, addr)
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
	w := c.Writer()
	n, err := c.initNode(ctx, func(cfg Config) (*Node, error) { return InitReplica(ctx, cfg, w) })
	if err != nil {
		return migrate.Node{}, err
	}
	if err := c.waitStreaming(ctx, w, n.Name()); err != nil {
		_ = n.Close(ctx)
		_ = w.DropSlot(context.WithoutCancel(ctx), n.Slot())
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
	return pgsql.SetSynchronous(ctx, c.Writer().exec, replica)
}

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
		c.unname(n.Name())
	}
	errs = append(errs, c.closeBlueGreen(ctx))
	if err := errors.Join(errs...); err != nil {
		return err // a node may still run: keep what admits to it
	}
	return c.removeCreds()
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
