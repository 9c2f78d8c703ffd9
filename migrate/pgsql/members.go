package pgsql

import "github.com/rehearse-dev/rehearse/migrate"

// Members is how a provider keeps its nodes (of type N): by ID, their IDs in
// creation order, and the writer's ID. A provider builds one from its own fields
// while it holds the lock that guards them.
type Members[N any] struct {
	Nodes  map[string]N
	Order  []string
	Writer string
}

// Topology returns the writer's ID and the members in creation order, each as
// describe reports it, with its ID and role ("writer" or "reader") set here. The
// caller adds the endpoints and the forwarding state.
func (m Members[N]) Topology(describe func(N) migrate.Node) migrate.Topology {
	t := migrate.Topology{Writer: m.Writer}
	for _, id := range m.Order {
		n := describe(m.Nodes[id])
		n.ID, n.Role = id, "reader"
		if id == m.Writer {
			n.Role = "writer"
		}
		t.Nodes = append(t.Nodes, n)
	}
	return t
}

// Readers returns the addresses (addr) of the members other than the writer that
// serve, in creation order: the reader endpoint's members.
func (m Members[N]) Readers(serving func(N) bool, addr func(N) string) []string {
	var out []string
	for _, id := range m.Order {
		if n := m.Nodes[id]; id != m.Writer && serving(n) {
			out = append(out, addr(n))
		}
	}
	return out
}
