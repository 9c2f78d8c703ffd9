package emulator

import (
	"context"
	"fmt"
	"strconv"
	"sync"
)

// MemoryBackend is a Backend without databases: every action completes at once and
// only the bookkeeping changes. It is for tests of the API itself (shapes, state
// transitions, faults); the provider's SQL (lag, endpoint probes) needs LocalBackend.
type MemoryBackend struct {
	mu     sync.Mutex
	writer string
	nodes  []string
	next   int
	fwd    bool
	synced map[string]string
}

var _ Backend = (*MemoryBackend)(nil)

// NewMemoryBackend returns a backend with one node, the writer node1.
func NewMemoryBackend() *MemoryBackend {
	return &MemoryBackend{writer: "node1", nodes: []string{"node1"}, next: 2}
}

// WriterEndpoint implements Backend (a placeholder address nothing listens on).
func (m *MemoryBackend) WriterEndpoint() string { return "127.0.0.1:1" }

// ReaderEndpoint implements Backend (a placeholder address nothing listens on).
func (m *MemoryBackend) ReaderEndpoint() string { return "127.0.0.1:2" }

// Writer implements Backend.
func (m *MemoryBackend) Writer() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writer
}

// NodeAddr implements Backend.
func (m *MemoryBackend) NodeAddr(node string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, n := range m.nodes {
		if n == node {
			return "127.0.0.1:" + strconv.Itoa(5432+i)
		}
	}
	return ""
}

// CreateReplica implements Backend.
func (m *MemoryBackend) CreateReplica(ctx context.Context, progress func(string)) (string, error) {
	progress("creating")
	progress("backing-up")
	m.mu.Lock()
	defer m.mu.Unlock()
	n := "node" + strconv.Itoa(m.next)
	m.next++
	m.nodes = append(m.nodes, n)
	return n, nil
}

// Failover implements Backend.
func (m *MemoryBackend) Failover(ctx context.Context, target string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.nodes {
		if n == target {
			m.writer = target
			return nil
		}
	}
	return fmt.Errorf("no node %s", target)
}

// SetForwarding implements Backend.
func (m *MemoryBackend) SetForwarding(ctx context.Context, on bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fwd = on
	return nil
}

// Forwarding reports the forwarding state.
func (m *MemoryBackend) Forwarding() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fwd
}

// Remove implements Backend.
func (m *MemoryBackend) Remove(ctx context.Context, node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, n := range m.nodes {
		if n == node {
			m.nodes = append(m.nodes[:i], m.nodes[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("no node %s", node)
}

// Sync implements Backend.
func (m *MemoryBackend) Sync(ctx context.Context, ids map[string]string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.synced = ids
	return nil
}
