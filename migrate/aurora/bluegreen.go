package aurora

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/pgsql"
)

// BlueGreenActions are the IAM actions a blue/green cutover needs (AWS's list for
// Aurora: RDS creates, switches over and deletes the green resources on the
// caller's behalf); a dry run needs only the Describe ones.
var BlueGreenActions = []string{
	"rds:DescribeDBClusters", "rds:DescribeDBInstances", "rds:DescribeBlueGreenDeployments",
	"rds:CreateBlueGreenDeployment", "rds:AddTagsToResource", "rds:CreateDBCluster", "rds:CreateDBInstance", "rds:CreateDBClusterEndpoint",
	"rds:SwitchoverBlueGreenDeployment", "rds:ModifyDBCluster", "rds:PromoteReadReplicaDBCluster",
	"rds:DeleteBlueGreenDeployment", "rds:DeleteDBCluster", "rds:DeleteDBInstance", "rds:DeleteDBClusterEndpoint",
}

// Blue/green deployment statuses, as DescribeBlueGreenDeployments reports them.
const (
	BlueGreenProvisioning         = "PROVISIONING"
	BlueGreenAvailable            = "AVAILABLE"
	BlueGreenSwitchoverInProgress = "SWITCHOVER_IN_PROGRESS"
	BlueGreenSwitchoverCompleted  = "SWITCHOVER_COMPLETED"
	BlueGreenInvalidConfiguration = "INVALID_CONFIGURATION"
	BlueGreenSwitchoverFailed     = "SWITCHOVER_FAILED"
	BlueGreenDeleting             = "DELETING"
)

var _ migrate.BlueGreen = (*Provider)(nil)

// switchoverPoll is the longest pause between DescribeBlueGreenDeployments calls
// while a switchover runs.
const switchoverPoll = time.Second

// ErrBlueGreen means a blue/green deployment reached a status it cannot go on
// from (INVALID_CONFIGURATION); the error carries its StatusDetails.
var ErrBlueGreen = errors.New("aurora: blue/green deployment failed")

// PreflightBlueGreen implements migrate.BlueGreen: DescribeDBClusters (available,
// aurora-postgresql, the green engine version not older than blue's) and
// DescribeBlueGreenDeployments (none for the cluster yet) — Describe calls only —
// and, over SQL through the writer endpoint, what logical replication needs and
// cannot carry (wal_level is logical when rds.logical_replication is 1).
func (p *Provider) PreflightBlueGreen(ctx context.Context, spec migrate.GreenSpec) ([]migrate.Check, error) {
	c, err := p.describeCluster(ctx)
	if err != nil {
		return nil, err
	}
	engine, version, status := aws.ToString(c.Engine), aws.ToString(c.EngineVersion), aws.ToString(c.Status)
	deps, err := p.deploymentsOf(ctx, aws.ToString(c.DBClusterArn))
	if err != nil {
		return nil, err
	}
	existing := migrate.Check{Name: "no blue/green deployment yet", OK: len(deps) == 0, Detail: "none"}
	if len(deps) > 0 {
		existing.Detail = fmt.Sprintf("%s is %s: delete it first (a cluster has one deployment at a time)", aws.ToString(deps[0].BlueGreenDeploymentIdentifier), aws.ToString(deps[0].Status))
	}
	ver := migrate.Check{Name: "green engine version not older than blue's", OK: true, Detail: "green runs " + version + ", as blue"}
	if want := spec.EngineVersion; want != "" {
		ver.Detail = "green runs " + want + ", blue " + version
		if migrate.CompareVersions(want, version) < 0 {
			ver.OK, ver.Detail = false, fmt.Sprintf("TargetEngineVersion %s is older than the cluster's %s: a blue/green deployment cannot downgrade", want, version)
		}
	}
	checks := []migrate.Check{
		{Name: "cluster available", OK: status == "available", Detail: p.cfg.ClusterID + " is " + status},
		{Name: "engine", OK: engine == DefaultEngine, Detail: engine + " " + version},
		ver, existing,
		{Name: "IAM permissions", OK: true, Detail: "verified by calling them: rds:DescribeDBClusters, rds:DescribeBlueGreenDeployments; a wet run also needs " + strings.Join(BlueGreenActions[3:], ", ") + " (not checkable without side effects: a denial is reported by name at first use)"},
	}
	w, _, err := p.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := p.connect(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("aurora: the SQL checks need the writer: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	logical, err := pgsql.PreflightLogical(ctx, pgsql.ConnQuery(conn))
	if err != nil {
		return nil, fmt.Errorf("aurora: through %s: %w", w, err)
	}
	return append(checks, logical...), nil
}

// deploymentsOf lists the blue/green deployments whose source is the cluster arn
// (not those being deleted).
func (p *Provider) deploymentsOf(ctx context.Context, arn string) ([]types.BlueGreenDeployment, error) {
	out, err := p.api.DescribeBlueGreenDeployments(ctx, &rds.DescribeBlueGreenDeploymentsInput{
		Filters: []types.Filter{{Name: aws.String("source"), Values: []string{arn}}},
	})
	if err != nil {
		return nil, fmt.Errorf("aurora: describe the blue/green deployments of %s: %w", p.cfg.ClusterID, err)
	}
	var deps []types.BlueGreenDeployment
	for _, d := range out.BlueGreenDeployments {
		if aws.ToString(d.Status) != BlueGreenDeleting {
			deps = append(deps, d)
		}
	}
	return deps, nil
}

// createInput is the CreateBlueGreenDeployment request for the cluster c. The
// instance class is not sent: for Aurora RDS refuses TargetDBInstanceClass (green's
// instances are modified after creation).
func (p *Provider) createInput(c types.DBCluster, spec migrate.GreenSpec) *rds.CreateBlueGreenDeploymentInput {
	in := &rds.CreateBlueGreenDeploymentInput{
		BlueGreenDeploymentName: aws.String(p.cfg.ClusterID + "-rehearse-" + p.cfg.Now().UTC().Format("20060102-150405")),
		Source:                  c.DBClusterArn,
	}
	if spec.EngineVersion != "" {
		in.TargetEngineVersion = aws.String(spec.EngineVersion)
	}
	if spec.ParameterGroup != "" {
		in.TargetDBClusterParameterGroupName = aws.String(spec.ParameterGroup)
	}
	return in
}

// PlanGreen implements migrate.BlueGreen, read-only: what CreateGreen would send.
func (p *Provider) PlanGreen(ctx context.Context, spec migrate.GreenSpec) (map[string]any, error) {
	mark := p.mark()
	c, err := p.describeCluster(ctx)
	if err != nil {
		return nil, err
	}
	in := p.createInput(c, spec)
	call := fmt.Sprintf("CreateBlueGreenDeployment BlueGreenDeploymentName=%s Source=%s", aws.ToString(in.BlueGreenDeploymentName), aws.ToString(in.Source))
	if in.TargetEngineVersion != nil {
		call += " TargetEngineVersion=" + *in.TargetEngineVersion
	}
	if in.TargetDBClusterParameterGroupName != nil {
		call += " TargetDBClusterParameterGroupName=" + *in.TargetDBClusterParameterGroupName
	}
	d := map[string]any{
		"would_call": []string{call, fmt.Sprintf("DescribeBlueGreenDeployments until AVAILABLE (at most %v)", p.cfg.CreateTimeout)},
		"api_calls":  p.since(mark),
	}
	if spec.InstanceClass != "" {
		d["instance_class"] = "green.instance_class " + spec.InstanceClass + " is not sent: RDS takes no TargetDBInstanceClass for Aurora; green's instances are blue's classes until modified"
	}
	return d, nil
}

// CreateGreen implements migrate.BlueGreen: CreateBlueGreenDeployment, then
// DescribeBlueGreenDeployments until it is AVAILABLE (INVALID_CONFIGURATION ends
// the wait with its StatusDetails).
func (p *Provider) CreateGreen(ctx context.Context, spec migrate.GreenSpec) (migrate.Deployment, error) {
	mark := p.mark()
	dep := migrate.Deployment{Blue: p.cfg.ClusterID, Detail: map[string]any{}}
	defer func() { dep.Detail["api_calls"] = p.since(mark) }()
	c, err := p.describeCluster(ctx)
	if err != nil {
		return dep, err
	}
	out, err := p.api.CreateBlueGreenDeployment(ctx, p.createInput(c, spec))
	if err != nil {
		return dep, fmt.Errorf("aurora: create a blue/green deployment of %s: %w", p.cfg.ClusterID, err)
	}
	id := aws.ToString(out.BlueGreenDeployment.BlueGreenDeploymentIdentifier)
	p.mu.Lock()
	p.bgID = id
	p.mu.Unlock()
	dep.ID = id
	bg, err := p.waitDeployment(ctx, p.cfg.CreateTimeout, BlueGreenAvailable)
	fill(&dep, bg, writerOf(c))
	return dep, err
}

// fill copies what a deployment says into dep.
func fill(dep *migrate.Deployment, bg types.BlueGreenDeployment, blueWriter string) {
	dep.Status = aws.ToString(bg.Status)
	dep.Green = idOf(aws.ToString(bg.Target))
	for _, d := range bg.SwitchoverDetails {
		if idOf(aws.ToString(d.SourceMember)) == blueWriter {
			dep.GreenWriter = idOf(aws.ToString(d.TargetMember))
		}
	}
	if s := aws.ToString(bg.StatusDetails); s != "" {
		dep.Detail["status_details"] = s
	}
	dep.Detail["switchover_details"] = members(bg)
}

// members formats a deployment's SwitchoverDetails.
func members(bg types.BlueGreenDeployment) []string {
	var out []string
	for _, d := range bg.SwitchoverDetails {
		out = append(out, fmt.Sprintf("%s -> %s: %s", idOf(aws.ToString(d.SourceMember)), idOf(aws.ToString(d.TargetMember)), aws.ToString(d.Status)))
	}
	return out
}

// idOf is the resource name at the end of an ARN (the ARN itself when it has none).
func idOf(arn string) string {
	if i := strings.LastIndexByte(arn, ':'); i >= 0 {
		return arn[i+1:]
	}
	return arn
}

// deploymentID is the deployment CreateGreen created.
func (p *Provider) deploymentID() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bgID == "" {
		return "", errors.New("aurora: there is no blue/green deployment")
	}
	return p.bgID, nil
}

// describeDeployment describes the deployment (DescribeBlueGreenDeployments).
func (p *Provider) describeDeployment(ctx context.Context) (types.BlueGreenDeployment, error) {
	id, err := p.deploymentID()
	if err != nil {
		return types.BlueGreenDeployment{}, err
	}
	out, err := p.api.DescribeBlueGreenDeployments(ctx, &rds.DescribeBlueGreenDeploymentsInput{BlueGreenDeploymentIdentifier: aws.String(id)})
	if err != nil {
		var nf *types.BlueGreenDeploymentNotFoundFault
		if errors.As(err, &nf) {
			return types.BlueGreenDeployment{}, fmt.Errorf("%w: blue/green deployment %s: %w", ErrNotFound, id, err)
		}
		return types.BlueGreenDeployment{}, fmt.Errorf("aurora: describe blue/green deployment %s: %w", id, err)
	}
	if len(out.BlueGreenDeployments) == 0 {
		return types.BlueGreenDeployment{}, fmt.Errorf("%w: blue/green deployment %s", ErrNotFound, id)
	}
	return out.BlueGreenDeployments[0], nil
}

// waitDeployment polls DescribeBlueGreenDeployments until the deployment's status
// is want, for at most limit. INVALID_CONFIGURATION and SWITCHOVER_FAILED end the
// wait with the status details.
func (p *Provider) waitDeployment(ctx context.Context, limit time.Duration, want string) (types.BlueGreenDeployment, error) {
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(p.cfg.Poll)
	defer tick.Stop()
	var last types.BlueGreenDeployment
	for {
		bg, err := p.describeDeployment(wctx)
		if err == nil {
			last = bg
			switch st := aws.ToString(bg.Status); st {
			case want:
				return bg, nil
			case BlueGreenInvalidConfiguration, BlueGreenSwitchoverFailed:
				return bg, fmt.Errorf("%w: %s is %s: %s", ErrBlueGreen, aws.ToString(bg.BlueGreenDeploymentIdentifier), st, aws.ToString(bg.StatusDetails))
			}
		} else if errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrNotFound) {
			return bg, err
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return last, fmt.Errorf("aurora: waiting for the blue/green deployment to be %s: %w", want, ctx.Err())
			}
			return last, fmt.Errorf("%w: the blue/green deployment was not %s within %v (status %q)", ErrWaiterTimeout, want, limit, aws.ToString(last.Status))
		case <-tick.C:
		}
	}
}

// GreenSync implements migrate.BlueGreen: the deployment's status and its
// members' (DescribeBlueGreenDeployments), and blue's logical slots' lag over SQL.
// RDS does not say how far each table's initial copy is (Tables is -1).
func (p *Provider) GreenSync(ctx context.Context) (migrate.GreenSync, error) {
	gs := migrate.GreenSync{Tables: -1, Ready: -1}
	bg, err := p.describeDeployment(ctx)
	if err != nil {
		return gs, err
	}
	gs.Status = aws.ToString(bg.Status)
	gs.Switchable = gs.Status == BlueGreenAvailable
	for _, d := range bg.SwitchoverDetails {
		if aws.ToString(d.Status) != BlueGreenAvailable {
			gs.Switchable = false
			gs.NotReady = append(gs.NotReady, idOf(aws.ToString(d.TargetMember))+" "+aws.ToString(d.Status))
		}
	}
	lag, err := p.logicalLag(ctx)
	if err != nil {
		return gs, err
	}
	gs.Lag = lag
	return gs, nil
}

// logicalLag reads, through the writer endpoint, how far the active logical slots
// on blue are behind its WAL (the largest lag, and the slowest slot's position).
func (p *Provider) logicalLag(ctx context.Context) (migrate.Lag, error) {
	w, _, err := p.Endpoints(ctx)
	if err != nil {
		return migrate.Lag{}, err
	}
	conn, err := p.connect(ctx, w)
	if err != nil {
		return migrate.Lag{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var l migrate.Lag
	err = conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text, coalesce(min(confirmed_flush_lsn)::text, ''),
  coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)), 0)::bigint
FROM pg_replication_slots WHERE slot_type = 'logical' AND active`).Scan(&l.WriterLSN, &l.ReplayLSN, &l.Bytes)
	if err != nil {
		return l, fmt.Errorf("aurora: blue's logical slots through %s: %w", w, err)
	}
	return l, nil
}

// SwitchoverGreen implements migrate.BlueGreen: SwitchoverBlueGreenDeployment with
// the timeout, then DescribeBlueGreenDeployments until SWITCHOVER_COMPLETED.
// SWITCHOVER_FAILED (or the deployment AVAILABLE again) means RDS rolled it back;
// the error wraps migrate.ErrSwitchoverRolledBack with its StatusDetails. RDS
// blocks writes, syncs sequences and renames inside the call; rehearse sees only
// its duration, which is the longest writes can have been blocked.
func (p *Provider) SwitchoverGreen(ctx context.Context, timeout time.Duration) (migrate.BlueGreenSwitchover, error) {
	mark := p.mark()
	sw := migrate.BlueGreenSwitchover{Timeout: timeout, Promotion: migrate.Promotion{Detail: map[string]any{}}}
	defer func() { sw.Detail["api_calls"] = p.since(mark) }()
	bg, err := p.describeDeployment(ctx)
	if err != nil {
		return sw, err
	}
	id := aws.ToString(bg.BlueGreenDeploymentIdentifier)
	if st := aws.ToString(bg.Status); st != BlueGreenAvailable && st != BlueGreenSwitchoverFailed {
		return sw, fmt.Errorf("aurora: guardrail: blue/green deployment %s is %s, not AVAILABLE", id, st)
	}
	c, err := p.describeCluster(ctx)
	if err != nil {
		return sw, err
	}
	sw.From = writerOf(c)
	if lag, err := p.logicalLag(ctx); err == nil {
		sw.LagBytes = lag.Bytes
	}
	renamed := map[string]string{}
	for _, d := range bg.SwitchoverDetails {
		src, dst := idOf(aws.ToString(d.SourceMember)), idOf(aws.ToString(d.TargetMember))
		renamed[dst], renamed[src] = src, src+migrate.OldSuffix
	}
	start := time.Now()
	if _, err := p.api.SwitchoverBlueGreenDeployment(ctx, &rds.SwitchoverBlueGreenDeploymentInput{
		BlueGreenDeploymentIdentifier: aws.String(id),
		SwitchoverTimeout:             aws.Int32(int32(timeout.Seconds())),
	}); err != nil {
		return sw, fmt.Errorf("aurora: switch over blue/green deployment %s: %w", id, err)
	}
	// The switchover's duration is what users feel: poll it finely.
	tick := time.NewTicker(min(p.cfg.Poll, switchoverPoll))
	defer tick.Stop()
	seen := false
	for {
		bg, err := p.describeDeployment(ctx)
		if err == nil {
			st := aws.ToString(bg.Status)
			seen = seen || st == BlueGreenSwitchoverInProgress
			switch {
			case st == BlueGreenSwitchoverCompleted:
				sw.Duration, sw.Stall = time.Since(start), time.Since(start)
				sw.Switched, sw.Renamed = true, renamed
				if c, err := p.describeCluster(ctx); err == nil {
					sw.To = writerOf(c)
				}
				sw.Detail["sequences"] = "synced by RDS during the switchover"
				return sw, nil
			case st == BlueGreenSwitchoverFailed || (seen && st == BlueGreenAvailable):
				sw.Duration, sw.RolledBack = time.Since(start), true
				cause := errors.New(orNone(aws.ToString(bg.StatusDetails)))
				if sw.Duration >= timeout {
					cause = fmt.Errorf("%w after %v: %w", migrate.ErrSwitchoverTimeout, timeout, cause)
				}
				return sw, fmt.Errorf("aurora: %w: blue/green deployment %s is %s: %w", migrate.ErrSwitchoverRolledBack, id, st, cause)
			}
		} else if errors.Is(err, ErrAccessDenied) {
			return sw, err
		}
		select {
		case <-ctx.Done():
			sw.Duration = time.Since(start)
			return sw, fmt.Errorf("aurora: waiting for blue/green deployment %s to switch over: %w", id, ctx.Err())
		case <-tick.C:
		}
	}
}

// KeepOldBlue implements migrate.BlueGreen: the old blue is the cluster renamed
// -old1 (DescribeDBClusters); RDS keeps it read-only until its writer is rebooted.
func (p *Provider) KeepOldBlue(ctx context.Context) (map[string]any, error) {
	old := p.cfg.ClusterID + migrate.OldSuffix
	out, err := p.api.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(old)})
	if err != nil {
		return nil, fmt.Errorf("aurora: the old blue cluster %s: %w", old, err)
	}
	if len(out.DBClusters) == 0 {
		return nil, fmt.Errorf("%w: the old blue cluster %s", ErrNotFound, old)
	}
	c := out.DBClusters[0]
	var ms []string
	for _, m := range c.DBClusterMembers {
		ms = append(ms, aws.ToString(m.DBInstanceIdentifier))
	}
	return map[string]any{"old_blue": old, "status": aws.ToString(c.Status), "members": ms,
		"endpoint": hostPort(c.Endpoint, c.Port), "writer": writerOf(c)}, nil
}

// DeleteDeployment implements migrate.BlueGreen: DeleteBlueGreenDeployment, with
// DeleteTarget before a switchover (it deletes green: the undo of CreateGreen),
// without after one (RDS refuses it then), then DescribeBlueGreenDeployments until
// the deployment is gone. After a switchover the old blue -old1 cluster stays:
// delete it once it is no longer needed.
func (p *Provider) DeleteDeployment(ctx context.Context) (map[string]any, error) {
	mark := p.mark()
	bg, err := p.describeDeployment(ctx)
	if err != nil {
		return nil, err
	}
	id := aws.ToString(bg.BlueGreenDeploymentIdentifier)
	switched := aws.ToString(bg.Status) == BlueGreenSwitchoverCompleted
	in := &rds.DeleteBlueGreenDeploymentInput{BlueGreenDeploymentIdentifier: aws.String(id)}
	if !switched {
		in.DeleteTarget = aws.Bool(true)
	}
	d := map[string]any{"deployment": id, "delete_target": !switched}
	if _, err := p.api.DeleteBlueGreenDeployment(ctx, in); err != nil {
		d["api_calls"] = p.since(mark)
		return d, fmt.Errorf("aurora: delete blue/green deployment %s: %w", id, err)
	}
	wctx, cancel := context.WithTimeout(ctx, p.cfg.DeleteTimeout)
	defer cancel()
	tick := time.NewTicker(p.cfg.Poll)
	defer tick.Stop()
	for {
		_, err := p.describeDeployment(wctx)
		if errors.Is(err, ErrNotFound) {
			break
		}
		select {
		case <-wctx.Done():
			d["api_calls"] = p.since(mark)
			return d, fmt.Errorf("%w: blue/green deployment %s was not deleted within %v (last error %v)", ErrWaiterTimeout, id, p.cfg.DeleteTimeout, err)
		case <-tick.C:
		}
	}
	p.mu.Lock()
	p.bgID = ""
	p.mu.Unlock()
	if switched {
		d["old_blue"] = p.cfg.ClusterID + migrate.OldSuffix + " is kept (RDS does not delete it with the deployment): delete it once you no longer need it"
	}
	d["api_calls"] = p.since(mark)
	return d, nil
}
