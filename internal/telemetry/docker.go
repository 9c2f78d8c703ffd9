package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

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
	// Read is when the engine took the sample.
	Read time.Time
}

// Docker reads container statistics from the Docker engine: a stream per
// container (the engine sends a sample every second), of which the sampler reads
// the latest. A one-shot request per sample would take as long as the interval.
type Docker struct {
	cli *client.Client

	mu      sync.Mutex
	streams map[string]*statsStream
	closed  bool
}

// statsStream is one container's stream and its latest sample.
type statsStream struct {
	cancel context.CancelFunc
	latest ContainerCounters
	ok     bool
	err    error
	done   bool
}

// NewDocker connects to the Docker engine the environment names (DOCKER_HOST, else
// the default socket).
func NewDocker() (*Docker, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("telemetry: connect to the Docker engine: %w", err)
	}
	return &Docker{cli: cli, streams: map[string]*statsStream{}}, nil
}

// Close stops the streams and releases the client.
func (d *Docker) Close() error {
	d.mu.Lock()
	d.closed = true
	for id, s := range d.streams {
		s.cancel()
		delete(d.streams, id)
	}
	d.mu.Unlock()
	return d.cli.Close()
}

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

// errNoStatsYet is a container whose stream has sent nothing yet.
var errNoStatsYet = errors.New("no statistics from the engine yet")

// Counters returns a container's latest counters, starting its stream on the
// first call (which then has none yet).
func (d *Docker) Counters(_ context.Context, id string) (ContainerCounters, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ContainerCounters{}, errors.New("telemetry: the Docker client is closed")
	}
	s := d.streams[id]
	if s == nil || s.done {
		ctx, cancel := context.WithCancel(context.Background())
		s = &statsStream{cancel: cancel}
		d.streams[id] = s
		go d.stream(ctx, id, s)
	}
	switch {
	case s.ok:
		return s.latest, nil
	case s.err != nil:
		return ContainerCounters{}, s.err
	}
	return ContainerCounters{}, errNoStatsYet
}

// stream reads a container's statistics until the container or the stream ends.
func (d *Docker) stream(ctx context.Context, id string, s *statsStream) {
	fail := func(err error) {
		d.mu.Lock()
		s.err, s.done, s.ok = err, true, false
		d.mu.Unlock()
		s.cancel()
	}
	res, err := d.cli.ContainerStats(ctx, id, client.ContainerStatsOptions{Stream: true})
	if err != nil {
		fail(fmt.Errorf("telemetry: stats of container %s: %w", short(id), err))
		return
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var st container.StatsResponse
		if err := dec.Decode(&st); err != nil {
			fail(fmt.Errorf("telemetry: stats of container %s: %w", short(id), err))
			return
		}
		c := counters(st)
		d.mu.Lock()
		s.latest, s.ok = c, true
		d.mu.Unlock()
	}
}

// counters takes a sample's cumulative counters.
func counters(st container.StatsResponse) ContainerCounters {
	c := ContainerCounters{CPU: st.CPUStats.CPUUsage.TotalUsage, System: st.CPUStats.SystemUsage, Read: st.Read}
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
	return c
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
