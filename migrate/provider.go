// Package migrate runs a cutover plan against a cluster while load runs elsewhere:
// preflight, create_replica, catch_up, forward_writes, switchover, redirect, validate,
// keep_rollback_target, decommission. Each step has an action, a completion check, a
// timeout and an undo; a dry run executes only the read-only checks. The cluster is
// reached through a Provider (local processes, containers, Aurora's RDS API). The
// blue/green strategy (preflight, create_green, green_sync, switchover, redirect,
// validate, keep_old_blue, delete_deployment) copies the cluster into a green
// environment kept in sync by logical replication and switches over onto it; a
// provider offers it by implementing BlueGreen. The package knows nothing of the
// load.
package migrate

import (
	"context"
	"time"
)

// Node is one database node as a provider reports it.
type Node struct {
	// ID is the provider's name for the node (node1, an instance identifier).
	ID string
	// Role is "writer" or "reader".
	Role string
	// Addr is the node's own host:port (not an endpoint).
	Addr string
	// Version is the server version.
	Version string
	// Class is the instance class where the provider has one (db.serverless).
	Class string
	// Tier is the failover promotion tier where the provider has one.
	Tier int
}

// Topology is the cluster as the provider sees it now.
type Topology struct {
	// Writer is the writer's node ID.
	Writer string
	// Nodes lists every node, the writer included.
	Nodes []Node
	// WriterEndpoint and ReaderEndpoint are the host:port the load connects to.
	WriterEndpoint, ReaderEndpoint string
	// Forwarding is true while write forwarding is enabled.
	Forwarding bool
}

// Node returns the node with the given ID.
func (t Topology) Node(id string) (Node, bool) {
	for _, n := range t.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return Node{}, false
}

// Lag is a replica's replication lag behind the writer.
type Lag struct {
	// Bytes is the WAL not yet replayed (pg_wal_lsn_diff of writer and replay LSN).
	Bytes int64
	// Time is the replay lag as the writer measures it (pg_stat_replication).
	Time time.Duration
	// WriterLSN and ReplayLSN are the LSNs the lag was computed from.
	WriterLSN, ReplayLSN string
}

// Check is one preflight finding.
type Check struct {
	// Name says what was checked ("writer not in recovery", "data checksums").
	Name string
	// OK is false when the check failed.
	OK bool
	// Warning marks a finding that does not stop the plan.
	Warning bool
	// Detail is the observed value or the reason.
	Detail string
}

// Promotion is what a switchover or failover did.
type Promotion struct {
	// From and To are the old and new writers' node IDs.
	From, To string
	// LagBytes and LagTime are the replica's lag just before promotion.
	LagBytes int64
	LagTime  time.Duration
	// FinalLSN is the old writer's last WAL position the replica replayed before
	// promotion ("" when it crashed).
	FinalLSN string
	// PromotedLSN is the new writer's WAL position right after promotion.
	PromotedLSN string
	// Promote is how long the promotion itself took (pg_promote, FailoverDBCluster).
	Promote time.Duration
	// Stall is how long the writer was unable to take writes, as the provider saw it.
	Stall time.Duration
	// Detail holds provider-specific facts (timeline, API request ids).
	Detail map[string]any
}

// Provider is what the cutover steps need from a cluster. It is small on purpose;
// optional capabilities are separate interfaces (Crasher, NetworkCutter).
type Provider interface {
	// Kind names the provider: local, container, aurora.
	Kind() string
	// Describe returns the cluster's current topology.
	Describe(ctx context.Context) (Topology, error)
	// Preflight runs the read-only checks that must pass before a cutover.
	Preflight(ctx context.Context) ([]Check, error)
	// PlanReplica says, read-only, what CreateReplica would do and whether it can.
	PlanReplica(ctx context.Context) (map[string]any, error)
	// CreateReplica adds a replica of the writer and returns once it streams (or is
	// available). The provider chooses its ID.
	CreateReplica(ctx context.Context) (Node, error)
	// Lag measures a replica's replication lag.
	Lag(ctx context.Context, replica string) (Lag, error)
	// SetForwarding turns write forwarding on or off.
	SetForwarding(ctx context.Context, on bool) error
	// Switchover makes target the writer in a planned way: no acknowledged write is
	// lost. The endpoints may be held (paused) until Redirect.
	Switchover(ctx context.Context, target string) (Promotion, error)
	// Redirect makes the endpoints reach writer and returns when they do.
	Redirect(ctx context.Context, writer string) (map[string]any, error)
	// Rejoin makes a former writer follow the current writer as a replica, so a
	// failback is one step.
	Rejoin(ctx context.Context, node string) (map[string]any, error)
	// Remove stops and removes a node (decommission, or the undo of CreateReplica).
	Remove(ctx context.Context, node string) error
	// Recover makes writer serve writes again after a switchover failed before the
	// writer changed: restart it if it was stopped, and release the endpoints to it.
	Recover(ctx context.Context, writer string) error
	// Close releases what the provider holds; it does not remove the cluster.
	Close(ctx context.Context) error
}

// Crasher can kill a node abruptly (kill -9, a container kill) and promote a replica
// without the old writer's cooperation: an unplanned failover.
type Crasher interface {
	// Crash kills node abruptly.
	Crash(ctx context.Context, node string) error
	// Failover promotes target after the writer died.
	Failover(ctx context.Context, target string) (Promotion, error)
}

// NetworkCutter can cut a node off the network and restore it.
type NetworkCutter interface {
	// Cut disconnects node from the cluster's network.
	Cut(ctx context.Context, node string) error
	// Restore reconnects it.
	Restore(ctx context.Context, node string) error
}
