package container

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/pgsql"
)

// Kind implements migrate.Provider.
func (c *Cluster) Kind() string { return "container" }

// members is the cluster's nodes for the shared bookkeeping; c.mu must be held.
func (c *Cluster) members() pgsql.Members[*node] {
	return pgsql.Members[*node]{Nodes: c.nodes, Order: c.order, Writer: c.writer}
}

// Describe implements migrate.Provider.
func (c *Cluster) Describe(ctx context.Context) (migrate.Topology, error) {
	c.mu.Lock()
	t := c.members().Topology(func(n *node) migrate.Node {
		return migrate.Node{Addr: n.addr(), Class: c.cfg.Image}
	})
	t.Forwarding = c.fwd
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
	return c.members().Readers(func(n *node) bool { return !n.down && !n.cut }, (*node).addr)
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
	exec := func(ctx context.Context, sql string) error { return c.exec(ctx, w, sql) }
	if err := pgsql.SetSynchronous(ctx, exec, replica); err != nil {
		return fmt.Errorf("container: synchronous standby on %s: %w", w.id, err)
	}
	return nil
}

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
