package local

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
	"github.com/rehearse-dev/rehearse/migrate/pgsql"
)

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
	// A checkpoint while the old writer still serves leaves its shutdown checkpoint,
	// inside the stall, little to write.
	cpStart := time.Now()
	if err := old.Checkpoint(ctx); err == nil {
		p.Detail["checkpoint_ms"] = ms(time.Since(cpStart))
	}
	if lag, err := c.Lag(ctx, target); err == nil {
		p.LagBytes, p.LagTime = lag.Bytes, lag.Time
	}
	// The proxy mode's PgBouncers finish their server logins while clients are
	// still served, so the hold's PAUSEs do not wait for them.
	if s, ok := c.eps.(interface{ Settle(context.Context) }); ok {
		s.Settle(ctx)
	}
	// One connection to the target, logged in before the hold: the replay wait,
	// the promotion and the promoted LSN inside the stall make no login.
	tc, err := t.Connect(ctx, "postgres")
	if err != nil {
		return p, err
	}
	defer tc.Close(context.WithoutCancel(ctx))
	onTarget := pgsql.ConnQuery(tc)
	start := time.Now()
	if c.eps != nil {
		if err := c.eps.Hold(ctx); err != nil {
			return p, fmt.Errorf("local: hold endpoints: %w", err)
		}
		p.Detail["hold_ms"] = ms(time.Since(start))
	}
	stopStart := time.Now()
	if err := old.StopFast(ctx); err != nil {
		return p, fmt.Errorf("local: stop writer %s: %w", old.Name(), err)
	}
	p.Detail["stop_ms"] = ms(time.Since(stopStart))
	final, err := old.CheckpointLSN(ctx)
	if err != nil {
		return p, err
	}
	p.FinalLSN = final
	waitStart := time.Now()
	if err := pgsql.WaitReplayed(ctx, onTarget, final, switchPoll); err != nil {
		return p, fmt.Errorf("local: %s: %w", t.Name(), err)
	}
	p.Detail["replay_wait_ms"] = ms(time.Since(waitStart))
	if p.Promote, err = t.promoteOn(ctx, tc); err != nil {
		return p, err
	}
	if lsn, err := pgsql.CurrentLSN(ctx, onTarget); err == nil {
		p.PromotedLSN = lsn
	}
	c.mu.Lock()
	c.writer = target
	c.mu.Unlock()
	p.Stall = time.Since(start)
	return p, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

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
	if t, ok := c.eps.(interface {
		ReleaseTimes() (repoint, resume time.Duration)
	}); ok {
		repoint, resume := t.ReleaseTimes()
		detail["repoint_ms"], detail["resume_ms"] = ms(repoint), ms(resume)
	}
	probe := time.Now()
	reached, err := c.probeWriterEndpoint(ctx)
	detail["probe_ms"] = ms(time.Since(probe))
	if err != nil {
		return detail, err
	}
	if reached != n.Addr() {
		return detail, fmt.Errorf("local: the writer endpoint reaches %s, not %s's %s", reached, writer, n.Addr())
	}
	return detail, nil
}

// probeWriterEndpoint connects through the writer endpoint, resolving its name
// through the cluster's DNS server when it has one, and returns the address
// (host:port) of the primary it reached.
func (c *Cluster) probeWriterEndpoint(ctx context.Context) (string, error) {
	cfg, err := pgx.ParseConfig(c.Credentials().DSN(c.WriterEndpoint(), "postgres"))
	if err != nil {
		return "", err
	}
	if c.cfg.DNS != nil {
		cfg.LookupFunc = dnsserver.NewResolver(c.cfg.DNS.Addr()).LookupHost
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		conn, err := pgx.ConnectConfig(cctx, cfg)
		var host string
		var port int
		var rec bool
		if err == nil {
			err = conn.QueryRow(cctx, "SELECT host(inet_server_addr()), inet_server_port(), pg_is_in_recovery()").Scan(&host, &port, &rec)
			conn.Close(context.WithoutCancel(ctx))
		}
		cancel()
		if err == nil && !rec {
			return net.JoinHostPort(host, strconv.Itoa(port)), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("local: the writer endpoint does not reach a primary (last error %v): %w", err, ctx.Err())
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
	c.order = slices.DeleteFunc(c.order, func(id string) bool { return id == node })
	c.mu.Unlock()
	c.unname(node)
	if c.eps != nil {
		if err := c.eps.SetReaders(ctx, c.readers()); err != nil {
			return err
		}
	}
	if err := n.Remove(ctx); err != nil {
		return err
	}
	return w.DropSlot(ctx, n.Slot())
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
