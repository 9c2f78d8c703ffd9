package aurora

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/rehearse-dev/rehearse/migrate"
)

// PlanReplica implements migrate.Provider, read-only: what CreateReplica would send.
func (p *Provider) PlanReplica(ctx context.Context) (map[string]any, error) {
	mark := p.mark()
	c, err := p.describeCluster(ctx)
	if err != nil {
		return nil, err
	}
	var calls []string
	if c.ServerlessV2ScalingConfiguration == nil {
		calls = append(calls, fmt.Sprintf("ModifyDBCluster DBClusterIdentifier=%s ServerlessV2ScalingConfiguration={MinCapacity=%v, MaxCapacity=%v} ApplyImmediately=true",
			p.cfg.ClusterID, p.cfg.MinACU, p.cfg.MaxACU))
	}
	calls = append(calls, fmt.Sprintf("CreateDBInstance DBInstanceIdentifier=%s DBClusterIdentifier=%s DBInstanceClass=%s Engine=%s PromotionTier=%d",
		p.cfg.InstanceID, p.cfg.ClusterID, p.cfg.InstanceClass, aws.ToString(c.Engine), p.cfg.PromotionTier))
	calls = append(calls, fmt.Sprintf("DBInstanceAvailable waiter on %s (at most %v)", p.cfg.InstanceID, p.cfg.CreateTimeout))
	d := map[string]any{"would_call": calls, "instance": p.cfg.InstanceID, "class": p.cfg.InstanceClass}
	if _, ok := member(c, p.cfg.InstanceID); ok {
		d["api_calls"] = p.since(mark)
		return d, fmt.Errorf("aurora: instance %s already exists in %s: choose another instance id", p.cfg.InstanceID, p.cfg.ClusterID)
	}
	d["api_calls"] = p.since(mark)
	return d, nil
}

// CreateReplica implements migrate.Provider: ModifyDBCluster
// ServerlessV2ScalingConfiguration when the cluster has none, CreateDBInstance
// (db.serverless, promotion tier 0), then the DBInstanceAvailable waiter.
func (p *Provider) CreateReplica(ctx context.Context) (migrate.Node, error) {
	c, err := p.describeCluster(ctx)
	if err != nil {
		return migrate.Node{}, err
	}
	if c.ServerlessV2ScalingConfiguration == nil && p.cfg.InstanceClass == DefaultInstanceClass {
		if _, err := p.api.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{
			DBClusterIdentifier: aws.String(p.cfg.ClusterID),
			ServerlessV2ScalingConfiguration: &types.ServerlessV2ScalingConfiguration{
				MinCapacity: aws.Float64(p.cfg.MinACU), MaxCapacity: aws.Float64(p.cfg.MaxACU),
			},
			ApplyImmediately: aws.Bool(true),
		}); err != nil {
			return migrate.Node{}, fmt.Errorf("aurora: set the Serverless v2 scaling of %s: %w", p.cfg.ClusterID, err)
		}
		if _, err := p.waitCluster(ctx, p.cfg.ForwardingTimeout, "the scaling change to apply", func(c types.DBCluster) bool {
			return aws.ToString(c.Status) == "available" && c.ServerlessV2ScalingConfiguration != nil
		}); err != nil {
			return migrate.Node{}, err
		}
	}
	id := p.cfg.InstanceID
	if _, err := p.api.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{
		DBInstanceIdentifier: aws.String(id),
		DBClusterIdentifier:  aws.String(p.cfg.ClusterID),
		DBInstanceClass:      aws.String(p.cfg.InstanceClass),
		Engine:               aws.String(orDefault(aws.ToString(c.Engine), DefaultEngine)),
		PromotionTier:        aws.Int32(p.cfg.PromotionTier),
	}); err != nil {
		return migrate.Node{}, fmt.Errorf("aurora: create instance %s: %w", id, err)
	}
	in, err := p.waitAvailable(ctx, id)
	if err != nil {
		return migrate.Node{}, err
	}
	return migrate.Node{ID: id, Role: "reader", Addr: instanceAddr(in), Version: aws.ToString(in.EngineVersion),
		Class: aws.ToString(in.DBInstanceClass), Tier: int(aws.ToInt32(in.PromotionTier))}, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// Remove implements migrate.Provider: DeleteDBInstance, then the DBInstanceDeleted
// waiter.
func (p *Provider) Remove(ctx context.Context, node string) error {
	c, err := p.describeCluster(ctx)
	if err != nil {
		return err
	}
	if writerOf(c) == node {
		return fmt.Errorf("aurora: refusing to delete %s: it is the writer of %s", node, p.cfg.ClusterID)
	}
	if _, err := p.api.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String(node)}); err != nil {
		if hasCode(err, "DBInstanceNotFound") {
			return nil
		}
		return fmt.Errorf("aurora: delete instance %s: %w", node, err)
	}
	return p.waitDeleted(ctx, node)
}
