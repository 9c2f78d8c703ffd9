package container

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
)

// startNode creates and starts node id's container, publishing its port on the next
// loopback address of the run's block and the run's port (fixed, so its address
// survives restarts), and waits until it accepts connections. extraEnv adds to the
// shared environment (replica mode). When Docker cannot bind the address (another
// process took it), it moves on to the next address.
func (c *Cluster) startNode(ctx context.Context, id string, extraEnv map[string]string) (*node, error) {
	env := c.cfg.env()
	for k, v := range extraEnv {
		env[k] = v
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ip, err := c.lb.Next()
		if err != nil {
			return nil, fmt.Errorf("container: an address to publish %s on: %w", id, err)
		}
		port := c.lb.Port()
		req := testcontainers.GenericContainerRequest{
			ContainerRequest: testcontainers.ContainerRequest{
				Image:          c.cfg.Image,
				Name:           "rehearse-" + c.runID + "-" + id,
				Env:            env,
				Cmd:            c.cfg.serverArgs(id),
				Labels:         c.labels(id),
				ExposedPorts:   []string{fmt.Sprintf("%d/tcp", pgPort)},
				Networks:       []string{c.netName},
				NetworkAliases: map[string][]string{c.netName: {id}},
				HostConfigModifier: func(hc *container.HostConfig) {
					hc.PortBindings = network.PortMap{
						network.MustParsePort(fmt.Sprintf("%d/tcp", pgPort)): {{HostIP: ip, HostPort: strconv.Itoa(port)}},
					}
				},
			},
			Logger: logger{c.log},
		}
		// The create runs to its end even when ctx is cancelled: a create the
		// daemon finishes after its client gave up would leave a container that
		// Close's sweep, already done, never sees. Once created, the container is
		// ours to remove.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		ctr, err := testcontainers.GenericContainer(cctx, req)
		cancel()
		if err == nil {
			if err = ctx.Err(); err == nil {
				err = ctr.Start(ctx)
			}
		}
		if err != nil {
			if ctr != nil {
				c.removeContainer(ctx, ctr)
			}
			lastErr = fmt.Errorf("%w: start container for %s: %w", ErrNode, id, err)
			if strings.Contains(err.Error(), "port is already allocated") || strings.Contains(err.Error(), "address already in use") {
				continue
			}
			return nil, lastErr
		}
		n := &node{id: id, c: ctr, hostIP: ip, hostPort: port}
		fmt.Fprintf(c.log, "container %s started for %s, published on %s\n", ctr.GetContainerID()[:12], id, n.addr())
		if err := c.waitReady(ctx, n); err != nil {
			c.removeContainer(ctx, ctr)
			return nil, err
		}
		return n, nil
	}
	return nil, lastErr
}

// removeContainer force-removes a container, bounded even when ctx is done.
func (c *Cluster) removeContainer(ctx context.Context, ctr testcontainers.Container) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if _, err := c.cli.ContainerRemove(rctx, ctr.GetContainerID(), client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
		fmt.Fprintf(c.log, "warning: remove container %.12s: %v\n", ctr.GetContainerID(), err)
	}
}

// waitReady polls until n accepts connections, failing early (with the container's
// log) when the container exits.
func (c *Cluster) waitReady(ctx context.Context, n *node) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StartTimeout)
	defer cancel()
	tick := time.NewTicker(c.cfg.PollInterval * 2)
	defer tick.Stop()
	for {
		var one int
		err := c.queryRow(ctx, n, "SELECT 1", nil, &one)
		if err == nil {
			return nil
		}
		if st, serr := n.c.State(ctx); serr == nil && !st.Running {
			return fmt.Errorf("%w: %s's container exited (status %d) before accepting connections:\n%s", ErrNode, n.id, st.ExitCode, c.logTail(n, 30))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s does not accept connections on %s (last error %v): %w\n%s", ErrNode, n.id, n.addr(), err, ctx.Err(), c.logTail(n, 30))
		case <-tick.C:
		}
	}
}

// logTail returns the last lines of n's container log.
func (c *Cluster) logTail(n *node, lines int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := c.cli.ContainerLogs(ctx, n.c.GetContainerID(), client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(lines)})
	if err != nil {
		return "  (no container log: " + err.Error() + ")"
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
	// The log stream is multiplexed (8-byte frame headers); keep printable text.
	var out strings.Builder
	for len(b) >= 8 {
		size := int(b[4])<<24 | int(b[5])<<16 | int(b[6])<<8 | int(b[7])
		b = b[8:]
		if size > len(b) {
			size = len(b)
		}
		out.Write(b[:size])
		b = b[size:]
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(out.String(), "\n"), "\n", "\n  ")
}

// run executes cmd in n's container and returns its combined output; a non-zero
// exit status is an error carrying the output.
func (c *Cluster) run(ctx context.Context, n *node, cmd ...string) (string, error) {
	code, r, err := n.c.Exec(ctx, cmd, tcexec.Multiplexed())
	var out []byte
	if r != nil {
		out, _ = io.ReadAll(r)
	}
	if err != nil {
		return string(out), fmt.Errorf("%w: %s: exec %s: %w", ErrNode, n.id, strings.Join(cmd, " "), err)
	}
	if code != 0 {
		return string(out), fmt.Errorf("%w: %s: %s exited %d:\n  %s", ErrNode, n.id, strings.Join(cmd, " "), code,
			strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", "\n  "))
	}
	return string(out), nil
}

func (c *Cluster) needRehearsePG(op string) error {
	if !c.rehearsePG {
		return fmt.Errorf("%w: %s needs the rehearse-pg commands of %s (make image); %s has none", ErrUnsupportedImage, op, BuiltImage, c.cfg.Image)
	}
	return nil
}

// createDatabase creates Database on the writer (both images start with only the
// postgres database unless POSTGRES_DB is set).
func (c *Cluster) createDatabase(ctx context.Context, n *node) error {
	var exists bool
	if err := c.queryRow(ctx, n, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", []any{Database}, &exists); err != nil {
		return fmt.Errorf("container: %s: %w", n.id, err)
	}
	if exists {
		return nil
	}
	if err := c.exec(ctx, n, "CREATE DATABASE "+Database); err != nil {
		return fmt.Errorf("container: create database %s on %s: %w", Database, n.id, err)
	}
	return nil
}
