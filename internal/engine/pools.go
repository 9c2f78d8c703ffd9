package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/internal/netconn"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// pools are the connection pools of the load's application instances, as app
// servers hold them: each instance has a writer pool and a reader pool (the same pool
// when the target has one endpoint), with the client's settings.
type pools struct {
	instances []instancePools
	size      int
}

type instancePools struct {
	writer, reader *pgxpool.Pool
	topo           *topology // the topology-aware client's view, or nil
}

// writer is a writer pool for the rehearsal's own work: setup, the validate step's
// health query, the server's version.
func (p *pools) writer() *pgxpool.Pool { return p.instances[0].writer }

func (p *pools) close() {
	for _, in := range p.instances {
		if in.topo != nil {
			in.topo.close()
		}
		in.writer.Close()
		if in.reader != in.writer {
			in.reader.Close()
		}
	}
}

// connections is how many connections the pools hold when full.
func (p *pools) connections() int {
	n := 0
	for _, in := range p.instances {
		n += p.size
		if in.reader != in.writer {
			n += p.size
		}
	}
	return n
}

func (p *pools) serverVersion(ctx context.Context) (string, error) {
	var v string
	err := p.writer().QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v, err
}

// poolSize is how many connections each pool holds: the client's pool size in the
// open model, the connections of the closed one (one pool per endpoint).
func poolSize(sc *scenarios.Scenario) int {
	if sc.Load.Model == "closed" {
		return sc.Load.Connections
	}
	return sc.Client.PoolSize
}

// instances is how many application instances hold pools (one in the closed model,
// which is pgbench's single client process).
func instances(sc *scenarios.Scenario) int {
	if sc.Load.Model == "closed" {
		return 1
	}
	return max(sc.Client.AppInstances, 1)
}

// connect opens every instance's writer and reader pools and proves they work,
// turning the usual failures into errors that say what to do.
func connect(ctx context.Context, tgt Target, sc *scenarios.Scenario) (*pools, error) {
	p := &pools{size: poolSize(sc)}
	wdsn, rdsn := tgt.Endpoints()
	if tgt.Kind() == scenarios.TargetDSN && tgt.EndpointMode() == scenarios.EndpointDirect {
		// Validation checked the servers rehearse starts; an existing server's
		// room is known only now.
		pools := instances(sc)
		if rdsn != wdsn {
			pools *= 2
		}
		if err := checkRoom(ctx, wdsn, pools, p.size, tgt); err != nil {
			return nil, err
		}
	}
	for range instances(sc) {
		// Each instance resolves names with its own cache, as separate processes do.
		var lookup pgconn.LookupFunc
		var topo *topology
		if server := tgt.DNSServer(); server != "" {
			r, err := newResolver(server, sc.Client.DNSCacheTTL)
			if err != nil {
				p.close()
				return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
			}
			lookup = r.LookupHost
			if sc.Client.Failover == scenarios.FailoverTopology {
				cfg, err := pgx.ParseConfig(wdsn)
				if err != nil {
					p.close()
					return nil, fmt.Errorf("%w: target.dsn: %w", ErrInvalidInput, err)
				}
				rcfg, err := pgx.ParseConfig(rdsn)
				if err != nil {
					p.close()
					return nil, fmt.Errorf("%w: target.dsn: %w", ErrInvalidInput, err)
				}
				topo = newTopology(cfg, rcfg.Host, r)
				lookup = topo.lookup
			}
		}
		writer, err := openPool(ctx, wdsn, p.size, tgt, sc, lookup)
		if err != nil {
			if topo != nil {
				topo.close()
			}
			p.close()
			return nil, err
		}
		in := instancePools{writer: writer, reader: writer, topo: topo}
		if topo != nil {
			topo.pools = append(topo.pools, writer)
		}
		if rdsn != wdsn {
			if in.reader, err = openPool(ctx, rdsn, p.size, tgt, sc, lookup); err != nil {
				if topo != nil {
					topo.close()
				}
				writer.Close()
				p.close()
				return nil, err
			}
			if topo != nil {
				topo.pools = append(topo.pools, in.reader)
			}
		}
		p.instances = append(p.instances, in)
	}
	return p, nil
}

func openPool(ctx context.Context, dsn string, size int, tgt Target, sc *scenarios.Scenario, lookup pgconn.LookupFunc) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, malformedDSN(err)
	}
	cl := sc.Client
	cfg.MaxConns = int32(size)
	cfg.MaxConnLifetime = cl.MaxLifetime.D()
	cfg.MaxConnLifetimeJitter = cfg.MaxConnLifetime / 5
	if sc.Load.Model == "closed" {
		// pgbench keeps its connections: so does the closed loop.
		cfg.MaxConnLifetime, cfg.MaxConnLifetimeJitter = time.Duration(1<<63-1), 0
	}
	cfg.ConnConfig.ConnectTimeout = cl.ConnectTimeout.D()
	cfg.ConnConfig.DialFunc = dialFunc(cl, sc.Load.Model == "closed")
	if lookup != nil {
		cfg.ConnConfig.LookupFunc = lookup
	}
	validate := cl.ValidateOnBorrow
	cfg.ShouldPing = func(_ context.Context, p pgxpool.ShouldPingParams) bool {
		return validate && p.IdleDuration > time.Second
	}
	cfg.ConnConfig.DefaultQueryExecMode = tgt.ExecMode()
	if tgt.EndpointMode() == scenarios.EndpointDirect {
		// Through an endpoint, the server may reject unknown startup parameters
		// (PgBouncer does); directly, name the application for pg_stat_activity.
		if cfg.ConnConfig.RuntimeParams == nil {
			cfg.ConnConfig.RuntimeParams = map[string]string{}
		}
		cfg.ConnConfig.RuntimeParams["application_name"] = "rehearse"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	if err := warm(ctx, pool, size); err != nil {
		pool.Close()
		return nil, describeConnectError(cfg.ConnConfig, int(cfg.MaxConns), err)
	}
	return pool, nil
}

// dialer is the client's socket setup: the connect timeout, keepalives, and
// TCP_USER_TIMEOUT when set, so a silently dropped peer is noticed after it (with
// keepalives probing an idle connection as often) instead of hanging until the
// operation's deadline.
func dialer(cl scenarios.Client) *net.Dialer {
	d := &net.Dialer{Timeout: cl.ConnectTimeout.D()}
	if ut := cl.TCPUserTimeout.D(); ut > 0 {
		idle := max(ut/3, time.Second)
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: idle, Interval: idle, Count: 3}
		d.Control = setUserTimeout(ut)
	}
	return d
}

// dialFunc dials with the client's socket settings. The closed loop's connections
// come from netconn.Dial, so that the load generator may run them on a few threads
// as pgbench does (loadgen, internal/netconn); until it does they are ordinary
// connections.
func dialFunc(cl scenarios.Client, closed bool) pgconn.DialFunc {
	d := dialer(cl)
	if !closed {
		return d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return netconn.Dial(ctx, d, network, addr)
	}
}

// warm opens the pool's connections before the clock starts, so connection set-up is
// not charged to the first operations.
func warm(ctx context.Context, pool *pgxpool.Pool, n int) error {
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var first error
	for range n {
		wg.Go(func() {
			c, err := pool.Acquire(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
				}
				return
			}
			conns = append(conns, c)
		})
	}
	wg.Wait()
	return first
}

// malformedDSN says how to write a DSN that pgx could not parse (pgx masks the
// password when it quotes a DSN in a parse error).
func malformedDSN(err error) error {
	return fmt.Errorf("%w: target.dsn: the DSN is malformed (%v): write it as postgres://USER:PASSWORD@HOST:PORT/DB or as key=value pairs (host=… port=… user=… dbname=…)", ErrInvalidInput, err)
}

// describeConnectError turns the usual connection failures into errors that say
// what to do; want is how many connections were asked for.
func describeConnectError(cfg *pgx.ConnConfig, want int, err error) error {
	where := fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000":
			return fmt.Errorf("%w: PostgreSQL at %s rejected user %q: %s. Check the user and password in the DSN (or ~/.pgpass)", ErrInvalidInput, where, cfg.User, pgErr.Message)
		case "3D000":
			return fmt.Errorf("%w: PostgreSQL at %s has no database %q: create it (createdb %s) or name an existing one in the DSN", ErrInvalidInput, where, cfg.Database, cfg.Database)
		case "53300":
			return fmt.Errorf("PostgreSQL at %s has no free connection slots for a pool of %d: raise max_connections or lower load.pool_size: %w", where, want, err)
		}
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("cannot reach PostgreSQL at %s: connection refused. Is the server running and listening on that address? %w", where, err)
	}
	return fmt.Errorf("cannot connect to PostgreSQL at %s: %w", where, err)
}

// checkRoom refuses, before any pool opens, a load whose pools (pools of size
// connections each) an existing server has no room for: its max_connections less
// superuser_reserved_connections and the connections others hold now.
func checkRoom(ctx context.Context, dsn string, pools, size int, tgt Target) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return malformedDSN(err)
	}
	cfg.DefaultQueryExecMode = tgt.ExecMode()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return describeConnectError(cfg, 1, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var maxConns, reserved, inUse int
	if err := conn.QueryRow(ctx, `SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int,
  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int`).Scan(&maxConns, &reserved, &inUse); err != nil {
		return nil // a server that does not say cannot be checked: the pools' warm-up will tell
	}
	// This connection is one of those in use, and is closed before the pools open.
	room := maxConns - reserved - (inUse - 1)
	if need := pools * size; need > room {
		return fmt.Errorf("%w: the load needs %d pool(s) × client.pool_size %d = %d connections, but the server at %s:%d has room for %d (max_connections %d − superuser_reserved_connections %d − %d in use): lower client.pool_size or client.app_instances, or raise max_connections", ErrInvalidInput,
			pools, size, need, cfg.Host, cfg.Port, room, maxConns, reserved, inUse-1)
	}
	return nil
}
