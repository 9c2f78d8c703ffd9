// Package bluegreen is what the local and container providers' blue/green
// deployments share: the deployment's state and its other environment, the green
// engine version check, and the DNS names a deployment adds and moves at the
// switchover, as AWS names them. The providers keep what differs: how a node is
// started, copied into and removed.
package bluegreen

import (
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/pgsql"
)

// Members is a set of nodes (N) by ID: a cluster's, or a deployment's other
// environment.
type Members[N any] struct {
	Nodes  map[string]N
	Order  []string
	Writer string
}

// Add adds n as id, after the others.
func (m *Members[N]) Add(id string, n N) {
	if m.Nodes == nil {
		m.Nodes = map[string]N{}
	}
	m.Nodes[id] = n
	m.Order = append(m.Order, id)
}

// List is the nodes in the order they were added.
func (m *Members[N]) List() []N {
	out := make([]N, 0, len(m.Order))
	for _, id := range m.Order {
		out = append(out, m.Nodes[id])
	}
	return out
}

// Env is an environment's instance labels: its writer's and its readers'.
type Env struct {
	Writer  string
	Readers []string
}

// Env labels the members with label (an instance's label by node ID).
func (m *Members[N]) Env(label func(id string) string) Env {
	var e Env
	for _, id := range m.Order {
		if id == m.Writer {
			e.Writer = label(id)
		} else {
			e.Readers = append(e.Readers, label(id))
		}
	}
	return e
}

// Deployment is a blue/green deployment of nodes N: a logical replication of the
// workload's database from blue's writer to green's, green's nodes, and the DNS
// names it added. Until the switchover Other holds green's nodes; the switchover
// swaps them with the cluster's (Swap), so Other then holds the old blue's.
type Deployment[N any] struct {
	ID, Suffix string
	Rep        pgsql.Replication
	Other      Members[N]
	Switched   bool
	// Names are the DNS names the deployment added (green's cluster endpoints,
	// the old blue's), removed with it.
	Names []string
}

// New is a deployment with an ID as AWS gives one (bgd-...) and a suffix for
// green's names.
func New[N any]() *Deployment[N] {
	return &Deployment[N]{ID: "bgd-" + RandomID(16), Suffix: RandomID(6)}
}

// GreenName is the name of green's node for blue's node blue: blue's with
// -green-<suffix>, as AWS names green's instances.
func (d *Deployment[N]) GreenName(blue string) string { return blue + "-green-" + d.Suffix }

// blueName is the blue node a green node copies ("" when id is not green's).
func (d *Deployment[N]) blueName(id string) string {
	if blue := strings.TrimSuffix(id, "-green-"+d.Suffix); blue != id {
		return blue
	}
	return ""
}

// Want returns d when it is in the state the caller needs: switched over
// (switched) or not yet. provider prefixes the errors.
func Want[N any](provider string, d *Deployment[N], switched bool) (*Deployment[N], error) {
	switch {
	case d == nil:
		return nil, fmt.Errorf("%s: there is no blue/green deployment", provider)
	case d.Switched != switched && switched:
		return nil, fmt.Errorf("%s: blue/green deployment %s has not switched over", provider, d.ID)
	case d.Switched != switched:
		return nil, fmt.Errorf("%s: blue/green deployment %s has already switched over", provider, d.ID)
	}
	return d, nil
}

// Swap makes the other environment the cluster's (nodes, order, writer) and the
// cluster's the other one: the switchover's commit. The caller holds the lock
// that guards both. It returns the old blue.
func (d *Deployment[N]) Swap(nodes *map[string]N, order *[]string, writer *string) Members[N] {
	blue := Members[N]{Nodes: *nodes, Order: *order, Writer: *writer}
	*nodes, *order, *writer = d.Other.Nodes, d.Other.Order, d.Other.Writer
	d.Other = blue
	d.Switched = true
	return blue
}

// Move is one instance renamed at the switchover: node ID gets label To instead
// of From.
type Move struct {
	ID, From, To string
}

// Moves are the switchover's renames once the members swapped (cluster holds
// green's node IDs, Other the old blue's), as AWS renames instances: each of the
// old blue's gets -old1, and each of green's takes the name of the blue node it
// copies. label is an instance's label by node ID.
func (d *Deployment[N]) Moves(cluster []string, label func(id string) string) []Move {
	var moves []Move
	for _, id := range d.Other.Order {
		l := label(id)
		moves = append(moves, Move{ID: id, From: l, To: l + migrate.OldSuffix})
	}
	for _, id := range cluster {
		if blue := d.blueName(id); blue != "" {
			moves = append(moves, Move{ID: id, From: label(id), To: label(blue)})
		}
	}
	return moves
}

// VersionCheck compares the green engine version asked for (want) with blue's
// (have): older blocks. Green runs blue's engine whatever is asked; newer says
// why, with have and want as its two arguments.
func VersionCheck(want, have, newer string) migrate.Check {
	ck := migrate.Check{Name: "green engine version not older than blue's", OK: true, Detail: "green runs PostgreSQL " + have + ", as blue"}
	if want == "" {
		return ck
	}
	switch c := migrate.CompareVersions(want, have); {
	case c < 0:
		ck.OK = false
		ck.Detail = fmt.Sprintf("green.engine_version %s is older than blue's %s: a blue/green deployment cannot downgrade", want, have)
	case c > 0:
		ck.Detail = fmt.Sprintf(newer, have, want)
	}
	return ck
}

// OrNone is s, or "none" when it is empty.
func OrNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// RandomID returns n random lower-case letters and digits.
func RandomID(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
