package emulator

import (
	"context"
	"fmt"
	"sort"
	"strconv"
)

// busyLocked names what keeps the cluster from another change ("" when nothing).
func (s *Server) busyLocked() string {
	if s.status != "available" {
		return "the cluster is " + s.status
	}
	for _, id := range s.order {
		if st := s.instances[id].status; st != "available" {
			return "instance " + id + " is " + st
		}
	}
	return ""
}

func (s *Server) modifyCluster(f map[string][]string) (any, *apiError) {
	if e := s.checkCluster(f, true); e != nil {
		return nil, e
	}
	minS, maxS := first(f, "ServerlessV2ScalingConfiguration.MinCapacity"), first(f, "ServerlessV2ScalingConfiguration.MaxCapacity")
	fwd := first(f, "EnableLocalWriteForwarding")
	s.mu.Lock()
	defer s.mu.Unlock()
	if minS != "" || maxS != "" {
		lo, err1 := strconv.ParseFloat(minS, 64)
		hi, err2 := strconv.ParseFloat(maxS, 64)
		if err1 != nil || err2 != nil || lo < 0 || hi < lo || hi > 256 {
			return nil, fault(400, "InvalidParameterValue", "ServerlessV2ScalingConfiguration needs 0 <= MinCapacity <= MaxCapacity <= 256 ACUs; got %q and %q", minS, maxS)
		}
		s.scaling = &[2]float64{lo, hi}
	}
	if fwd != "" {
		on, err := strconv.ParseBool(fwd)
		if err != nil {
			return nil, fault(400, "InvalidParameterValue", "EnableLocalWriteForwarding %q is not a boolean", fwd)
		}
		if busy := s.busyLocked(); busy != "" {
			return nil, fault(400, "InvalidDBClusterStateFault", "cannot modify write forwarding now: %s", busy)
		}
		want := map[bool]string{true: "enabled", false: "disabled"}[on]
		if s.forwarding != want {
			s.forwarding = map[bool]string{true: "enabling", false: "disabling"}[on]
			s.status = "modifying"
			s.background("forwarding", func(ctx context.Context) error {
				err := s.b.SetForwarding(ctx, on)
				s.mu.Lock()
				defer s.mu.Unlock()
				s.status = "available"
				if err != nil {
					s.forwarding = map[bool]string{true: "disabled", false: "enabled"}[on]
					return err
				}
				s.forwarding = want
				return nil
			})
		}
	}
	return xmlClusterResult{Cluster: s.clusterLocked()}, nil
}

// background runs work off the request, recording its error.
func (s *Server) background(what string, work func(ctx context.Context) error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := work(s.ctx); err != nil {
			s.mu.Lock()
			s.bgErrs = append(s.bgErrs, fmt.Errorf("%s: %w", what, err))
			s.mu.Unlock()
			fmt.Fprintf(s.opts.Log, "background %s failed: %v\n", what, err)
		}
	}()
}

func (s *Server) createInstance(f map[string][]string) (any, *apiError) {
	id := first(f, "DBInstanceIdentifier")
	class := first(f, "DBInstanceClass")
	engine := first(f, "Engine")
	switch {
	case id == "":
		return nil, fault(400, "MissingParameter", "DBInstanceIdentifier is required")
	case class == "":
		return nil, fault(400, "MissingParameter", "DBInstanceClass is required")
	case engine != Engine:
		return nil, fault(400, "InvalidParameterCombination", "Engine %q does not match the cluster's engine %s", engine, Engine)
	}
	if e := s.checkCluster(f, true); e != nil {
		return nil, e
	}
	tier := 1
	if t := first(f, "PromotionTier"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > 15 {
			return nil, fault(400, "InvalidParameterValue", "PromotionTier %q must be 0-15", t)
		}
		tier = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.instances[id]; ok {
		return nil, fault(400, "DBInstanceAlreadyExists", "DB instance %s already exists", id)
	}
	if class == "db.serverless" && s.scaling == nil {
		return nil, fault(400, "InvalidParameterCombination", "Set the Serverless v2 scaling configuration on the parent DB cluster before creating a Serverless v2 DB instance.")
	}
	if busy := s.busyLocked(); busy != "" {
		return nil, fault(400, "InvalidDBClusterStateFault", "cannot add an instance now: %s", busy)
	}
	in := &instance{id: id, class: class, status: "creating", tier: tier, created: s.opts.Now()}
	s.instances[id] = in
	s.order = append(s.order, id)
	if !s.opts.Faults.NeverAvailable {
		s.background("create "+id, func(ctx context.Context) error {
			node, err := s.b.CreateReplica(ctx, func(status string) { s.setStatus(in, status) })
			if err != nil {
				s.mu.Lock()
				in.status = "failed"
				s.mu.Unlock()
				return err
			}
			s.mu.Lock()
			in.node = node
			s.mu.Unlock()
			if err := s.b.Sync(ctx, s.nodeIDs()); err != nil {
				return err
			}
			s.setStatus(in, "available")
			return nil
		})
	}
	return xmlInstanceResult{Instance: s.instanceLocked(in)}, nil
}

// setStatus changes an instance's status and logs the transition.
func (s *Server) setStatus(in *instance, status string) {
	s.mu.Lock()
	old := in.status
	in.status = status
	s.mu.Unlock()
	if old != status {
		fmt.Fprintf(s.opts.Log, "instance %s: %s -> %s\n", in.id, old, status)
	}
}

func (s *Server) failover(f map[string][]string) (any, *apiError) {
	if e := s.checkCluster(f, true); e != nil {
		return nil, e
	}
	target := first(f, "TargetDBInstanceIdentifier")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failFaults > 0 {
		s.failFaults--
		return nil, fault(400, "InvalidDBClusterStateFault", "DB cluster %s is not in a valid state for failover (injected fault)", s.opts.ClusterID)
	}
	if busy := s.busyLocked(); busy != "" {
		return nil, fault(400, "InvalidDBClusterStateFault", "cannot fail over now: %s", busy)
	}
	w := s.writerLocked()
	if target == "" {
		// AWS picks a reader by promotion tier.
		ids := append([]string(nil), s.order...)
		sort.SliceStable(ids, func(i, j int) bool { return s.instances[ids[i]].tier < s.instances[ids[j]].tier })
		for _, id := range ids {
			if id != w {
				target = id
				break
			}
		}
	}
	in, ok := s.instances[target]
	switch {
	case !ok:
		return nil, fault(404, "DBInstanceNotFound", "DBInstance %s not found.", target)
	case target == w:
		return nil, fault(400, "InvalidDBInstanceState", "%s is already the writer of %s", target, s.opts.ClusterID)
	}
	old := s.instances[w]
	s.status = "failing-over"
	node := in.node
	s.background("failover to "+target, func(ctx context.Context) error {
		err := s.b.Failover(ctx, node)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.status = "available"
		if old != nil {
			old.status = "available"
		}
		return err
	})
	return xmlClusterResult{Cluster: s.clusterLocked()}, nil
}

func (s *Server) deleteInstance(f map[string][]string) (any, *apiError) {
	id := first(f, "DBInstanceIdentifier")
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	switch {
	case id == "":
		return nil, fault(400, "MissingParameter", "DBInstanceIdentifier is required")
	case !ok:
		return nil, fault(404, "DBInstanceNotFound", "DBInstance %s not found.", id)
	case id == s.writerLocked():
		return nil, fault(400, "InvalidDBClusterStateFault", "%s is the writer of %s; fail over to another instance before deleting it", id, s.opts.ClusterID)
	case in.deleting:
		return nil, fault(400, "InvalidDBInstanceState", "DB instance %s is already being deleted", id)
	}
	in.deleting = true
	in.status = "deleting"
	node := in.node
	s.background("delete "+id, func(ctx context.Context) error {
		var err error
		if node != "" {
			err = s.b.Remove(ctx, node)
		}
		s.mu.Lock()
		if err != nil {
			in.status, in.deleting = "failed", false
			s.mu.Unlock()
			return err
		}
		delete(s.instances, id)
		for i, x := range s.order {
			if x == id {
				s.order = append(s.order[:i], s.order[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		return s.b.Sync(ctx, s.nodeIDs())
	})
	return xmlInstanceResult{Instance: s.instanceLocked(in)}, nil
}
