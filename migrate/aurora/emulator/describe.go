package emulator

import (
	"fmt"
	"net"
	"strconv"
	"time"
)

func (s *Server) describeClusters(f map[string][]string) (any, *apiError) {
	if e := s.checkCluster(f, false); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return xmlClusters{Clusters: []xmlCluster{s.clusterLocked()}}, nil
}

func (s *Server) clusterLocked() xmlCluster {
	c := xmlCluster{
		DBClusterIdentifier:        s.opts.ClusterID,
		DBClusterArn:               fmt.Sprintf("arn:aws:rds:%s:%s:cluster:%s", s.opts.Region, Account, s.opts.ClusterID),
		Status:                     s.status,
		Engine:                     Engine,
		EngineVersion:              s.opts.EngineVersion,
		EngineMode:                 "provisioned",
		Endpoint:                   s.b.WriterEndpoint(),
		ReaderEndpoint:             s.b.ReaderEndpoint(),
		Port:                       endpointPort(s.b.WriterEndpoint()),
		MultiAZ:                    len(s.order) > 1,
		LocalWriteForwardingStatus: s.forwarding,
	}
	if s.scaling != nil {
		c.Scaling = &xmlScaling{MinCapacity: s.scaling[0], MaxCapacity: s.scaling[1]}
	}
	w := s.writerLocked()
	for _, id := range s.order {
		in := s.instances[id]
		c.Members = append(c.Members, xmlMember{DBInstanceIdentifier: id, IsClusterWriter: id == w,
			DBClusterParameterGroupStatus: "in-sync", PromotionTier: in.tier})
	}
	return c
}

func endpointPort(hostport string) int {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

func (s *Server) describeInstances(f map[string][]string) (any, *apiError) {
	id := first(f, "DBInstanceIdentifier")
	s.mu.Lock()
	defer s.mu.Unlock()
	var out xmlInstances
	for _, iid := range s.order {
		if id != "" && iid != id {
			continue
		}
		out.Instances = append(out.Instances, s.instanceLocked(s.instances[iid]))
	}
	if id != "" && len(out.Instances) == 0 {
		return nil, fault(404, "DBInstanceNotFound", "DBInstance %s not found.", id)
	}
	return out, nil
}

func (s *Server) instanceLocked(in *instance) xmlInstance {
	x := xmlInstance{
		DBInstanceIdentifier: in.id,
		DBInstanceArn:        fmt.Sprintf("arn:aws:rds:%s:%s:db:%s", s.opts.Region, Account, in.id),
		DBInstanceClass:      in.class,
		Engine:               Engine,
		EngineVersion:        s.opts.EngineVersion,
		DBInstanceStatus:     in.status,
		DBClusterIdentifier:  s.opts.ClusterID,
		PromotionTier:        in.tier,
		InstanceCreateTime:   in.created.UTC().Format(time.RFC3339),
	}
	if in.node != "" {
		if host, port, err := net.SplitHostPort(s.b.NodeAddr(in.node)); err == nil {
			p, _ := strconv.Atoi(port)
			x.Endpoint = &xmlEndpoint{Address: host, Port: p}
		}
	}
	return x
}
