package emulator

import (
	"context"
	"fmt"
	"strings"

	"github.com/rehearse-dev/rehearse/migrate/local"
)

// Rebooter is a Backend that can restart a node's server (RebootDBInstance).
type Rebooter interface {
	// Reboot restarts node's server: its connections end, it is down for a moment,
	// then it serves again (a writer after crash recovery, a reader streaming
	// again).
	Reboot(ctx context.Context, node string) error
}

var (
	_ Rebooter = (*LocalBackend)(nil)
	_ Rebooter = (*MemoryBackend)(nil)
)

// rebootInstance answers RebootDBInstance: the instance goes "rebooting", its node
// restarts in the background, and it is "available" again once the node serves.
// Aurora instances are not Multi-AZ instances (Multi-AZ is the cluster's, through
// its readers), so ForceFailover=true is refused, as RDS does: a cluster fails over
// with FailoverDBCluster.
func (s *Server) rebootInstance(f map[string][]string) (any, *apiError) {
	id := first(f, "DBInstanceIdentifier")
	force := strings.EqualFold(first(f, "ForceFailover"), "true")
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	switch {
	case id == "":
		return nil, fault(400, "MissingParameter", "DBInstanceIdentifier is required")
	case !ok:
		return nil, fault(404, "DBInstanceNotFound", "DBInstance %s not found.", id)
	case force:
		return nil, fault(400, "InvalidParameterCombination", "ForceFailover can't be specified: DB instance %s isn't configured for Multi-AZ; fail the cluster %s over with FailoverDBCluster", id, s.opts.ClusterID)
	case in.status != "available":
		return nil, fault(400, "InvalidDBInstanceState", "DB instance %s is not in the available state (it is %s)", id, in.status)
	}
	rb, ok := s.b.(Rebooter)
	if !ok {
		return nil, fault(400, "InvalidAction", "this emulator's backend cannot reboot instances")
	}
	in.status = "rebooting"
	fmt.Fprintf(s.opts.Log, "instance %s: available -> rebooting\n", id)
	node := in.node
	s.background("reboot "+id, func(ctx context.Context) error {
		err := rb.Reboot(ctx, node)
		status := "available"
		if err != nil {
			status = "failed"
		}
		s.setStatus(in, status)
		return err
	})
	return xmlInstanceResult{Instance: s.instanceLocked(in)}, nil
}

// Reboot implements Rebooter: an immediate shutdown of the node's server (its
// sessions end at once, nothing is checkpointed), then a start, with crash
// recovery, on the same address.
func (l *LocalBackend) Reboot(ctx context.Context, node string) error {
	for _, n := range l.c.Nodes() {
		if n.Name() != node {
			continue
		}
		if err := n.Stop(ctx, local.Immediate); err != nil {
			return fmt.Errorf("reboot %s: %w", node, err)
		}
		if err := n.Start(ctx); err != nil {
			return fmt.Errorf("reboot %s: %w", node, err)
		}
		return nil
	}
	return fmt.Errorf("reboot: no node %q", node)
}

// Reboot implements Rebooter: there is no server to restart.
func (m *MemoryBackend) Reboot(ctx context.Context, node string) error { return nil }
