package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/rehearse-dev/rehearse/internal/faults"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/aurora"
	"github.com/rehearse-dev/rehearse/migrate/container"
	"github.com/rehearse-dev/rehearse/migrate/local"
	"github.com/rehearse-dev/rehearse/scenarios"
)

var (
	_ faultable = (*localNode)(nil)
	_ faultable = (*localCluster)(nil)
	_ faultable = (*containerTarget)(nil)
	_ faultable = (*auroraTarget)(nil)
)

func (t *localNode) faultHost() faults.Host           { return nodeHost{t.node} }
func (t *localNode) faultProxies() *faults.Proxies    { return t.px }
func (t *localCluster) faultHost() faults.Host        { return clusterHost{t.cluster} }
func (t *localCluster) faultProxies() *faults.Proxies { return t.px }
func (t *containerTarget) faultHost() faults.Host     { return containerHost{t.cl} }
func (t *containerTarget) faultProxies() *faults.Proxies {
	return t.px
}
func (t *auroraTarget) faultHost() faults.Host        { return t.faults }
func (t *auroraTarget) faultProxies() *faults.Proxies { return nil }

// freezeNode stops a local node's processes; its thaw lets them run again.
func freezeNode(ctx context.Context, n *local.Node) (func(context.Context) error, map[string]any, error) {
	fz, err := n.Freeze(ctx)
	if err != nil {
		return nil, nil, err
	}
	return func(context.Context) error { return fz.Thaw() },
		map[string]any{"signal": "SIGSTOP", "processes": len(fz.PIDs()), "postmaster_pid": fz.PIDs()[0]}, nil
}

// nodeHost is the one embedded node of a run without a cutover.
type nodeHost struct{ n *local.Node }

func (h nodeHost) Topology(context.Context) (migrate.Topology, error) {
	return migrate.Topology{Writer: h.n.Name(), Nodes: []migrate.Node{{ID: h.n.Name(), Role: "writer", Addr: h.n.Addr(), Version: h.n.Version()}}}, nil
}

func (h nodeHost) Freeze(ctx context.Context, _ string) (func(context.Context) error, map[string]any, error) {
	return freezeNode(ctx, h.n)
}

func (h nodeHost) Crash(ctx context.Context, _ string, _ bool) (map[string]any, error) {
	pid := h.n.PID()
	return map[string]any{"signal": "SIGKILL", "postmaster_pid": pid}, h.n.Kill(ctx)
}

func (h nodeHost) Restart(ctx context.Context, _ string, _ bool) error { return h.n.Start(ctx) }

// clusterHost is an embedded cluster's nodes.
type clusterHost struct{ c *local.Cluster }

func (h clusterHost) Topology(ctx context.Context) (migrate.Topology, error) {
	return h.c.Describe(ctx)
}

func (h clusterHost) node(id string) (*local.Node, error) {
	for _, n := range h.c.Nodes() {
		if n.Name() == id {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no node %q in the cluster", id)
}

func (h clusterHost) Freeze(ctx context.Context, id string) (func(context.Context) error, map[string]any, error) {
	n, err := h.node(id)
	if err != nil {
		return nil, nil, err
	}
	return freezeNode(ctx, n)
}

// Crash is the cluster's own crash (migrate.Crasher): SIGKILL to every process of
// the node, the proxy endpoints held when it is the writer, and the node marked to
// rejoin through pg_rewind.
func (h clusterHost) Crash(ctx context.Context, id string, _ bool) (map[string]any, error) {
	n, err := h.node(id)
	if err != nil {
		return nil, err
	}
	pid := n.PID()
	return map[string]any{"signal": "SIGKILL", "postmaster_pid": pid}, h.c.Crash(ctx, id)
}

// Restart starts the writer again with crash recovery and releases the endpoints
// back to it (Recover); a reader starts again and resumes streaming.
func (h clusterHost) Restart(ctx context.Context, id string, writer bool) error {
	if writer {
		return h.c.Recover(ctx, id)
	}
	n, err := h.node(id)
	if err != nil {
		return err
	}
	return n.Start(ctx)
}

// containerHost is a container cluster's nodes.
type containerHost struct{ c *container.Cluster }

func (h containerHost) Topology(ctx context.Context) (migrate.Topology, error) {
	return h.c.Describe(ctx)
}

func (h containerHost) Freeze(ctx context.Context, id string) (func(context.Context) error, map[string]any, error) {
	if err := h.c.Pause(ctx, id); err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context) error { return h.c.Unpause(ctx, id) }, map[string]any{"docker": "pause"}, nil
}

func (h containerHost) Crash(ctx context.Context, id string, _ bool) (map[string]any, error) {
	return map[string]any{"docker": "kill --signal SIGKILL"}, h.c.Crash(ctx, id)
}

func (h containerHost) Restart(ctx context.Context, id string, writer bool) error {
	if writer {
		return h.c.Recover(ctx, id)
	}
	return h.c.Restart(ctx, id)
}

// auroraCrashPoll paces the wait for an Aurora failover or reboot to finish.
const auroraCrashPoll = 500 * time.Millisecond

// auroraHost crashes Aurora instances through the RDS API: the writer by
// FailoverDBCluster without a target (RDS picks a reader by promotion tier), an
// instance without a reader to fail over to, and a reader, by RebootDBInstance
// (Aurora instances are not Multi-AZ instances, so ForceFailover does not apply).
// The other kinds are refused at validation.
type auroraHost struct {
	p *aurora.Provider

	mu      sync.Mutex
	pending map[string]auroraCrash // by instance
}

// auroraCrash is a failover or reboot under way.
type auroraCrash struct {
	failover  bool
	oldWriter string
}

func newAuroraHost(p *aurora.Provider) *auroraHost {
	return &auroraHost{p: p, pending: map[string]auroraCrash{}}
}

func (h *auroraHost) Topology(ctx context.Context) (migrate.Topology, error) {
	return h.p.Describe(ctx)
}

func (h *auroraHost) Freeze(context.Context, string) (func(context.Context) error, map[string]any, error) {
	return nil, nil, errors.New("the aurora target can only crash an instance")
}

func (h *auroraHost) Crash(ctx context.Context, id string, writer bool) (map[string]any, error) {
	topo, err := h.p.Describe(ctx)
	if err != nil {
		return nil, err
	}
	api := h.p.Client()
	var md middleware.Metadata
	detail := map[string]any{}
	failover := writer && len(topo.Nodes) > 1
	if failover {
		out, err := api.FailoverDBCluster(ctx, &rds.FailoverDBClusterInput{DBClusterIdentifier: aws.String(h.p.ClusterID())})
		if err != nil {
			return nil, fmt.Errorf("FailoverDBCluster %s: %w", h.p.ClusterID(), err)
		}
		md = out.ResultMetadata
		detail["api"] = "FailoverDBCluster"
	} else {
		out, err := api.RebootDBInstance(ctx, &rds.RebootDBInstanceInput{DBInstanceIdentifier: aws.String(id)})
		if err != nil {
			return nil, fmt.Errorf("RebootDBInstance %s: %w", id, err)
		}
		md = out.ResultMetadata
		detail["api"] = "RebootDBInstance"
	}
	if rid, ok := awsmiddleware.GetRequestIDMetadata(md); ok {
		detail["request_id"] = rid
	}
	h.mu.Lock()
	h.pending[id] = auroraCrash{failover: failover, oldWriter: topo.Writer}
	h.mu.Unlock()
	return detail, nil
}

// Restart waits until RDS has finished: the cluster available with another writer
// after a failover, the instance available again after a reboot.
func (h *auroraHost) Restart(ctx context.Context, id string, _ bool) error {
	h.mu.Lock()
	c := h.pending[id]
	delete(h.pending, id)
	h.mu.Unlock()
	api := h.p.Client()
	tick := time.NewTicker(auroraCrashPoll)
	defer tick.Stop()
	for {
		var done bool
		var err error
		if c.failover {
			var out *rds.DescribeDBClustersOutput
			out, err = api.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(h.p.ClusterID())})
			if err == nil && len(out.DBClusters) == 1 {
				cl := out.DBClusters[0]
				done = aws.ToString(cl.Status) == "available" && auroraWriter(cl.DBClusterMembers) != c.oldWriter
			}
		} else {
			var out *rds.DescribeDBInstancesOutput
			out, err = api.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
			done = err == nil && len(out.DBInstances) == 1 && aws.ToString(out.DBInstances[0].DBInstanceStatus) == "available"
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to serve again (last error %v): %w", id, err, ctx.Err())
		case <-tick.C:
		}
	}
}

// auroraWriter is the writer among a cluster's members.
func auroraWriter(ms []types.DBClusterMember) string {
	for _, m := range ms {
		if aws.ToBool(m.IsClusterWriter) {
			return aws.ToString(m.DBInstanceIdentifier)
		}
	}
	return ""
}

// checkAuroraFaults refuses, before the load starts, a fault naming an instance the
// cluster does not have.
func checkAuroraFaults(ctx context.Context, sc *scenarios.Scenario, p *aurora.Provider) error {
	var named []int
	for i, f := range sc.Faults {
		switch f.Node {
		case scenarios.NodeWriter, scenarios.NodeReader, scenarios.NodeReplica:
		default:
			named = append(named, i)
		}
	}
	if len(named) == 0 {
		return nil
	}
	topo, err := p.Describe(ctx)
	if err != nil {
		return fmt.Errorf("aurora cluster %s: %w", p.ClusterID(), err)
	}
	ids := make([]string, len(topo.Nodes))
	for i, n := range topo.Nodes {
		ids[i] = n.ID
	}
	var bad []string
	for _, i := range named {
		if n := sc.Faults[i].Node; !slices.Contains(ids, n) {
			bad = append(bad, fmt.Sprintf("faults[%d].node: no instance %q in cluster %s", i, n, p.ClusterID()))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s; use writer, reader, replica or one of: %s", ErrInvalidInput, strings.Join(bad, "; "), strings.Join(ids, ", "))
	}
	return nil
}
