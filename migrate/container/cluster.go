// Package container is the container target of rehearse: a primary/replica
// PostgreSQL cluster of Docker containers, created with testcontainers-go on a
// private Docker network of its own, with streaming replication between the
// containers. It implements migrate.Provider, migrate.Crasher and
// migrate.NetworkCutter, so the same cutover plan as the local target runs against
// it, with both endpoint modes (migrate/endpoint). A crash kills the writer's
// container; a network cut disconnects it from the run's network.
//
// The load reaches the containers only through their published ports (and the
// endpoints in front of them): each container on a loopback address of its own, in
// a /24 of 127.0.0.0/8 that is the run's, on one host port they share (5432 when it
// is free), as Aurora instances share 5432; replication stays on the run's network.
// With a DNS server (Config.DNS), each node's instance name answers its address. Every
// container and the network carry the run's label (LabelRun); Close removes them by
// handle and by label, also after a failure or a cancelled context.
//
// Ryuk, testcontainers' reaper, cannot be pulled on machines without a registry:
// the process must run with TESTCONTAINERS_RYUK_DISABLED=true (see RyukEnv); Start
// refuses to run otherwise.
//
// Images: Start needs the image in the local engine (ResolveImage). Replicas,
// planned switchovers and rejoins use the rehearse-pg entrypoint of the image
// images/postgres builds (BuiltImage); with the official image only the
// single-writer operations work (see ErrUnsupportedImage).
package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
	"github.com/rehearse-dev/rehearse/migrate/endpoint"
	"github.com/rehearse-dev/rehearse/migrate/local"
)

// cleanupTimeout bounds Close's removal of containers and the network when the
// caller's context is already done.
const cleanupTimeout = 2 * time.Minute

// node is one PostgreSQL container.
type node struct {
	id       string // node1, node2, ...; also its network alias and cluster_name
	c        testcontainers.Container
	hostIP   netip.Addr // the loopback address it is published on
	hostPort int        // its published port, the same for every node
	down     bool       // killed (Crash) or stopped (Switchover): not serving
	cut      bool       // disconnected from the run's network
	// crashed is set when the node was killed rather than stopped cleanly: it may have
	// diverged from the new writer and rejoins through pg_rewind.
	crashed bool
}

func (n *node) addr() string { return net.JoinHostPort(n.hostIP.String(), strconv.Itoa(n.hostPort)) }

// Cluster is a PostgreSQL cluster of containers behind writer and reader endpoints.
type Cluster struct {
	cfg        Config
	log        io.Writer
	runID      string
	rehearsePG bool // the image has the rehearse-pg entrypoint
	cli        *testcontainers.DockerClient
	lb         *local.Loopback
	ownDNS     bool   // Start started cfg.DNS: Close closes it
	credsDir   string // Start generated the credentials here: Close removes it
	netID      string
	netName    string

	mu     sync.Mutex
	nodes  map[string]*node
	order  []string
	writer string
	next   int
	eps    Endpoints
	fwd    bool
	closed bool
	// dnsLabels are the nodes' instance names' first labels on the DNS server (the
	// node's ID unless a blue/green switchover renamed it).
	dnsLabels map[string]string
	// bg is the blue/green deployment, if one was created.
	bg *blueGreen
}

var (
	_ migrate.Provider      = (*Cluster)(nil)
	_ migrate.Crasher       = (*Cluster)(nil)
	_ migrate.NetworkCutter = (*Cluster)(nil)
	_ migrate.Synchronizer  = (*Cluster)(nil)
)

// Start creates the run's network, starts the writer (node1) with the database
// Database, and the endpoints in front of it. On any failure, and when ctx ends, it
// removes everything it created before returning.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	cfg = cfg.withDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := checkRyuk(); err != nil {
		return nil, err
	}
	if cfg.RunID == "" {
		cfg.RunID = newRunID()
	}
	cli, err := dockerClient(ctx)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, log: cfg.Log, runID: cfg.RunID, cli: cli, nodes: map[string]*node{}, next: 1,
		netName: "rehearse-" + cfg.RunID, dnsLabels: map[string]string{}}
	ok := false
	defer func() {
		if !ok {
			_ = c.Close(ctx)
		}
	}()
	if err := c.checkImage(ctx); err != nil {
		return nil, err
	}
	if c.cfg.Credentials == nil {
		if c.credsDir, err = os.MkdirTemp("", "rehearse-containers-"); err != nil {
			return nil, fmt.Errorf("container: %w", err)
		}
		if c.cfg.Credentials, err = local.NewCredentials(c.credsDir, c.log); err != nil {
			return nil, fmt.Errorf("container: %w", err)
		}
	}
	if c.lb, err = local.NewLoopback(cfg.Port); err != nil {
		return nil, fmt.Errorf("container: addresses to publish the nodes on: %w", err)
	}
	if c.cfg.DNS == nil {
		c.cfg.DNS = c.cfg.Endpoint.DNS
	}
	if c.cfg.DNS == nil {
		if c.cfg.DNS, err = dnsserver.Start(ctx, dnsserver.Config{Names: dnsserver.NewNames("rehearse"), Log: c.log}); err != nil {
			return nil, fmt.Errorf("container: %w", err)
		}
		c.ownDNS = true
	}
	if err := c.createNetwork(ctx); err != nil {
		return nil, err
	}
	id := c.nextID()
	n, err := c.startNode(ctx, id, nil)
	if err != nil {
		return nil, err
	}
	c.add(n)
	c.writer = id
	if err := c.createDatabase(ctx, n); err != nil {
		return nil, err
	}
	eps, err := c.startEndpoints(ctx, n.addr())
	if err != nil {
		return nil, err
	}
	ok = true
	fmt.Fprintf(c.log, "container cluster ready: writer %s at %s, writer endpoint %s\n", id, n.addr(), eps.WriterAddr())
	return c, nil
}

// newRunID returns a run ID from the time and a random suffix.
func newRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b)
}

// checkImage makes sure the image is in the local engine and notes whether it has
// the rehearse-pg entrypoint.
func (c *Cluster) checkImage(ctx context.Context) error {
	found, rpg, err := imageInfo(ctx, c.cli, c.cfg.Image)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: %s is not in the local Docker engine and cannot be pulled here; build %s with `make image`, or see ResolveImage", ErrImageNotFound, c.cfg.Image, BuiltImage)
	}
	c.rehearsePG = rpg
	return nil
}

// createNetwork creates the run's network, through testcontainers so it carries its
// session labels too.
func (c *Cluster) createNetwork(ctx context.Context) error {
	prov, err := testcontainers.NewDockerProvider(testcontainers.WithLogger(logger{c.log}))
	if err != nil {
		return fmt.Errorf("container: docker provider: %w", err)
	}
	defer prov.Close()
	//nolint:staticcheck // NetworkRequest is the provider-level API; network.New cannot take a logger.
	nw, err := prov.CreateNetwork(ctx, testcontainers.NetworkRequest{
		Name: c.netName, Driver: "bridge", CheckDuplicate: true,
		Labels: c.labels(""),
	})
	if err != nil {
		return fmt.Errorf("container: create network %s: %w", c.netName, err)
	}
	c.netID = nw.(*testcontainers.DockerNetwork).ID
	fmt.Fprintf(c.log, "network %s created (run %s, image %s)\n", c.netName, c.runID, c.cfg.Image)
	return nil
}

// startEndpoints starts the endpoints in front of the writer's address writer, with
// Config.NewEndpoints, or endpoint.New and Config.Endpoint.
func (c *Cluster) startEndpoints(ctx context.Context, writer string) (Endpoints, error) {
	newEps := c.cfg.NewEndpoints
	if newEps == nil {
		newEps = func(ctx context.Context, writer string) (Endpoints, error) {
			ec := c.cfg.Endpoint
			ec.Writer, ec.Readers, ec.Log = writer, nil, c.log
			if ec.Credentials == nil {
				ec.Credentials = c.cfg.Credentials
			}
			if ec.DNS == nil {
				ec.DNS = c.cfg.DNS
			}
			return endpoint.New(ctx, ec)
		}
	}
	eps, err := newEps(ctx, writer)
	if err != nil {
		return nil, fmt.Errorf("container: start %s endpoints: %w", c.cfg.Endpoint.Mode, err)
	}
	c.mu.Lock()
	c.eps = eps
	c.mu.Unlock()
	return eps, nil
}

// labels are the labels of the run's objects; node is "" for the network.
func (c *Cluster) labels(node string) map[string]string {
	l := testcontainers.GenericLabels()
	l[LabelRun] = c.runID
	if node != "" {
		l[LabelNode] = node
	}
	return l
}

func (c *Cluster) nextID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := "node" + strconv.Itoa(c.next)
	c.next++
	return id
}

// add makes n a member and gives it its instance name.
func (c *Cluster) add(n *node) {
	c.mu.Lock()
	c.nodes[n.id] = n
	c.order = append(c.order, n.id)
	c.mu.Unlock()
	c.name(n)
}

// name gives n its instance name on the DNS server.
func (c *Cluster) name(n *node) {
	c.mu.Lock()
	label := c.labelLocked(n.id)
	c.mu.Unlock()
	if d := c.cfg.DNS; d != nil {
		if err := d.SetHost(d.Names().Instance(label), n.hostIP); err != nil {
			fmt.Fprintf(c.log, "warning: instance name of %s: %v\n", n.id, err)
		}
	}
}

// labelLocked is node id's instance name's label; c.mu must be held.
func (c *Cluster) labelLocked(id string) string {
	if l, ok := c.dnsLabels[id]; ok {
		return l
	}
	return id
}

// unname removes node id's instance name.
func (c *Cluster) unname(id string) {
	c.mu.Lock()
	label := c.labelLocked(id)
	delete(c.dnsLabels, id)
	c.mu.Unlock()
	if d := c.cfg.DNS; d != nil {
		d.Remove(d.Names().Instance(label))
	}
}

func (c *Cluster) node(id string) (*node, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.nodes[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoNode, id)
	}
	return n, nil
}

func (c *Cluster) writerNode() *node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[c.writer]
}

func (c *Cluster) writerID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writer
}

// DNS returns the cluster's DNS server (Config.DNS, or the one Start started).
func (c *Cluster) DNS() *dnsserver.Server { return c.cfg.DNS }

// Port returns the host port every node is published on, each on its own address.
func (c *Cluster) Port() int { return c.lb.Port() }

// RunID returns the run's ID, the value of LabelRun on everything it created.
func (c *Cluster) RunID() string { return c.runID }

// Network returns the name of the run's Docker network.
func (c *Cluster) Network() string { return c.netName }

// Image returns the image the nodes run.
func (c *Cluster) Image() string { return c.cfg.Image }

// WriterEndpoint and ReaderEndpoint are the host:port the load connects to: the
// endpoints' names on the DNS server and their port, or 127.0.0.1:port.
func (c *Cluster) WriterEndpoint() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.eps.WriterAddr()
}

// ReaderEndpoint is the reader endpoint's host:port.
func (c *Cluster) ReaderEndpoint() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.eps.ReaderAddr()
}

// DSN returns a connection URL to database db through addr (an endpoint or a node's
// published address), whose password is read from the credentials' file.
func (c *Cluster) DSN(addr, db string) string { return c.cfg.Credentials.DSN(addr, db) }

// Credentials are the credentials every node admits.
func (c *Cluster) Credentials() *local.Credentials { return c.cfg.Credentials }

// NodeAddr returns a node's published address: its own loopback address and the
// port every node shares.
func (c *Cluster) NodeAddr(id string) (string, error) {
	n, err := c.node(id)
	if err != nil {
		return "", err
	}
	return n.addr(), nil
}

// Close implements migrate.Provider: stop the endpoints and remove every container
// and the network of the run, by handle and then by label (so nothing survives a
// failed start either). It uses its own bounded context when ctx is already done,
// so it also cleans up after Ctrl-C. It is idempotent.
func (c *Cluster) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	eps := c.eps
	ids := append([]string(nil), c.order...)
	bg := c.bg
	if bg != nil {
		// The deployment's containers carry the run's label: the sweep removes them.
		ids = append(ids, bg.Other.Order...)
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.unname(id)
	}
	if bg != nil {
		bg.RemoveNames(c.cfg.DNS)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var errs []error
	if eps != nil {
		if err := eps.Close(cctx); err != nil {
			errs = append(errs, fmt.Errorf("container: close endpoints: %w", err))
		}
	}
	if err := sweep(cctx, c.cli, c.runID); err != nil {
		errs = append(errs, err)
	}
	if cs, ns, err := leftovers(cctx, c.cli, c.runID); err == nil && len(cs)+len(ns) > 0 {
		errs = append(errs, fmt.Errorf("container: run %s left %d container(s) and %d network(s) behind", c.runID, len(cs), len(ns)))
	}
	fmt.Fprintf(c.log, "removed run %s's containers and network\n", c.runID)
	errs = append(errs, c.cli.Close())
	if c.ownDNS {
		errs = append(errs, c.cfg.DNS.Close())
	}
	if c.credsDir != "" {
		errs = append(errs, c.cfg.Credentials.Remove(), os.RemoveAll(c.credsDir))
	}
	return errors.Join(errs...)
}

// NodeIDs returns the nodes' IDs in creation order.
func (c *Cluster) NodeIDs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.order...)
}

// Logs returns the last lines of a node's container log (for reports and errors).
func (c *Cluster) Logs(id string, lines int) (string, error) {
	n, err := c.node(id)
	if err != nil {
		return "", err
	}
	return c.logTail(n, lines), nil
}
