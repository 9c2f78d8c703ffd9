package engine

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/workload"
)

// Timings of the topology-aware client. The AWS Advanced JDBC Wrapper refreshes its
// topology every 30 s by default; a rehearsal's cutover happens within a second of
// the replica catching up, so the topology is read four times a second here, over a
// connection kept for it.
const (
	topologyRefresh = 250 * time.Millisecond
	probeTimeout    = time.Second
	// failoverSpacing lets the failures that one lost writer causes across a pool
	// share one failover rather than each run its own.
	failoverSpacing = 250 * time.Millisecond
)

// topology is one application instance's view of the cluster when its client fails
// over through the topology, as the AWS Advanced JDBC Wrapper does: it learns the
// cluster's instances from the writer (the replicas streaming from it, named after
// the writer instance's own name, as the wrapper builds instance endpoints from a
// pattern), and when a writer connection is lost it asks each instance directly
// whether it is the writer and sends the writer endpoint's new connections to that
// instance's address, bypassing DNS. Everything else resolves as usual.
type topology struct {
	res        *resolver
	writerHost string // the writer endpoint's name, as in the DSN
	readerHost string // the reader endpoint's name
	base       pgx.ConnConfig
	stop       chan struct{}
	done       chan struct{}

	mu        sync.Mutex
	suffix    string          // ".<id>.<zone>." of the instance names
	instances map[string]bool // instance names (first labels)
	writer    string          // the writer instance's address, once failed over
	reader    string          // the instance the reader endpoint maps to, once failed over
	pools     []*pgxpool.Pool // the pools whose connections a failover replaces
	lastFail  time.Time
	failovers int
}

// newTopology starts a topology for the writer endpoint of cfg (a parsed writer
// DSN) and the reader endpoint readerHost, resolving through res; it reads the
// topology until close.
func newTopology(cfg *pgx.ConnConfig, readerHost string, res *resolver) *topology {
	t := &topology{res: res, writerHost: strings.ToLower(cfg.Host), readerHost: strings.ToLower(readerHost), base: *cfg,
		instances: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go t.refresher()
	return t
}

func (t *topology) close() {
	select {
	case <-t.stop:
	default:
		close(t.stop)
		<-t.done
	}
}

// lookup is the instance's LookupFunc: the writer and reader endpoints map to the
// instances found by the last failover; every other name, and the endpoints before
// any failover, resolve through DNS as the client's cache says.
func (t *topology) lookup(ctx context.Context, host string) ([]string, error) {
	t.mu.Lock()
	var mapped string
	switch {
	case strings.EqualFold(host, t.writerHost):
		mapped = t.writer
	case strings.EqualFold(host, t.readerHost):
		mapped = t.reader
	}
	t.mu.Unlock()
	if mapped != "" {
		return []string{mapped}, nil
	}
	return t.res.LookupHost(ctx, host)
}

// refresher reads the topology every topologyRefresh until close, over a
// connection to the writer it keeps (and opens again when the writer changes or the
// connection breaks).
func (t *topology) refresher() {
	defer close(t.done)
	tick := time.NewTicker(topologyRefresh)
	defer tick.Stop()
	var conn *pgx.Conn
	var connAddr string
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		addr := t.learnWriter(ctx)
		if conn != nil && (conn.IsClosed() || addr != connAddr) {
			conn.Close(ctx)
			conn = nil
		}
		if conn == nil && addr != "" {
			if c, err := t.connect(ctx, addr); err == nil {
				conn, connAddr = c, addr
			}
		}
		if conn != nil {
			t.learnReplicas(ctx, conn)
		}
		cancel()
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
	}
}

// learnWriter learns the writer instance's name from the writer endpoint's CNAME,
// and returns the writer's address: the failed-over one, else the endpoint's.
func (t *topology) learnWriter(ctx context.Context) string {
	t.mu.Lock()
	addr := t.writer
	t.mu.Unlock()
	a, err := t.res.query(ctx, t.writerHost)
	if err != nil {
		return addr
	}
	if name, suffix, ok := strings.Cut(a.canon, "."); ok && !strings.EqualFold(a.canon, dnsFqdn(t.writerHost)) {
		t.mu.Lock()
		t.suffix = "." + suffix
		t.instances[name] = true
		t.mu.Unlock()
	}
	if addr == "" {
		addr = a.addrs[0]
	}
	return addr
}

// learnReplicas adds the replicas streaming from the writer (pg_stat_replication's
// application names, which are the instances' names).
func (t *topology) learnReplicas(ctx context.Context, conn *pgx.Conn) {
	rows, err := conn.Query(ctx, "SELECT application_name FROM pg_stat_replication WHERE application_name <> ''")
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	t.mu.Lock()
	for _, n := range names {
		t.instances[strings.ToLower(n)] = true
	}
	t.mu.Unlock()
}

// failover asks every known instance directly whether it is the writer, points
// the writer endpoint's new connections at the writer and the reader endpoint's at
// a live standby (the writer when there is none), and replaces the pools'
// connections when that changed. Failures close together share one failover.
func (t *topology) failover(ctx context.Context) {
	t.mu.Lock()
	if time.Since(t.lastFail) < failoverSpacing {
		t.mu.Unlock()
		return
	}
	t.lastFail = time.Now()
	names := make([]string, 0, len(t.instances))
	for n := range t.instances {
		names = append(names, n)
	}
	suffix, oldW, oldR := t.suffix, t.writer, t.reader
	t.mu.Unlock()
	if suffix == "" {
		return
	}
	slices.Sort(names)
	writer, reader := "", ""
	for _, n := range names {
		a, err := t.res.query(ctx, n+suffix)
		if err != nil {
			continue
		}
		conn, err := t.connect(ctx, a.addrs[0])
		if err != nil {
			continue
		}
		var standby bool
		err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby)
		conn.Close(context.WithoutCancel(ctx))
		switch {
		case err != nil:
		case !standby && writer == "":
			writer = a.addrs[0]
		case standby && reader == "":
			reader = a.addrs[0]
		}
	}
	if writer == "" {
		return // no writer yet (a promotion under way): the next failure asks again
	}
	if reader == "" {
		reader = writer
	}
	if writer == oldW && reader == oldR {
		return
	}
	t.mu.Lock()
	t.writer, t.reader = writer, reader
	t.failovers++
	pools := slices.Clone(t.pools)
	t.mu.Unlock()
	for _, p := range pools {
		p.Reset()
	}
}

// connect opens a connection to one instance's address with the client's settings.
func (t *topology) connect(ctx context.Context, addr string) (*pgx.Conn, error) {
	cfg := t.base.Copy()
	cfg.Host = addr
	cfg.Fallbacks = nil
	cfg.LookupFunc = func(_ context.Context, h string) ([]string, error) { return []string{h}, nil }
	cfg.ConnectTimeout = probeTimeout
	return pgx.ConnectConfig(ctx, cfg)
}

func dnsFqdn(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) + "." }

// failoverPool is a pool of a topology-aware client: when an operation on it fails
// because its node went away (a connection error, an administrator shutdown, or a
// read-only answer from a demoted writer), it fails over through the topology before
// it returns the error, which the application then retries (the wrapper raises
// SQLSTATE 08S02 for that).
type failoverPool struct {
	loadgen.Pool
	topo *topology
}

// Run implements loadgen.Pool.
func (p failoverPool) Run(ctx context.Context, op workload.OpFunc, s *workload.Session, r *rand.Rand) (time.Time, error) {
	sent, err := p.Pool.Run(ctx, op, s, r)
	if err != nil {
		switch c, _ := loadgen.Classify(err); c {
		case loadgen.ConnectionRefused, loadgen.ConnectionReset, loadgen.AdminShutdown, loadgen.ReadOnly:
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*probeTimeout)
			p.topo.failover(fctx)
			cancel()
		}
	}
	return sent, err
}

// ReleaseHeld releases the connections sessions still hold when the run ends.
func (p failoverPool) ReleaseHeld() {
	if h, ok := p.Pool.(interface{ ReleaseHeld() }); ok {
		h.ReleaseHeld()
	}
}
