// Package container is the container target of rehearse: a primary/replica
// PostgreSQL cluster of Docker containers, created with testcontainers-go on a
// private Docker network of its own, with streaming replication between the
// containers. It implements migrate.Provider, migrate.Crasher and
// migrate.NetworkCutter, so the same cutover plan as the local target runs against
// it, with both endpoint modes (migrate/endpoint). A crash kills the writer's
// container; a network cut disconnects it from the run's network.
//
// The load reaches the containers only through ports published on 127.0.0.1 (and
// the endpoints in front of them); replication stays on the run's network. Every
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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/endpoint"
	"github.com/rehearse-dev/rehearse/migrate/pgsql"
)

// cleanupTimeout bounds Close's removal of containers and the network when the
// caller's context is already done.
const cleanupTimeout = 2 * time.Minute

// node is one PostgreSQL container.
type node struct {
	id       string // node1, node2, ...; also its network alias and cluster_name
	c        testcontainers.Container
	hostPort int  // published on 127.0.0.1
	down     bool // killed (Crash) or stopped (Switchover): not serving
	cut      bool // disconnected from the run's network
	// crashed is set when the node was killed rather than stopped cleanly: it may have
	// diverged from the new writer and rejoins through pg_rewind.
	crashed bool
}

func (n *node) addr() string { return "127.0.0.1:" + strconv.Itoa(n.hostPort) }

// Cluster is a PostgreSQL cluster of containers behind writer and reader endpoints.
type Cluster struct {
	cfg        Config
	log        io.Writer
	runID      string
	rehearsePG bool // the image has the rehearse-pg entrypoint
	cli        *testcontainers.DockerClient
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
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		cfg.RunID = time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b)
	}
	cli, err := dockerClient(ctx)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, log: cfg.Log, runID: cfg.RunID, cli: cli, nodes: map[string]*node{}, next: 1,
		netName: "rehearse-" + cfg.RunID}
	ok := false
	defer func() {
		if !ok {
			_ = c.Close(ctx)
		}
	}()

	found, rpg, err := imageInfo(ctx, cli, cfg.Image)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: %s is not in the local Docker engine and cannot be pulled here; build %s with `make image`, or see ResolveImage", ErrImageNotFound, cfg.Image, BuiltImage)
	}
	c.rehearsePG = rpg

	// The network, through testcontainers so it carries its session labels too.
	prov, err := testcontainers.NewDockerProvider(testcontainers.WithLogger(logger{c.log}))
	if err != nil {
		return nil, fmt.Errorf("container: docker provider: %w", err)
	}
	defer prov.Close()
	//nolint:staticcheck // NetworkRequest is the provider-level API; network.New cannot take a logger.
	nw, err := prov.CreateNetwork(ctx, testcontainers.NetworkRequest{
		Name: c.netName, Driver: "bridge", CheckDuplicate: true,
		Labels: c.labels(""),
	})
	if err != nil {
		return nil, fmt.Errorf("container: create network %s: %w", c.netName, err)
	}
	c.netID = nw.(*testcontainers.DockerNetwork).ID
	fmt.Fprintf(c.log, "network %s created (run %s, image %s)\n", c.netName, c.runID, cfg.Image)

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
	newEps := cfg.NewEndpoints
	if newEps == nil {
		newEps = func(ctx context.Context, writer string) (Endpoints, error) {
			ec := cfg.Endpoint
			ec.Writer, ec.Readers, ec.Log = writer, nil, c.log
			return endpoint.New(ctx, ec)
		}
	}
	eps, err := newEps(ctx, n.addr())
	if err != nil {
		return nil, fmt.Errorf("container: start %s endpoints: %w", cfg.Endpoint.Mode, err)
	}
	c.mu.Lock()
	c.eps = eps
	c.mu.Unlock()
	ok = true
	fmt.Fprintf(c.log, "container cluster ready: writer %s at %s, writer endpoint %s\n", id, n.addr(), eps.WriterAddr())
	return c, nil
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

func (c *Cluster) add(n *node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[n.id] = n
	c.order = append(c.order, n.id)
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

// RunID returns the run's ID, the value of LabelRun on everything it created.
func (c *Cluster) RunID() string { return c.runID }

// Network returns the name of the run's Docker network.
func (c *Cluster) Network() string { return c.netName }

// Image returns the image the nodes run.
func (c *Cluster) Image() string { return c.cfg.Image }

// WriterEndpoint and ReaderEndpoint are the 127.0.0.1:port the load connects to.
func (c *Cluster) WriterEndpoint() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.eps.WriterAddr()
}

// ReaderEndpoint is the reader endpoint's 127.0.0.1:port.
func (c *Cluster) ReaderEndpoint() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.eps.ReaderAddr()
}

// DSN returns a connection URL to database db through addr (an endpoint or a node's
// published address).
func (c *Cluster) DSN(addr, db string) string {
	auth := Superuser
	if c.cfg.Password != "" {
		auth += ":" + urlEscape(c.cfg.Password)
	}
	return "postgres://" + auth + "@" + addr + "/" + db + "?sslmode=disable"
}

func urlEscape(s string) string {
	var b strings.Builder
	for _, r := range []byte(s) {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.IndexByte("-._~", r) >= 0 {
			b.WriteByte(r)
		} else {
			fmt.Fprintf(&b, "%%%02X", r)
		}
	}
	return b.String()
}

// NodeAddr returns a node's published 127.0.0.1:port.
func (c *Cluster) NodeAddr(id string) (string, error) {
	n, err := c.node(id)
	if err != nil {
		return "", err
	}
	return n.addr(), nil
}

// freePort asks the kernel for a free 127.0.0.1 port; Docker may lose the race for
// it, and startNode then retries with another.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("container: no free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startNode creates and starts node id's container, publishing its port on a fixed
// 127.0.0.1 port (so its address survives restarts), and waits until it accepts
// connections. extraEnv adds to the shared environment (replica mode).
func (c *Cluster) startNode(ctx context.Context, id string, extraEnv map[string]string) (*node, error) {
	env := c.cfg.env()
	for k, v := range extraEnv {
		env[k] = v
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		req := testcontainers.GenericContainerRequest{
			ContainerRequest: testcontainers.ContainerRequest{
				Image:          c.cfg.Image,
				Name:           "rehearse-" + c.runID + "-" + id,
				Env:            env,
				Cmd:            c.cfg.serverArgs(id),
				Labels:         c.labels(id),
				ExposedPorts:   []string{fmt.Sprintf("%d/tcp", pgPort)},
				Networks:       []string{c.netName},
				NetworkAliases: map[string][]string{c.netName: {id}},
				HostConfigModifier: func(hc *container.HostConfig) {
					hc.PortBindings = network.PortMap{
						network.MustParsePort(fmt.Sprintf("%d/tcp", pgPort)): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(port)}},
					}
				},
			},
			Started: true,
			Logger:  logger{c.log},
		}
		ctr, err := testcontainers.GenericContainer(ctx, req)
		if err != nil {
			if ctr != nil {
				c.removeContainer(ctx, ctr)
			}
			lastErr = fmt.Errorf("%w: start container for %s: %w", ErrNode, id, err)
			if strings.Contains(err.Error(), "port is already allocated") || strings.Contains(err.Error(), "address already in use") {
				continue
			}
			return nil, lastErr
		}
		n := &node{id: id, c: ctr, hostPort: port}
		fmt.Fprintf(c.log, "container %s started for %s, published on %s\n", ctr.GetContainerID()[:12], id, n.addr())
		if err := c.waitReady(ctx, n); err != nil {
			c.removeContainer(ctx, ctr)
			return nil, err
		}
		return n, nil
	}
	return nil, lastErr
}

// removeContainer force-removes a container, bounded even when ctx is done.
func (c *Cluster) removeContainer(ctx context.Context, ctr testcontainers.Container) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if _, err := c.cli.ContainerRemove(rctx, ctr.GetContainerID(), client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
		fmt.Fprintf(c.log, "warning: remove container %.12s: %v\n", ctr.GetContainerID(), err)
	}
}

// connect opens a connection to db on node n.
func (c *Cluster) connect(ctx context.Context, n *node, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(c.DSN(n.addr(), db))
	if err != nil {
		return nil, err
	}
	cfg.ConnectTimeout = 3 * time.Second
	return pgx.ConnectConfig(ctx, cfg)
}

// queryRow runs one query on node n's postgres database and scans its row.
func (c *Cluster) queryRow(ctx context.Context, n *node, sql string, args []any, dest ...any) error {
	conn, err := c.connect(ctx, n, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, sql, args...).Scan(dest...)
}

// on binds queryRow to node n, for the shared pgsql helpers.
func (c *Cluster) on(n *node) pgsql.QueryRow {
	return func(ctx context.Context, sql string, args []any, dest ...any) error {
		return c.queryRow(ctx, n, sql, args, dest...)
	}
}

func (c *Cluster) exec(ctx context.Context, n *node, sql string) error {
	conn, err := c.connect(ctx, n, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// waitReady polls until n accepts connections, failing early (with the container's
// log) when the container exits.
func (c *Cluster) waitReady(ctx context.Context, n *node) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StartTimeout)
	defer cancel()
	tick := time.NewTicker(c.cfg.PollInterval * 2)
	defer tick.Stop()
	for {
		var one int
		err := c.queryRow(ctx, n, "SELECT 1", nil, &one)
		if err == nil {
			return nil
		}
		if st, serr := n.c.State(ctx); serr == nil && !st.Running {
			return fmt.Errorf("%w: %s's container exited (status %d) before accepting connections:\n%s", ErrNode, n.id, st.ExitCode, c.logTail(n, 30))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s does not accept connections on %s (last error %v): %w\n%s", ErrNode, n.id, n.addr(), err, ctx.Err(), c.logTail(n, 30))
		case <-tick.C:
		}
	}
}

// logTail returns the last lines of n's container log.
func (c *Cluster) logTail(n *node, lines int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := c.cli.ContainerLogs(ctx, n.c.GetContainerID(), client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(lines)})
	if err != nil {
		return "  (no container log: " + err.Error() + ")"
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
	// The log stream is multiplexed (8-byte frame headers); keep printable text.
	var out strings.Builder
	for len(b) >= 8 {
		size := int(b[4])<<24 | int(b[5])<<16 | int(b[6])<<8 | int(b[7])
		b = b[8:]
		if size > len(b) {
			size = len(b)
		}
		out.Write(b[:size])
		b = b[size:]
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(out.String(), "\n"), "\n", "\n  ")
}

// run executes cmd in n's container and returns its combined output; a non-zero
// exit status is an error carrying the output.
func (c *Cluster) run(ctx context.Context, n *node, cmd ...string) (string, error) {
	code, r, err := n.c.Exec(ctx, cmd, tcexec.Multiplexed())
	var out []byte
	if r != nil {
		out, _ = io.ReadAll(r)
	}
	if err != nil {
		return string(out), fmt.Errorf("%w: %s: exec %s: %w", ErrNode, n.id, strings.Join(cmd, " "), err)
	}
	if code != 0 {
		return string(out), fmt.Errorf("%w: %s: %s exited %d:\n  %s", ErrNode, n.id, strings.Join(cmd, " "), code,
			strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", "\n  "))
	}
	return string(out), nil
}

func (c *Cluster) needRehearsePG(op string) error {
	if !c.rehearsePG {
		return fmt.Errorf("%w: %s needs the rehearse-pg commands of %s (make image); %s has none", ErrUnsupportedImage, op, BuiltImage, c.cfg.Image)
	}
	return nil
}

// createDatabase creates Database on the writer (both images start with only the
// postgres database unless POSTGRES_DB is set).
func (c *Cluster) createDatabase(ctx context.Context, n *node) error {
	var exists bool
	if err := c.queryRow(ctx, n, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", []any{Database}, &exists); err != nil {
		return fmt.Errorf("container: %s: %w", n.id, err)
	}
	if exists {
		return nil
	}
	if err := c.exec(ctx, n, "CREATE DATABASE "+Database); err != nil {
		return fmt.Errorf("container: create database %s on %s: %w", Database, n.id, err)
	}
	return nil
}

// Kind implements migrate.Provider.
func (c *Cluster) Kind() string { return "container" }

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
		t.Nodes = append(t.Nodes, migrate.Node{ID: id, Role: role, Addr: n.addr(), Version: "", Class: c.cfg.Image})
	}
	if c.eps != nil {
		t.WriterEndpoint, t.ReaderEndpoint = c.eps.WriterAddr(), c.eps.ReaderAddr()
	}
	w := c.nodes[c.writer]
	c.mu.Unlock()
	if w != nil && !w.down {
		var v string
		if err := c.queryRow(ctx, w, "SHOW server_version", nil, &v); err == nil {
			for i := range t.Nodes {
				t.Nodes[i].Version = v
			}
		}
	}
	return t, nil
}

// readers lists the published addresses of the serving replicas.
func (c *Cluster) readers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range c.order {
		if n := c.nodes[id]; id != c.writer && !n.down && !n.cut {
			out = append(out, n.addr())
		}
	}
	return out
}

// Preflight implements migrate.Provider: the writer is a primary, WAL can be rewound
// and streamed, and slots are available.
func (c *Cluster) Preflight(ctx context.Context) ([]migrate.Check, error) {
	w := c.writerNode()
	checks, err := pgsql.Preflight(ctx, c.on(w), w.id)
	if err != nil {
		return nil, fmt.Errorf("container: %w", err)
	}
	return append(checks, migrate.Check{Name: "image has the rehearse-pg entrypoint (replicas, switchover, rejoin)", OK: c.rehearsePG, Detail: c.cfg.Image}), nil
}

// PlanReplica implements migrate.Provider.
func (c *Cluster) PlanReplica(ctx context.Context) (map[string]any, error) {
	w := c.writerNode()
	var size int64
	if err := c.queryRow(ctx, w, "SELECT sum(pg_database_size(oid))::bigint FROM pg_database", nil, &size); err != nil {
		return nil, fmt.Errorf("container: %s: %w", w.id, err)
	}
	c.mu.Lock()
	name := "node" + strconv.Itoa(c.next)
	c.mu.Unlock()
	return map[string]any{
		"would_run":  fmt.Sprintf("container %s from %s: pg_basebackup -R -C -S %s -X stream from %s over network %s", name, c.cfg.Image, name, w.id, c.netName),
		"node":       name,
		"copy_bytes": size,
		"possible":   c.rehearsePG,
	}, nil
}

// CreateReplica implements migrate.Provider: a new container clones the writer
// with pg_basebackup (slot named after the node) over the run's network, starts as
// a standby, and joins the reader endpoint once the writer sees it streaming.
func (c *Cluster) CreateReplica(ctx context.Context) (migrate.Node, error) {
	if err := c.needRehearsePG("CreateReplica"); err != nil {
		return migrate.Node{}, err
	}
	w := c.writerNode()
	id := c.nextID()
	n, err := c.startNode(ctx, id, map[string]string{
		"REHEARSE_PRIMARY_HOST": w.id,
		"REHEARSE_PRIMARY_PORT": strconv.Itoa(pgPort),
		"REHEARSE_SLOT":         id,
	})
	if err != nil {
		c.dropSlot(ctx, w, id)
		return migrate.Node{}, err
	}
	if err := c.waitStreaming(ctx, w, id); err != nil {
		c.removeContainer(ctx, n.c)
		c.dropSlot(ctx, w, id)
		return migrate.Node{}, err
	}
	c.add(n)
	if err := c.eps.SetReaders(ctx, c.readers()); err != nil {
		return migrate.Node{}, err
	}
	return migrate.Node{ID: id, Role: "reader", Addr: n.addr(), Class: c.cfg.Image}, nil
}

func (c *Cluster) dropSlot(ctx context.Context, w *node, slot string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	conn, err := c.connect(dctx, w, "postgres")
	if err != nil {
		return
	}
	defer conn.Close(dctx)
	_, _ = conn.Exec(dctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", slot)
}

// waitStreaming polls the writer until standby name streams from it.
func (c *Cluster) waitStreaming(ctx context.Context, w *node, name string) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StartTimeout)
	defer cancel()
	if err := pgsql.WaitStreaming(ctx, c.on(w), name, c.cfg.PollInterval); err != nil {
		n, _ := c.node(name)
		tail := ""
		if n != nil {
			tail = "\n" + c.logTail(n, 20)
		}
		return fmt.Errorf("%w: from %s: %w%s", ErrNode, w.id, err, tail)
	}
	return nil
}

// Lag implements migrate.Provider, from the writer's pg_stat_replication.
func (c *Cluster) Lag(ctx context.Context, replica string) (migrate.Lag, error) {
	w := c.writerNode()
	l, err := pgsql.Lag(ctx, c.on(w), replica)
	switch {
	case errors.Is(err, pgsql.ErrNotStreaming):
		return l, fmt.Errorf("%w: %s is not connected to writer %s", ErrNode, replica, w.id)
	case err != nil:
		return l, fmt.Errorf("container: lag of %s: %w", replica, err)
	}
	return l, nil
}

// SetSynchronous implements migrate.Synchronizer: replica becomes the writer's
// synchronous standby ("" turns it off), so a crash failover loses no acknowledged
// write.
func (c *Cluster) SetSynchronous(ctx context.Context, replica string) error {
	w := c.writerNode()
	if err := c.exec(ctx, w, "ALTER SYSTEM SET synchronous_standby_names = "+quoteLiteral(replica)); err != nil {
		return fmt.Errorf("container: synchronous standby on %s: %w", w.id, err)
	}
	return c.exec(ctx, w, "SELECT pg_reload_conf()")
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// SetForwarding implements migrate.Provider by emulation at the endpoints: while
// on, reader-endpoint connections are served by the writer.
func (c *Cluster) SetForwarding(ctx context.Context, on bool) error {
	if err := c.eps.SetForwarding(ctx, on); err != nil {
		return err
	}
	c.mu.Lock()
	c.fwd = on
	c.mu.Unlock()
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Switchover implements migrate.Provider: hold the endpoints, fast-stop the
// writer's server (its container stays up), wait until target has replayed past the
// writer's final shutdown checkpoint, and promote target. The endpoints stay held
// until Redirect.
func (c *Cluster) Switchover(ctx context.Context, target string) (migrate.Promotion, error) {
	if err := c.needRehearsePG("Switchover"); err != nil {
		return migrate.Promotion{}, err
	}
	old := c.writerNode()
	t, err := c.node(target)
	if err != nil {
		return migrate.Promotion{}, err
	}
	if t == old {
		return migrate.Promotion{}, fmt.Errorf("%w: %s already is", ErrWriter, target)
	}
	p := migrate.Promotion{From: old.id, To: target, Detail: map[string]any{}}
	if lag, err := c.Lag(ctx, target); err == nil {
		p.LagBytes, p.LagTime = lag.Bytes, lag.Time
	}
	start := time.Now()
	if err := c.eps.Hold(ctx); err != nil {
		return p, fmt.Errorf("container: hold endpoints: %w", err)
	}
	p.Detail["hold_ms"] = ms(time.Since(start))
	stopStart := time.Now()
	out, err := c.run(ctx, old, "rehearse-pg", "stop")
	if err != nil {
		return p, fmt.Errorf("container: stop writer %s: %w", old.id, err)
	}
	old.down = true
	p.Detail["stop_ms"] = ms(time.Since(stopStart))
	final := lastLine(out)
	if final == "" {
		return p, fmt.Errorf("%w: %s: rehearse-pg stop printed no checkpoint LSN", ErrNode, old.id)
	}
	p.FinalLSN = final
	waitStart := time.Now()
	if err := c.waitReplayed(ctx, t, final); err != nil {
		return p, err
	}
	p.Detail["replay_wait_ms"] = ms(time.Since(waitStart))
	if p.Promote, err = c.promote(ctx, t); err != nil {
		return p, err
	}
	var lsn string
	if err := c.queryRow(ctx, t, "SELECT pg_current_wal_lsn()::text", nil, &lsn); err == nil {
		p.PromotedLSN = lsn
	}
	c.mu.Lock()
	c.writer = target
	c.mu.Unlock()
	p.Stall = time.Since(start)
	return p, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// waitReplayed polls until n has replayed past lsn.
func (c *Cluster) waitReplayed(ctx context.Context, n *node, lsn string) error {
	conn, err := c.connect(ctx, n, "postgres")
	if err != nil {
		return fmt.Errorf("container: %s: %w", n.id, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	q := func(ctx context.Context, sql string, args []any, dest ...any) error {
		return conn.QueryRow(ctx, sql, args...).Scan(dest...)
	}
	if err := pgsql.WaitReplayed(ctx, q, lsn, 5*time.Millisecond); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNode, n.id, err)
	}
	return nil
}

// promote promotes n with pg_promote (waiting for it) and returns how long it took.
func (c *Cluster) promote(ctx context.Context, n *node) (time.Duration, error) {
	start := time.Now()
	var ok bool
	if err := c.queryRow(ctx, n, "SELECT pg_promote(true, 60)", nil, &ok); err != nil {
		return time.Since(start), fmt.Errorf("container: promote %s: %w", n.id, err)
	}
	if !ok {
		return time.Since(start), fmt.Errorf("%w: %s did not finish promotion within 60 s", ErrNode, n.id)
	}
	return time.Since(start), nil
}

// Redirect implements migrate.Provider: the endpoints reach writer, and it returns
// once a connection through the writer endpoint lands on writer as a primary.
func (c *Cluster) Redirect(ctx context.Context, writer string) (map[string]any, error) {
	n, err := c.node(writer)
	if err != nil {
		return nil, err
	}
	detail := map[string]any{"writer": writer, "writer_addr": n.addr()}
	start := time.Now()
	if err := c.eps.Release(ctx, n.addr(), c.readers()); err != nil {
		return detail, err
	}
	detail["release_ms"] = ms(time.Since(start))
	if err := c.probeWriterEndpoint(ctx, writer); err != nil {
		return detail, err
	}
	detail["reached_ms"] = ms(time.Since(start))
	return detail, nil
}

// probeWriterEndpoint connects through the writer endpoint until it reaches node
// want (its cluster_name) as a primary.
func (c *Cluster) probeWriterEndpoint(ctx context.Context, want string) error {
	cfg, err := pgx.ParseConfig(c.DSN(c.WriterEndpoint(), "postgres"))
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		conn, err := pgx.ConnectConfig(cctx, cfg)
		var name string
		var rec bool
		if err == nil {
			err = conn.QueryRow(cctx, "SELECT current_setting('cluster_name'), pg_is_in_recovery()").Scan(&name, &rec)
			conn.Close(context.WithoutCancel(ctx))
		}
		cancel()
		if err == nil && !rec && name == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: the writer endpoint does not reach %s as a primary (reached %q, in recovery %v, last error %v): %w", ErrNode, want, name, rec, err, ctx.Err())
		case <-tick.C:
		}
	}
}

// Rejoin implements migrate.Provider: the former writer follows the current one.
// A killed container is restarted held (its server does not start as a second
// primary); the current writer checkpoints (so pg_rewind sees its new timeline) and
// gets a slot for the node; `rehearse-pg rejoin` runs pg_rewind -R (crash recovery
// first when the node was killed) and starts the server as a standby.
func (c *Cluster) Rejoin(ctx context.Context, id string) (map[string]any, error) {
	if err := c.needRehearsePG("Rejoin"); err != nil {
		return nil, err
	}
	n, err := c.node(id)
	if err != nil {
		return nil, err
	}
	w := c.writerNode()
	if n == w {
		return nil, fmt.Errorf("%w: %s cannot follow itself", ErrWriter, id)
	}
	// A writer that was stopped cleanly in a planned switchover has not diverged: it
	// only needs the standby settings. After a crash or a cut it may hold WAL the new
	// writer never got, and pg_rewind reads the just-promoted source's timeline from
	// its control file, so that needs a CHECKPOINT first (an I/O burst the load feels).
	rewind := n.crashed || n.cut
	if n.cut {
		if err := c.Restore(ctx, id); err != nil {
			return nil, err
		}
	}
	detail := map[string]any{"node": id, "follows": w.id}
	st, err := n.c.State(ctx)
	if err != nil {
		return nil, fmt.Errorf("container: state of %s: %w", id, err)
	}
	if !st.Running {
		// Hold the server before the container starts, so it does not come up as a
		// primary; Docker copies into stopped containers.
		if err := n.c.CopyToContainer(ctx, []byte("restarted by rehearse for rejoin\n"), "/var/lib/postgresql/rehearse.hold", 0o644); err != nil {
			return detail, fmt.Errorf("container: hold %s before restart: %w", id, err)
		}
		if _, err := c.cli.ContainerStart(ctx, n.c.GetContainerID(), client.ContainerStartOptions{}); err != nil {
			return detail, fmt.Errorf("container: restart %s: %w", id, err)
		}
		detail["restarted"] = true
	}
	if rewind {
		if err := c.exec(ctx, w, "CHECKPOINT"); err != nil {
			return detail, fmt.Errorf("container: checkpoint on %s: %w", w.id, err)
		}
	}
	if err := c.exec(ctx, w, "SELECT pg_create_physical_replication_slot("+quoteLiteral(id)+") WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = "+quoteLiteral(id)+")"); err != nil {
		return detail, fmt.Errorf("container: slot for %s on %s: %w", id, w.id, err)
	}
	cmd := []string{"rehearse-pg", "rejoin", w.id, strconv.Itoa(pgPort), id}
	if !rewind {
		cmd = append(cmd, "--no-rewind")
	}
	out, err := c.run(ctx, n, cmd...)
	detail["rewind"] = strings.TrimSpace(out)
	detail["rewound"] = !strings.Contains(out, "no rewind required")
	if err != nil {
		return detail, err
	}
	if err := c.waitReady(ctx, n); err != nil {
		return detail, err
	}
	if err := c.waitStreaming(ctx, w, id); err != nil {
		return detail, err
	}
	n.down, n.crashed = false, false
	if err := c.eps.SetReaders(ctx, c.readers()); err != nil {
		return detail, err
	}
	return detail, nil
}

// Remove implements migrate.Provider: take the node out of the reader endpoint,
// remove its container and drop its slot on the writer.
func (c *Cluster) Remove(ctx context.Context, id string) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if n == c.writerNode() {
		return fmt.Errorf("%w: refusing to remove %s", ErrWriter, id)
	}
	c.mu.Lock()
	delete(c.nodes, id)
	for i, x := range c.order {
		if x == id {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	if err := c.eps.SetReaders(ctx, c.readers()); err != nil {
		return err
	}
	c.removeContainer(ctx, n.c)
	w := c.writerNode()
	if !w.down {
		c.dropSlot(ctx, w, id)
	}
	return nil
}

// Recover implements migrate.Provider: bring writer back after a switchover failed
// before the writer changed (start its server, or its container after a crash) and
// release the endpoints to it.
func (c *Cluster) Recover(ctx context.Context, writer string) error {
	n, err := c.node(writer)
	if err != nil {
		return err
	}
	if n.cut {
		if err := c.Restore(ctx, writer); err != nil {
			return err
		}
	}
	st, err := n.c.State(ctx)
	if err != nil {
		return fmt.Errorf("container: state of %s: %w", writer, err)
	}
	switch {
	case !st.Running:
		if _, err := c.cli.ContainerStart(ctx, n.c.GetContainerID(), client.ContainerStartOptions{}); err != nil {
			return fmt.Errorf("container: restart %s: %w", writer, err)
		}
	case n.down && c.rehearsePG:
		if _, err := c.run(ctx, n, "rehearse-pg", "start"); err != nil {
			return err
		}
	}
	if err := c.waitReady(ctx, n); err != nil {
		return err
	}
	var rec bool
	if err := c.queryRow(ctx, n, "SELECT pg_is_in_recovery()", nil, &rec); err != nil {
		return fmt.Errorf("container: %s: %w", writer, err)
	}
	if rec {
		return fmt.Errorf("%w: %s is a standby; it cannot take writes again without a promotion", ErrNode, writer)
	}
	n.down = false
	c.mu.Lock()
	c.writer = writer
	c.mu.Unlock()
	return c.eps.Release(ctx, n.addr(), c.readers())
}

// Crash implements migrate.Crasher: SIGKILL the node's container (every process in
// it dies at once, as in a host crash of that node).
func (c *Cluster) Crash(ctx context.Context, id string) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if id == c.writerID() {
		if err := c.eps.Hold(ctx); err != nil {
			return err
		}
	}
	if _, err := c.cli.ContainerKill(ctx, n.c.GetContainerID(), client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
		return fmt.Errorf("container: kill %s: %w", id, err)
	}
	n.down, n.crashed = true, true
	fmt.Fprintf(c.log, "killed %s's container\n", id)
	return nil
}

// Failover implements migrate.Crasher: promote target after the writer died, with
// whatever it has replayed.
func (c *Cluster) Failover(ctx context.Context, target string) (migrate.Promotion, error) {
	t, err := c.node(target)
	if err != nil {
		return migrate.Promotion{}, err
	}
	p := migrate.Promotion{From: c.writerID(), To: target, Detail: map[string]any{}}
	if bytes, lsn, err := pgsql.StandbyLag(ctx, c.on(t)); err == nil {
		p.LagBytes, p.FinalLSN = bytes, lsn
	}
	start := time.Now()
	if p.Promote, err = c.promote(ctx, t); err != nil {
		return p, err
	}
	var lsn string
	if err := c.queryRow(ctx, t, "SELECT pg_current_wal_lsn()::text", nil, &lsn); err == nil {
		p.PromotedLSN = lsn
	}
	c.mu.Lock()
	c.writer = target
	c.mu.Unlock()
	p.Stall = time.Since(start)
	return p, nil
}

// Cut implements migrate.NetworkCutter: disconnect the node's container from the
// run's network. Its replication and its published port stop working; the
// processes inside keep running.
func (c *Cluster) Cut(ctx context.Context, id string) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if _, err := c.cli.NetworkDisconnect(ctx, c.netID, client.NetworkDisconnectOptions{Container: n.c.GetContainerID(), Force: true}); err != nil {
		return fmt.Errorf("container: disconnect %s from %s: %w", id, c.netName, err)
	}
	n.cut = true
	fmt.Fprintf(c.log, "cut %s off network %s\n", id, c.netName)
	return nil
}

// Restore implements migrate.NetworkCutter: reconnect the node (with its alias)
// and wait until its published port answers again.
func (c *Cluster) Restore(ctx context.Context, id string) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if _, err := c.cli.NetworkConnect(ctx, c.netID, client.NetworkConnectOptions{
		Container:      n.c.GetContainerID(),
		EndpointConfig: &network.EndpointSettings{Aliases: []string{id}},
	}); err != nil {
		return fmt.Errorf("container: reconnect %s to %s: %w", id, c.netName, err)
	}
	n.cut = false
	fmt.Fprintf(c.log, "restored %s on network %s\n", id, c.netName)
	if n.down {
		return nil
	}
	return c.waitReady(ctx, n)
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
	c.mu.Unlock()
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
