package aurora

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/rehearse-dev/rehearse/migrate"
)

// SetForwarding implements migrate.Provider: ModifyDBCluster
// EnableLocalWriteForwarding, then poll until LocalWriteForwardingStatus says so.
func (p *Provider) SetForwarding(ctx context.Context, on bool) error {
	c, err := p.describeCluster(ctx)
	if err != nil {
		return err
	}
	want := types.LocalWriteForwardingStatusDisabled
	if on {
		want = types.LocalWriteForwardingStatusEnabled
		if v := aws.ToString(c.EngineVersion); !SupportsLocalWriteForwarding(v) {
			return fmt.Errorf("%w: %s", ErrUnsupportedVersion, versionDetail(aws.ToString(c.Engine), v))
		}
	}
	if c.LocalWriteForwardingStatus == want {
		return nil
	}
	if _, err := p.api.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{
		DBClusterIdentifier:        aws.String(p.cfg.ClusterID),
		EnableLocalWriteForwarding: aws.Bool(on),
		ApplyImmediately:           aws.Bool(true),
	}); err != nil {
		return fmt.Errorf("aurora: set local write forwarding %v on %s: %w", on, p.cfg.ClusterID, err)
	}
	_, err = p.waitCluster(ctx, p.cfg.ForwardingTimeout, "LocalWriteForwardingStatus "+string(want), func(c types.DBCluster) bool {
		return c.LocalWriteForwardingStatus == want && aws.ToString(c.Status) == "available"
	})
	return err
}

// Switchover implements migrate.Provider: FailoverDBCluster onto target (retried on
// InvalidDBClusterStateFault), then poll DescribeDBClusters until target
// IsClusterWriter and the cluster is available (the SDK has no waiter for this).
func (p *Provider) Switchover(ctx context.Context, target string) (migrate.Promotion, error) {
	mark := p.mark()
	pr := migrate.Promotion{To: target, Detail: map[string]any{}}
	defer func() { pr.Detail["api_calls"] = p.since(mark) }()
	c, err := p.describeCluster(ctx)
	if err != nil {
		return pr, err
	}
	pr.From = writerOf(c)
	if pr.From == target {
		return pr, fmt.Errorf("aurora: %s is already the writer of %s", target, p.cfg.ClusterID)
	}
	if _, ok := member(c, target); !ok {
		return pr, fmt.Errorf("%w: instance %s is not a member of %s", ErrNotFound, target, p.cfg.ClusterID)
	}
	if lag, err := p.Lag(ctx, target); err == nil {
		pr.LagBytes, pr.LagTime = lag.Bytes, lag.Time
	}
	start := time.Now()
	attempts := 0
	for {
		attempts++
		_, err := p.api.FailoverDBCluster(ctx, &rds.FailoverDBClusterInput{
			DBClusterIdentifier:        aws.String(p.cfg.ClusterID),
			TargetDBInstanceIdentifier: aws.String(target),
		})
		if err == nil {
			break
		}
		var state *types.InvalidDBClusterStateFault
		if !errors.As(err, &state) {
			return pr, fmt.Errorf("aurora: fail over %s to %s: %w", p.cfg.ClusterID, target, err)
		}
		if attempts > p.cfg.FailoverRetries {
			pr.Detail["failover_attempts"] = attempts
			return pr, fmt.Errorf("%w: FailoverDBCluster %s to %s was refused %d times (InvalidDBClusterStateFault: %s); the writer is still %s",
				ErrInvalidClusterState, p.cfg.ClusterID, target, attempts, state.ErrorMessage(), pr.From)
		}
		fmt.Fprintf(p.cfg.Log, "aurora: FailoverDBCluster refused (%s); retrying in %v\n", state.ErrorMessage(), p.cfg.FailoverRetryDelay)
		t := time.NewTimer(p.cfg.FailoverRetryDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return pr, fmt.Errorf("aurora: fail over to %s: %w", target, ctx.Err())
		case <-t.C:
		}
	}
	pr.Detail["failover_attempts"] = attempts
	accepted := time.Now()
	var flipped time.Duration
	_, err = p.waitCluster(ctx, p.cfg.FailoverTimeout, target+" to be the writer of an available cluster", func(c types.DBCluster) bool {
		if writerOf(c) != target {
			return false
		}
		if flipped == 0 {
			flipped = time.Since(accepted)
		}
		return aws.ToString(c.Status) == "available"
	})
	pr.Promote = flipped
	pr.Stall = time.Since(start)
	if err != nil {
		return pr, err
	}
	return pr, nil
}

// Redirect implements migrate.Provider: Aurora's cluster endpoints follow the writer
// by themselves (DNS); this returns once a connection through the writer endpoint
// reaches writer (aurora_db_instance_identifier()) and it takes writes.
func (p *Provider) Redirect(ctx context.Context, writer string) (map[string]any, error) {
	mark := p.mark()
	start := time.Now()
	w, _, err := p.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	d := map[string]any{"writer": writer, "writer_endpoint": w}
	probes, got, err := p.probeWriter(ctx, w, writer)
	d["probes"] = probes
	d["reached"] = got
	d["redirect_ms"] = float64(time.Since(start).Microseconds()) / 1000
	d["api_calls"] = p.since(mark)
	return d, err
}

// Rejoin implements migrate.Provider: after a failover Aurora keeps the old writer
// in the cluster as a reader; this waits until it is an available reader.
func (p *Provider) Rejoin(ctx context.Context, node string) (map[string]any, error) {
	mark := p.mark()
	tick := time.NewTicker(p.cfg.Poll)
	defer tick.Stop()
	for {
		c, err := p.describeCluster(ctx)
		if err != nil {
			return nil, err
		}
		m, ok := member(c, node)
		if !ok {
			return nil, fmt.Errorf("%w: %s is no longer a member of %s", ErrNotFound, node, p.cfg.ClusterID)
		}
		if aws.ToBool(m.IsClusterWriter) {
			return nil, fmt.Errorf("aurora: %s is the writer; it cannot follow itself", node)
		}
		var status string
		if ins, err := p.describeInstances(ctx); err == nil {
			status = aws.ToString(ins[node].DBInstanceStatus)
		} else if errors.Is(err, ErrAccessDenied) {
			return nil, err
		}
		if status == "available" && aws.ToString(c.Status) == "available" {
			return map[string]any{"node": node, "role": "reader", "follows": writerOf(c), "api_calls": p.since(mark)}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("aurora: %s did not become an available reader (status %q, cluster %q): %w", node, status, aws.ToString(c.Status), ctx.Err())
		case <-tick.C:
		}
	}
}

// Recover implements migrate.Provider. A failover that RDS refused or that timed
// out leaves nothing stopped that the provider could restart: it checks that writer
// is still the cluster's writer and says so when it is not.
func (p *Provider) Recover(ctx context.Context, writer string) error {
	c, err := p.describeCluster(ctx)
	if err != nil {
		return err
	}
	if w := writerOf(c); w != writer {
		return fmt.Errorf("aurora: the writer of %s is %s, not %s (cluster status %q): the failover went ahead; check the cluster before retrying",
			p.cfg.ClusterID, orNone(w), writer, aws.ToString(c.Status))
	}
	return nil
}
