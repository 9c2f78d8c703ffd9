package container

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/pgsql"
)

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
	promote := func(ctx context.Context) (time.Duration, error) { return c.promote(ctx, t, nil) }
	p, err := pgsql.Failover(ctx, c.on(t), c.writerID(), target, promote)
	if err != nil {
		return p, err
	}
	c.mu.Lock()
	c.writer = target
	c.mu.Unlock()
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
