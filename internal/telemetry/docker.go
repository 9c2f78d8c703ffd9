package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// ContainerCounters are a container's cumulative counters, as the Docker engine's
// stats API reports them.
type ContainerCounters struct {
	// CPU is the container's CPU time and System the host's (both nanoseconds,
	// every CPU summed), so their deltas give the container's share of the host.
	CPU, System uint64
	// Memory is the memory in use without the page cache the kernel can drop.
	Memory int64
	// Reads and Writes count block I/O operations; IO is false when the engine
	// does not report them (cgroup v2 reports only bytes).
	Reads, Writes uint64
	IO            bool
}

// Docker reads container statistics from the Docker engine.
type Docker struct{ cli *client.Client }

// NewDocker connects to the Docker engine the environment names (DOCKER_HOST, else
// the default socket).
func NewDocker() (*Docker, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("telemetry: connect to the Docker engine: %w", err)
	}
	return &Docker{cli: cli}, nil
}

// Close releases the client.
func (d *Docker) Close() error { return d.cli.Close() }

// Labelled maps the value of label nameLabel to the container ID, for the running
// containers labelled filter ("key=value").
func (d *Docker) Labelled(ctx context.Context, filter, nameLabel string) (map[string]string, error) {
	res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{Filters: client.Filters{}.Add("label", filter)})
	if err != nil {
		return nil, fmt.Errorf("telemetry: list containers: %w", err)
	}
	out := map[string]string{}
	for _, c := range res.Items {
		if n := c.Labels[nameLabel]; n != "" {
			out[n] = c.ID
		}
	}
	return out, nil
}

// Counters reads one container's counters (a one-shot sample: the engine answers
// at once rather than waiting a second for a previous sample).
func (d *Docker) Counters(ctx context.Context, id string) (ContainerCounters, error) {
	res, err := d.cli.ContainerStats(ctx, id, client.ContainerStatsOptions{})
	if err != nil {
		return ContainerCounters{}, fmt.Errorf("telemetry: stats of container %s: %w", short(id), err)
	}
	defer res.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		return ContainerCounters{}, fmt.Errorf("telemetry: stats of container %s: %w", short(id), err)
	}
	c := ContainerCounters{CPU: st.CPUStats.CPUUsage.TotalUsage, System: st.CPUStats.SystemUsage}
	// As `docker stats` does: cgroup v1 counts the page cache as "cache", v2 as
	// "inactive_file"; neither is memory the database holds.
	cache := st.MemoryStats.Stats["total_inactive_file"]
	if v, ok := st.MemoryStats.Stats["inactive_file"]; ok {
		cache = v
	}
	if st.MemoryStats.Usage > cache {
		c.Memory = int64(st.MemoryStats.Usage - cache)
	}
	for _, e := range st.BlkioStats.IoServicedRecursive {
		c.IO = true
		switch strings.ToLower(e.Op) {
		case "read":
			c.Reads += e.Value
		case "write":
			c.Writes += e.Value
		}
	}
	return c, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
