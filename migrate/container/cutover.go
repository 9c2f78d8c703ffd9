package container

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/client"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
	"github.com/rehearse-dev/rehearse/migrate/pgsql"
)

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// switchPoll paces the waits inside a switchover's stall (the replay of the old
// writer's final LSN, the promotion): every millisecond polled away is one of
// write stall.
const switchPoll = 2 * time.Millisecond

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
	// The proxy mode's PgBouncers finish their server logins while clients are
	// still served, so the hold's PAUSEs do not wait for them.
	if s, ok := c.eps.(interface{ Settle(context.Context) }); ok {
		s.Settle(ctx)
	}
	// One connection to the target, logged in before the hold: the replay wait,
	// the promotion and the promoted LSN inside the stall make no login.
	tc, err := c.connect(ctx, t, "postgres")
	if err != nil {
		return p, fmt.Errorf("%w: %s: %w", ErrNode, target, err)
	}
	defer tc.Close(context.WithoutCancel(ctx))
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
	if err := c.waitReplayed(ctx, t, tc, final); err != nil {
		return p, err
	}
	p.Detail["replay_wait_ms"] = ms(time.Since(waitStart))
	if p.Promote, err = c.promote(ctx, t, tc); err != nil {
		return p, err
	}
	if lsn, err := pgsql.CurrentLSN(ctx, pgsql.ConnQuery(tc)); err == nil {
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

// probeWriterEndpoint connects through the writer endpoint, resolving its name
// through the cluster's DNS server when it has one, until it reaches node want (its
// cluster_name) as a primary.
func (c *Cluster) probeWriterEndpoint(ctx context.Context, want string) error {
	cfg, err := pgx.ParseConfig(c.DSN(c.WriterEndpoint(), "postgres"))
	if err != nil {
		return err
	}
	if c.cfg.DNS != nil {
		cfg.LookupFunc = dnsserver.NewResolver(c.cfg.DNS.Addr()).LookupHost
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
	c.order = slices.DeleteFunc(c.order, func(x string) bool { return x == id })
	c.mu.Unlock()
	c.unname(id)
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
