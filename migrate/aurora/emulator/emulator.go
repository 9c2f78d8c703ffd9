// Package emulator is a stand-in for AWS's RDS control plane, over real databases.
//
// It serves the subset of the RDS Query API (Action=...&Version=2014-10-31, XML
// answers) that the aurora provider's cutover uses — DescribeDBClusters,
// DescribeDBInstances, ModifyDBCluster, CreateDBInstance, FailoverDBCluster and
// DeleteDBInstance — so the unmodified aws-sdk-go-v2 RDS client can drive it through
// its BaseEndpoint (rehearse's --aws-endpoint-url). It hosts one Aurora
// PostgreSQL-like cluster and carries every call out on a Backend: with LocalBackend,
// a real local primary/replica cluster (migrate/local) behind Aurora-like cluster
// endpoints (migrate/endpoint). CreateDBInstance starts a real replica
// (pg_basebackup), FailoverDBCluster performs a real promotion and endpoint flip, and
// the Describe calls report the real state.
//
// It is not AWS: there is no IAM (any credentials are accepted, signatures are not
// checked), no storage layer shared between instances (replicas stream WAL), no
// Serverless v2 scaling (the ACU range is recorded, not enforced), and write
// forwarding is emulated at the endpoints. Faults that AWS produces (throttling,
// AccessDenied, InvalidDBClusterStateFault, instances that never become available,
// an old engine version) are injected through Options, for tests.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for zero Options fields.
const (
	// DefaultClusterID is the hosted cluster's identifier.
	DefaultClusterID = "rehearse-demo"
	// DefaultEngineVersion is the reported aurora-postgresql version: one that
	// supports local write forwarding.
	DefaultEngineVersion = "15.8"
	// Engine is the reported engine.
	Engine = "aurora-postgresql"
	// DefaultInstanceClass is the first writer's (provisioned) instance class.
	DefaultInstanceClass = "db.r6g.large"
	// APIVersion is the RDS API version the Query protocol names.
	APIVersion = "2014-10-31"
	// Account is the fake account id in ARNs.
	Account = "000000000000"
)

// Backend carries the API's actions out on a cluster. Node names are the backend's
// (node1, node2, ...); the emulator maps instance identifiers onto them.
type Backend interface {
	// WriterEndpoint and ReaderEndpoint are the cluster endpoints' host:port.
	WriterEndpoint() string
	ReaderEndpoint() string
	// Writer is the current writer node's name.
	Writer() string
	// NodeAddr is a node's own host:port ("" when unknown).
	NodeAddr(node string) string
	// CreateReplica adds a replica of the writer and returns its node name once it
	// streams. progress is called with "creating" while the base backup copies files
	// and "backing-up" once the copy is done and the replica starts and catches up.
	CreateReplica(ctx context.Context, progress func(status string)) (string, error)
	// Failover makes target the writer (a planned switchover), points the endpoints
	// at it and makes the old writer a reader of it again, as Aurora does.
	Failover(ctx context.Context, target string) error
	// SetForwarding turns write forwarding on or off.
	SetForwarding(ctx context.Context, on bool) error
	// Remove stops and deletes a reader node.
	Remove(ctx context.Context, node string) error
	// Sync tells the backend the instance identifiers of its nodes (node -> id), so
	// the SQL functions Aurora has (aurora_replica_status, aurora_db_instance_identifier)
	// report them.
	Sync(ctx context.Context, ids map[string]string) error
}

// Options configure the emulator; zero values mean the defaults.
type Options struct {
	// ClusterID is the hosted cluster's identifier (DefaultClusterID).
	ClusterID string
	// EngineVersion is the reported aurora-postgresql version (DefaultEngineVersion).
	EngineVersion string
	// Region appears in ARNs (us-east-1).
	Region string
	// Log gets one line per API call (nil: none).
	Log io.Writer
	// Faults injects AWS's failure modes (tests).
	Faults Faults
	// Now is the clock for the call log (time.Now).
	Now func() time.Time
}

// Faults are failures the emulator injects, for tests.
type Faults struct {
	// Throttle answers the first N calls of each named action with
	// ThrottlingException (HTTP 400), which the SDK's retryer retries.
	Throttle map[string]int
	// Deny answers every call of the named actions with AccessDenied (HTTP 403), as
	// for an identity without that IAM permission.
	Deny []string
	// FailoverStateFaults answers the first N FailoverDBCluster calls with
	// InvalidDBClusterStateFault.
	FailoverStateFaults int
	// NeverAvailable keeps created instances in "creating" forever (no replica is
	// started): a waiter times out.
	NeverAvailable bool
}

// Call is one API call in the emulator's log.
type Call struct {
	// Action is the Query API action (DescribeDBClusters).
	Action string
	// At is when the call arrived.
	At time.Time
	// Status is the HTTP status answered.
	Status int
	// Code is "OK" or the error code answered.
	Code string
	// Duration is how long answering took.
	Duration time.Duration
}

type instance struct {
	id       string
	class    string
	status   string
	node     string
	tier     int
	created  time.Time
	deleting bool
}

// Server is the emulator: an http.Handler for the RDS Query API over one cluster.
type Server struct {
	b    Backend
	opts Options

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	status     string // the cluster's status
	scaling    *[2]float64
	forwarding string // LocalWriteForwardingStatus
	instances  map[string]*instance
	order      []string
	calls      []Call
	throttled  map[string]int
	failFaults int
	reqID      int
	bgErrs     []error
}

// New returns an emulator over b, whose current writer becomes the instance
// "<cluster>-instance-1".
func New(b Backend, opts Options) *Server {
	if opts.ClusterID == "" {
		opts.ClusterID = DefaultClusterID
	}
	if opts.EngineVersion == "" {
		opts.EngineVersion = DefaultEngineVersion
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		b: b, opts: opts, ctx: ctx, cancel: cancel,
		status: "available", forwarding: "disabled",
		instances: map[string]*instance{}, throttled: map[string]int{},
		failFaults: opts.Faults.FailoverStateFaults,
	}
	first := &instance{id: opts.ClusterID + "-instance-1", class: DefaultInstanceClass, status: "available",
		node: b.Writer(), tier: 1, created: opts.Now()}
	s.instances[first.id] = first
	s.order = append(s.order, first.id)
	return s
}

// ClusterID returns the hosted cluster's identifier.
func (s *Server) ClusterID() string { return s.opts.ClusterID }

// WriterInstance returns the identifier of the instance that is the writer now.
func (s *Server) WriterInstance() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writerLocked()
}

func (s *Server) writerLocked() string {
	w := s.b.Writer()
	for _, id := range s.order {
		if s.instances[id].node == w {
			return id
		}
	}
	return ""
}

// SyncFunctions creates the SQL functions the provider reads (aurora_replica_status,
// aurora_db_instance_identifier) for the current instances; call it once after New.
func (s *Server) SyncFunctions(ctx context.Context) error {
	return s.b.Sync(ctx, s.nodeIDs())
}

func (s *Server) nodeIDs() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := map[string]string{}
	for _, in := range s.instances {
		if in.node != "" {
			ids[in.node] = in.id
		}
	}
	return ids
}

// Calls returns a copy of the call log.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Actions returns the actions of the call log, in order.
func (s *Server) Actions() []string {
	var out []string
	for _, c := range s.Calls() {
		out = append(out, c.Action)
	}
	return out
}

// Errors returns the errors of background work (replica creation, failover,
// deletion) so far.
func (s *Server) Errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.bgErrs...)
}

// Close stops background work and waits for it; it does not stop the backend.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
}

// Serve answers the API on ln until ctx ends, then shuts the HTTP server down.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	err := hs.Serve(ln)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// apiError is an error answer.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func fault(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP implements http.Handler: one Query API call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.opts.Now()
	began := time.Now()
	if err := r.ParseForm(); err != nil {
		s.answer(w, "", start, began, nil, fault(400, "MalformedQueryString", "cannot parse the request: %v", err))
		return
	}
	action := r.Form.Get("Action")
	if v := r.Form.Get("Version"); v != "" && v != APIVersion {
		s.answer(w, action, start, began, nil, fault(400, "InvalidParameterValue", "unsupported API version %q; the emulator speaks %s", v, APIVersion))
		return
	}
	if e := s.injected(action); e != nil {
		s.answer(w, action, start, began, nil, e)
		return
	}
	var (
		body any
		err  *apiError
	)
	switch action {
	case "DescribeDBClusters":
		body, err = s.describeClusters(r.Form)
	case "DescribeDBInstances":
		body, err = s.describeInstances(r.Form)
	case "ModifyDBCluster":
		body, err = s.modifyCluster(r.Form)
	case "CreateDBInstance":
		body, err = s.createInstance(r.Form)
	case "FailoverDBCluster":
		body, err = s.failover(r.Form)
	case "DeleteDBInstance":
		body, err = s.deleteInstance(r.Form)
	case "":
		err = fault(400, "MissingAction", "the request has no Action parameter")
	default:
		err = fault(400, "InvalidAction", "the emulator does not implement %s (it serves DescribeDBClusters, DescribeDBInstances, ModifyDBCluster, CreateDBInstance, FailoverDBCluster, DeleteDBInstance)", action)
	}
	s.answer(w, action, start, began, body, err)
}

// injected returns the fault Options inject for this call, if any.
func (s *Server) injected(action string) *apiError {
	for _, d := range s.opts.Faults.Deny {
		if d == action {
			return fault(403, "AccessDenied", "User: arn:aws:iam::%s:user/rehearse is not authorized to perform: rds:%s on resource: arn:aws:rds:%s:%s:cluster:%s because no identity-based policy allows the rds:%s action",
				Account, action, s.opts.Region, Account, s.opts.ClusterID, action)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.opts.Faults.Throttle[action]; s.throttled[action] < n {
		s.throttled[action]++
		return fault(400, "ThrottlingException", "Rate exceeded")
	}
	return nil
}

func (s *Server) answer(w http.ResponseWriter, action string, at time.Time, began time.Time, body any, e *apiError) {
	s.mu.Lock()
	s.reqID++
	id := fmt.Sprintf("00000000-0000-4000-8000-%012d", s.reqID)
	s.mu.Unlock()
	status, code := http.StatusOK, "OK"
	var out []byte
	if e != nil {
		status, code = e.status, e.code
		out = errorXML(e, id)
	} else {
		out = resultXML(action, body, id)
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", id)
	w.WriteHeader(status)
	_, _ = w.Write(out)
	c := Call{Action: action, At: at, Status: status, Code: code, Duration: time.Since(began)}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
	line := fmt.Sprintf("%s %s -> %d %s (%s)", at.UTC().Format("15:04:05.000"), orDash(action), status, code, c.Duration.Round(time.Microsecond))
	if e != nil {
		line += ": " + e.msg
	}
	fmt.Fprintln(s.opts.Log, line)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (s *Server) checkCluster(f map[string][]string, required bool) *apiError {
	id := first(f, "DBClusterIdentifier")
	if id == "" && !required {
		return nil
	}
	if id == "" {
		return fault(400, "MissingParameter", "DBClusterIdentifier is required")
	}
	if !strings.EqualFold(id, s.opts.ClusterID) && !strings.HasSuffix(id, ":cluster:"+s.opts.ClusterID) {
		return fault(404, "DBClusterNotFoundFault", "DBCluster %s not found (this emulator hosts %s)", id, s.opts.ClusterID)
	}
	return nil
}

func first(f map[string][]string, k string) string {
	if v := f[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

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
