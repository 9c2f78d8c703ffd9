package aurora

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/rehearse-dev/rehearse/migrate"
)

// Kind is the provider's kind, as scenarios and --target spell it.
const Kind = "aurora"

// NeededActions are the IAM actions a wet run calls (a dry run needs only the
// Describe ones).
var NeededActions = []string{"rds:DescribeDBClusters", "rds:DescribeDBInstances", "rds:ModifyDBCluster",
	"rds:CreateDBInstance", "rds:FailoverDBCluster", "rds:DeleteDBInstance"}

// Provider drives an Aurora PostgreSQL cluster through the RDS API. It implements
// migrate.Provider.
type Provider struct {
	cfg    Config
	api    *rds.Client
	region string

	mu    sync.Mutex
	calls []Call
}

var _ migrate.Provider = (*Provider)(nil)

// PermissionError is an AccessDenied answer, naming the IAM action that is missing.
// It matches ErrAccessDenied and unwraps to the SDK's error.
type PermissionError struct {
	// Action is the IAM action, e.g. rds:CreateDBInstance.
	Action string
	// Err is the SDK's error.
	Err error
}

// Error says which permission is missing.
func (e *PermissionError) Error() string {
	return fmt.Sprintf("%s is not allowed for this identity: add it to the IAM policy (see README, \"Rehearsing against a real Aurora cluster\"): %v", e.Action, e.Err)
}

// Unwrap returns ErrAccessDenied and the SDK's error.
func (e *PermissionError) Unwrap() []error { return []error{ErrAccessDenied, e.Err} }

// New returns a provider for cfg.ClusterID. It loads the AWS configuration through
// the standard chain (or, for a loopback EndpointURL, fixed emulator credentials with
// IMDS off) but makes no API call.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg = cfg.withDefaults()
	p := &Provider{cfg: cfg}
	var opts []func(*config.LoadOptions) error
	region := cfg.Region
	creds := cfg.Credentials
	if cfg.EndpointURL != "" && isLoopbackURL(cfg.EndpointURL) {
		// The emulator accepts any credentials: never send real ones to it, and never
		// reach for the instance metadata service.
		opts = append(opts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
		if region == "" {
			region = "us-east-1"
		}
		if creds == nil {
			creds = credentials.NewStaticCredentialsProvider("REHEARSEEMULATOR", "rehearse-emulator", "")
		}
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if creds != nil {
		opts = append(opts, config.WithCredentialsProvider(creds))
	}
	opts = append(opts, config.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			if cfg.RetryMaxAttempts > 0 {
				o.MaxAttempts = cfg.RetryMaxAttempts
			}
			if cfg.RetryMaxBackoff > 0 {
				o.MaxBackoff = cfg.RetryMaxBackoff
			}
		})
	}))
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("aurora: load the AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("%w: no AWS region: set AWS_REGION, a profile's region, or the provider's Region", ErrInvalidConfig)
	}
	p.region = awsCfg.Region
	p.api = rds.NewFromConfig(awsCfg, func(o *rds.Options) {
		if cfg.EndpointURL != "" {
			o.BaseEndpoint = aws.String(cfg.EndpointURL)
		}
		o.APIOptions = append(o.APIOptions, p.addRecorder)
	})
	return p, nil
}

// Kind implements migrate.Provider.
func (p *Provider) Kind() string { return Kind }

// ClusterID returns the target cluster's identifier.
func (p *Provider) ClusterID() string { return p.cfg.ClusterID }

// Region returns the region the provider talks to.
func (p *Provider) Region() string { return p.region }

// Client returns the SDK client (for callers that need more of the RDS API).
func (p *Provider) Client() *rds.Client { return p.api }

// Calls returns every API call made so far.
func (p *Provider) Calls() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// addRecorder records every operation — including a waiter's — with its duration,
// attempts and result, and names the IAM action of an AccessDenied answer.
func (p *Provider) addRecorder(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("RehearseRecordCall",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			op := middleware.GetOperationName(ctx)
			start, began := p.cfg.Now(), time.Now()
			out, md, err := next.HandleInitialize(ctx, in)
			if err != nil {
				err = permissionError(op, err)
			}
			c := Call{Action: op, Start: start, Duration: time.Since(began), Err: err, Attempts: 1}
			if rid, ok := awsmiddleware.GetRequestIDMetadata(md); ok {
				c.RequestID = rid
			}
			if res, ok := retry.GetAttemptResults(md); ok && len(res.Results) > 0 {
				c.Attempts = len(res.Results)
			}
			p.record(c)
			return out, md, err
		}), middleware.After)
}

func (p *Provider) record(c Call) {
	p.mu.Lock()
	p.calls = append(p.calls, c)
	p.mu.Unlock()
	fmt.Fprintf(p.cfg.Log, "aurora: %s\n", c)
	if p.cfg.OnCall != nil {
		p.cfg.OnCall(c)
	}
}

// mark and since collect the calls of one step, for its detail.
func (p *Provider) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

func (p *Provider) since(mark int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, c := range p.calls[min(mark, len(p.calls)):] {
		out = append(out, c.String())
	}
	return out
}

// permissionError turns an AccessDenied answer into a PermissionError naming the action.
func permissionError(op string, err error) error {
	var pe *PermissionError
	if errors.As(err, &pe) {
		return err
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "NotAuthorized":
			return &PermissionError{Action: "rds:" + op, Err: err}
		}
	}
	return err
}

func hasCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}

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

// Preflight implements migrate.Provider: DescribeDBClusters and DescribeDBInstances
// only. It checks that the cluster is available, runs aurora-postgresql at a version
// with local write forwarding, has a writer, and that the instance to create does not
// exist; it reports the members, the Serverless v2 scaling, the write forwarding
// status and the endpoints, and warns when the DSN names an instance endpoint.
func (p *Provider) Preflight(ctx context.Context) ([]migrate.Check, error) {
	c, err := p.describeCluster(ctx)
	if err != nil {
		return nil, err
	}
	ins, err := p.describeInstances(ctx)
	if err != nil {
		return nil, err
	}
	engine, version := aws.ToString(c.Engine), aws.ToString(c.EngineVersion)
	status := aws.ToString(c.Status)
	writer := writerOf(c)
	var members []string
	for _, m := range c.DBClusterMembers {
		id := aws.ToString(m.DBInstanceIdentifier)
		role := "reader"
		if aws.ToBool(m.IsClusterWriter) {
			role = "writer"
		}
		in := ins[id]
		members = append(members, fmt.Sprintf("%s (%s, tier %d, %s, %s)", id, role, aws.ToInt32(m.PromotionTier),
			aws.ToString(in.DBInstanceClass), aws.ToString(in.DBInstanceStatus)))
	}
	scaling := "none: create_replica sets " + acuRange(p.cfg.MinACU, p.cfg.MaxACU)
	if s := c.ServerlessV2ScalingConfiguration; s != nil {
		scaling = acuRange(aws.ToFloat64(s.MinCapacity), aws.ToFloat64(s.MaxCapacity))
	}
	_, exists := member(c, p.cfg.InstanceID)
	checks := []migrate.Check{
		{Name: "cluster available", OK: status == "available", Detail: p.cfg.ClusterID + " is " + status},
		{Name: "engine", OK: engine == DefaultEngine, Detail: engine + " " + version},
		{Name: "local write forwarding supported", OK: SupportsLocalWriteForwarding(version),
			Detail: versionDetail(engine, version)},
		{Name: "writer", OK: writer != "", Detail: orNone(writer)},
		{Name: "members", OK: true, Detail: strings.Join(members, "; ")},
		{Name: "serverless v2 scaling", OK: true, Detail: scaling},
		{Name: "local write forwarding status", OK: true, Detail: orNone(string(c.LocalWriteForwardingStatus))},
		{Name: "endpoints", OK: true, Detail: "writer " + hostPort(c.Endpoint, c.Port) + ", reader " + hostPort(c.ReaderEndpoint, c.Port)},
		{Name: "new instance id free", OK: !exists, Warning: true, Detail: p.cfg.InstanceID + map[bool]string{true: " already exists in the cluster", false: " is free"}[exists]},
		{Name: "IAM permissions", OK: true, Detail: "verified by calling them: rds:DescribeDBClusters, rds:DescribeDBInstances; a wet run also needs rds:ModifyDBCluster, rds:CreateDBInstance, rds:FailoverDBCluster, rds:DeleteDBInstance (not checkable without side effects: a denial is reported by name at first use)"},
	}
	checks = append(checks, p.dsnCheck(c, ins))
	return checks, nil
}

func (p *Provider) dsnCheck(c types.DBCluster, ins map[string]types.DBInstance) migrate.Check {
	ck := migrate.Check{Name: "DSN names the cluster endpoint", OK: true, Warning: true}
	if p.cfg.DSN == "" {
		ck.Detail = "no DSN given; the load uses the cluster endpoints"
		return ck
	}
	host, addr := dsnHost(p.cfg.DSN), dsnAddr(p.cfg.DSN)
	for id, in := range ins {
		if a := instanceAddr(in); a != "" && strings.EqualFold(a, addr) && !strings.EqualFold(addr, hostPort(c.Endpoint, c.Port)) {
			ck.OK = false
			ck.Detail = fmt.Sprintf("the DSN's host %s is instance %s's own endpoint: after the failover it no longer reaches the writer; use the cluster endpoint %s", host, id, aws.ToString(c.Endpoint))
			return ck
		}
	}
	if strings.HasSuffix(host, ".rds.amazonaws.com") {
		if _, ok := ClusterIDFromDSN(p.cfg.DSN); !ok {
			ck.OK = false
			ck.Detail = fmt.Sprintf("the DSN's host %s is not a cluster endpoint (ID.cluster-...): after the failover it may not reach the writer; use %s", host, aws.ToString(c.Endpoint))
			return ck
		}
	}
	ck.Detail = "the load connects to the cluster endpoints DescribeDBClusters reports (the DSN supplies user, database and TLS)"
	return ck
}

// dsnAddr returns a postgres URL's host:port (port 5432 when it names none).
func dsnAddr(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// waiterTimedOut reports whether an SDK waiter gave up at its maximum wait.
func waiterTimedOut(err error) bool {
	return strings.Contains(err.Error(), "exceeded max wait time") || errors.Is(err, context.DeadlineExceeded)
}

func versionDetail(engine, version string) string {
	if SupportsLocalWriteForwarding(version) {
		return engine + " " + version + " has local write forwarding"
	}
	return fmt.Sprintf("%s %s has no local write forwarding: upgrade to Aurora PostgreSQL 16.4+, 15.8+ or 14.13+", engine, version)
}

func acuRange(lo, hi float64) string {
	return strconv.FormatFloat(lo, 'f', -1, 64) + "-" + strconv.FormatFloat(hi, 'f', -1, 64) + " ACU"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

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

// waitAvailable runs the SDK's DBInstanceAvailable waiter, with AccessDenied
// reported at once and a timeout that says what the instance was doing.
func (p *Provider) waitAvailable(ctx context.Context, id string) (types.DBInstance, error) {
	var last string
	w := rds.NewDBInstanceAvailableWaiter(p.api, func(o *rds.DBInstanceAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = p.cfg.WaiterMinDelay, p.cfg.WaiterMaxDelay
		def := o.Retryable
		o.Retryable = func(ctx context.Context, in *rds.DescribeDBInstancesInput, out *rds.DescribeDBInstancesOutput, err error) (bool, error) {
			if errors.Is(err, ErrAccessDenied) {
				return false, err
			}
			if out != nil && len(out.DBInstances) > 0 {
				last = aws.ToString(out.DBInstances[0].DBInstanceStatus)
			}
			return def(ctx, in, out, err)
		}
	})
	out, err := w.WaitForOutput(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)}, p.cfg.CreateTimeout)
	switch {
	case err == nil && len(out.DBInstances) > 0:
		return out.DBInstances[0], nil
	case err == nil:
		return types.DBInstance{}, fmt.Errorf("%w: instance %s", ErrNotFound, id)
	case errors.Is(err, ErrAccessDenied):
		return types.DBInstance{}, fmt.Errorf("aurora: wait for instance %s: %w", id, err)
	case ctx.Err() == nil && waiterTimedOut(err):
		return types.DBInstance{}, fmt.Errorf("%w: instance %s was not available after %v (last status %q); it was left in place: delete it or wait for it",
			ErrWaiterTimeout, id, p.cfg.CreateTimeout, last)
	}
	return types.DBInstance{}, fmt.Errorf("aurora: wait for instance %s to be available (last status %q): %w", id, last, err)
}

// waitCluster polls DescribeDBClusters until done, for at most limit.
func (p *Provider) waitCluster(ctx context.Context, limit time.Duration, what string, done func(types.DBCluster) bool) (types.DBCluster, error) {
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(p.cfg.Poll)
	defer tick.Stop()
	var (
		last    types.DBCluster
		lastErr error
	)
	for {
		c, err := p.describeCluster(wctx)
		if err == nil {
			last = c
			if done(c) {
				return c, nil
			}
		} else if errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrNotFound) {
			return c, err
		} else {
			lastErr = err
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return last, fmt.Errorf("aurora: waiting for %s: %w", what, ctx.Err())
			}
			return last, fmt.Errorf("%w: %s did not happen within %v (cluster status %q, last error %v)",
				ErrWaiterTimeout, what, limit, aws.ToString(last.Status), lastErr)
		case <-tick.C:
		}
	}
}

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
	var last string
	w := rds.NewDBInstanceDeletedWaiter(p.api, func(o *rds.DBInstanceDeletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = p.cfg.WaiterMinDelay, p.cfg.WaiterMaxDelay
		def := o.Retryable
		o.Retryable = func(ctx context.Context, in *rds.DescribeDBInstancesInput, out *rds.DescribeDBInstancesOutput, err error) (bool, error) {
			if errors.Is(err, ErrAccessDenied) {
				return false, err
			}
			if out != nil && len(out.DBInstances) > 0 {
				last = aws.ToString(out.DBInstances[0].DBInstanceStatus)
			}
			return def(ctx, in, out, err)
		}
	})
	err = w.Wait(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(node)}, p.cfg.DeleteTimeout)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrAccessDenied):
		return fmt.Errorf("aurora: wait for instance %s to be deleted: %w", node, err)
	case ctx.Err() == nil && waiterTimedOut(err):
		return fmt.Errorf("%w: instance %s was not deleted after %v (last status %q)", ErrWaiterTimeout, node, p.cfg.DeleteTimeout, last)
	}
	return fmt.Errorf("aurora: wait for instance %s to be deleted (last status %q): %w", node, last, err)
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

// Close implements migrate.Provider; the provider holds no connection between calls.
func (p *Provider) Close(ctx context.Context) error { return nil }
