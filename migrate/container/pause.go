package container

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"
)

// Pause freezes every process of node id's container (docker pause: the cgroup
// freezer), as a hung machine would: its connections stay open and nothing
// answers. Unpause lets them run again.
func (c *Cluster) Pause(ctx context.Context, id string) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	if _, err := c.cli.ContainerPause(ctx, n.c.GetContainerID(), client.ContainerPauseOptions{}); err != nil {
		return fmt.Errorf("container: pause %s: %w", id, err)
	}
	fmt.Fprintf(c.log, "paused %s's container\n", id)
	return nil
}

// Unpause lets a paused node's container run again. Unpausing a container that is
// not paused is not an error.
func (c *Cluster) Unpause(ctx context.Context, id string) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	paused, err := c.paused(ctx, n)
	if err != nil || !paused {
		return err
	}
	if _, err := c.cli.ContainerUnpause(ctx, n.c.GetContainerID(), client.ContainerUnpauseOptions{}); err != nil {
		return fmt.Errorf("container: unpause %s: %w", id, err)
	}
	fmt.Fprintf(c.log, "unpaused %s's container\n", id)
	return nil
}

// Paused reports whether node id's container is paused.
func (c *Cluster) Paused(ctx context.Context, id string) (bool, error) {
	n, err := c.node(id)
	if err != nil {
		return false, err
	}
	return c.paused(ctx, n)
}

func (c *Cluster) paused(ctx context.Context, n *node) (bool, error) {
	st, err := n.c.State(ctx)
	if err != nil {
		return false, fmt.Errorf("container: state of %s: %w", n.id, err)
	}
	return st.Paused, nil
}

// Restart brings node id back after Crash when it is not the writer (Recover does
// that for the writer): its container starts again, and its server, after crash
// recovery, accepts connections (a standby resumes streaming from the writer).
func (c *Cluster) Restart(ctx context.Context, id string) error {
	n, err := c.node(id)
	if err != nil {
		return err
	}
	st, err := n.c.State(ctx)
	if err != nil {
		return fmt.Errorf("container: state of %s: %w", id, err)
	}
	if !st.Running {
		if _, err := c.cli.ContainerStart(ctx, n.c.GetContainerID(), client.ContainerStartOptions{}); err != nil {
			return fmt.Errorf("container: restart %s: %w", id, err)
		}
	}
	if err := c.waitReady(ctx, n); err != nil {
		return err
	}
	c.mu.Lock()
	n.down = false
	c.mu.Unlock()
	fmt.Fprintf(c.log, "restarted %s's container\n", id)
	return nil
}
