package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// pools are the connection pools the load uses, like an app server's: writes go to
// writer, reads to reader (the same pool when the target has one endpoint).
type pools struct {
	writer, reader *pgxpool.Pool
	size           int
}

func (p *pools) close() {
	p.writer.Close()
	if p.reader != p.writer {
		p.reader.Close()
	}
}

func (p *pools) serverVersion(ctx context.Context) (string, error) {
	var v string
	err := p.writer.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v, err
}

// poolSize is how many connections each pool holds: the pool size of the open
// model, the connections of the closed one.
func poolSize(sc *scenarios.Scenario) int {
	if sc.Load.Model == "closed" {
		return sc.Load.Connections
	}
	return sc.Load.PoolSize
}

// connect opens the writer and reader pools and proves they work, turning the usual
// failures into errors that say what to do.
func connect(ctx context.Context, tgt Target, sc *scenarios.Scenario) (*pools, error) {
	size := poolSize(sc)
	wdsn, rdsn := tgt.Endpoints()
	writer, err := openPool(ctx, wdsn, size, tgt, sc)
	if err != nil {
		return nil, err
	}
	p := &pools{writer: writer, reader: writer, size: size}
	if rdsn != wdsn {
		if p.reader, err = openPool(ctx, rdsn, size, tgt, sc); err != nil {
			writer.Close()
			return nil, err
		}
	}
	return p, nil
}

func openPool(ctx context.Context, dsn string, size int, tgt Target, sc *scenarios.Scenario) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx masks the password when it quotes a DSN in a parse error.
		return nil, fmt.Errorf("%w: target.dsn: the DSN is malformed (%v): write it as postgres://USER:PASSWORD@HOST:PORT/DB or as key=value pairs (host=… port=… user=… dbname=…)", ErrInvalidInput, err)
	}
	cfg.MaxConns = int32(size)
	cfg.MaxConnLifetime = sc.Load.ConnMaxLifetime.D()
	cfg.MaxConnLifetimeJitter = cfg.MaxConnLifetime / 5
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
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
		return nil, describeConnectError(cfg, err)
	}
	return pool, nil
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

func describeConnectError(cfg *pgxpool.Config, err error) error {
	where := fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000":
			return fmt.Errorf("%w: PostgreSQL at %s rejected user %q: %s. Check the user and password in the DSN (or ~/.pgpass)", ErrInvalidInput, where, cfg.ConnConfig.User, pgErr.Message)
		case "3D000":
			return fmt.Errorf("%w: PostgreSQL at %s has no database %q: create it (createdb %s) or name an existing one in the DSN", ErrInvalidInput, where, cfg.ConnConfig.Database, cfg.ConnConfig.Database)
		case "53300":
			return fmt.Errorf("PostgreSQL at %s has no free connection slots for a pool of %d: raise max_connections or lower load.pool_size: %w", where, int(cfg.MaxConns), err)
		}
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("cannot reach PostgreSQL at %s: connection refused. Is the server running and listening on that address? %w", where, err)
	}
	return fmt.Errorf("cannot connect to PostgreSQL at %s: %w", where, err)
}
