package container

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate/pgsql"
)

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

// dropSlot drops slot on w if it exists and is not in use, bounded even when ctx is
// done; it is cleanup, so errors are ignored.
func (c *Cluster) dropSlot(ctx context.Context, w *node, slot string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = pgsql.DropSlot(dctx, c.on(w), slot)
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

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// waitReplayed polls n, on conn, every switchPoll until it has replayed past lsn.
func (c *Cluster) waitReplayed(ctx context.Context, n *node, conn *pgx.Conn, lsn string) error {
	if err := pgsql.WaitReplayed(ctx, pgsql.ConnQuery(conn), lsn, switchPoll); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNode, n.id, err)
	}
	return nil
}

// promote promotes n on conn (a connection to it; nil opens one) and returns how
// long the promotion took.
func (c *Cluster) promote(ctx context.Context, n *node, conn *pgx.Conn) (time.Duration, error) {
	if conn == nil {
		var err error
		if conn, err = c.connect(ctx, n, "postgres"); err != nil {
			return 0, fmt.Errorf("container: promote %s: %w", n.id, err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
	}
	took, err := pgsql.Promote(ctx, pgsql.ConnQuery(conn), switchPoll, 60*time.Second)
	if err != nil {
		return took, fmt.Errorf("%w: promote %s: %w", ErrNode, n.id, err)
	}
	return took, nil
}
