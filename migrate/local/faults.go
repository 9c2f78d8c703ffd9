package local

import (
	"context"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/pgsql"
)

// Crash implements migrate.Crasher: kill -9 every process of the node.
func (c *Cluster) Crash(ctx context.Context, node string) error {
	n, err := c.node(node)
	if err != nil {
		return err
	}
	if c.eps != nil && node == c.writerID() {
		if err := c.eps.Hold(ctx); err != nil {
			return err
		}
	}
	if err := n.Kill(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	c.crashed[node] = true
	c.mu.Unlock()
	return nil
}

// Failover implements migrate.Crasher: promote target after the writer died, with
// whatever it has replayed.
func (c *Cluster) Failover(ctx context.Context, target string) (migrate.Promotion, error) {
	t, err := c.node(target)
	if err != nil {
		return migrate.Promotion{}, err
	}
	p, err := pgsql.Failover(ctx, t.queryRow, c.writerID(), target, t.PromoteFast)
	if err != nil {
		return p, err
	}
	c.mu.Lock()
	c.writer = target
	c.mu.Unlock()
	return p, nil
}
