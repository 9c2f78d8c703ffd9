package aurora

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/rehearse-dev/rehearse/migrate"
)

// describeCluster returns the cluster (DescribeDBClusters).
func (p *Provider) describeCluster(ctx context.Context) (types.DBCluster, error) {
	out, err := p.api.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(p.cfg.ClusterID)})
	if err != nil {
		if hasCode(err, "DBClusterNotFoundFault") {
			return types.DBCluster{}, fmt.Errorf("%w: DB cluster %q in %s: %w", ErrNotFound, p.cfg.ClusterID, p.region, err)
		}
		return types.DBCluster{}, fmt.Errorf("aurora: describe cluster %s: %w", p.cfg.ClusterID, err)
	}
	if len(out.DBClusters) == 0 {
		return types.DBCluster{}, fmt.Errorf("%w: DB cluster %q in %s", ErrNotFound, p.cfg.ClusterID, p.region)
	}
	return out.DBClusters[0], nil
}

// describeInstances returns the cluster's instances by identifier (DescribeDBInstances).
func (p *Provider) describeInstances(ctx context.Context) (map[string]types.DBInstance, error) {
	out, err := p.api.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{
		Filters: []types.Filter{{Name: aws.String("db-cluster-id"), Values: []string{p.cfg.ClusterID}}},
	})
	if err != nil {
		return nil, fmt.Errorf("aurora: describe the instances of %s: %w", p.cfg.ClusterID, err)
	}
	m := map[string]types.DBInstance{}
	for _, in := range out.DBInstances {
		if id := aws.ToString(in.DBInstanceIdentifier); id != "" {
			m[id] = in
		}
	}
	return m, nil
}

// writerOf returns the cluster's writer instance ("" when none).
func writerOf(c types.DBCluster) string {
	for _, m := range c.DBClusterMembers {
		if aws.ToBool(m.IsClusterWriter) {
			return aws.ToString(m.DBInstanceIdentifier)
		}
	}
	return ""
}

func member(c types.DBCluster, id string) (types.DBClusterMember, bool) {
	for _, m := range c.DBClusterMembers {
		if aws.ToString(m.DBInstanceIdentifier) == id {
			return m, true
		}
	}
	return types.DBClusterMember{}, false
}

// hostPort joins an endpoint and the cluster port. The emulator reports endpoints as
// host:port already (its two endpoints listen on different ports of 127.0.0.1);
// RDS reports DNS names and one port.
func hostPort(ep *string, port *int32) string {
	e := aws.ToString(ep)
	if e == "" {
		return ""
	}
	if _, _, err := net.SplitHostPort(e); err == nil {
		return e
	}
	return net.JoinHostPort(e, strconv.Itoa(int(aws.ToInt32(port))))
}

func instanceAddr(in types.DBInstance) string {
	if in.Endpoint == nil || in.Endpoint.Address == nil {
		return ""
	}
	return net.JoinHostPort(aws.ToString(in.Endpoint.Address), strconv.Itoa(int(aws.ToInt32(in.Endpoint.Port))))
}

// Endpoints returns the cluster's writer and reader endpoints (host:port), as
// DescribeDBClusters reports them: where the load connects.
func (p *Provider) Endpoints(ctx context.Context) (writer, reader string, err error) {
	c, err := p.describeCluster(ctx)
	if err != nil {
		return "", "", err
	}
	return hostPort(c.Endpoint, c.Port), hostPort(c.ReaderEndpoint, c.Port), nil
}

// Describe implements migrate.Provider: DescribeDBClusters and DescribeDBInstances.
func (p *Provider) Describe(ctx context.Context) (migrate.Topology, error) {
	c, err := p.describeCluster(ctx)
	if err != nil {
		return migrate.Topology{}, err
	}
	ins, err := p.describeInstances(ctx)
	if err != nil {
		return migrate.Topology{}, err
	}
	return topology(c, ins), nil
}

func topology(c types.DBCluster, ins map[string]types.DBInstance) migrate.Topology {
	t := migrate.Topology{
		Writer:         writerOf(c),
		WriterEndpoint: hostPort(c.Endpoint, c.Port),
		ReaderEndpoint: hostPort(c.ReaderEndpoint, c.Port),
		Forwarding:     c.LocalWriteForwardingStatus == types.LocalWriteForwardingStatusEnabled,
	}
	for _, m := range c.DBClusterMembers {
		id := aws.ToString(m.DBInstanceIdentifier)
		n := migrate.Node{ID: id, Role: "reader", Version: aws.ToString(c.EngineVersion), Tier: int(aws.ToInt32(m.PromotionTier))}
		if aws.ToBool(m.IsClusterWriter) {
			n.Role = "writer"
		}
		if in, ok := ins[id]; ok {
			n.Addr = instanceAddr(in)
			n.Class = aws.ToString(in.DBInstanceClass)
		}
		t.Nodes = append(t.Nodes, n)
	}
	return t
}
