// Package emulator is a stand-in for AWS's RDS control plane, over real databases.
//
// It serves the subset of the RDS Query API (Action=...&Version=2014-10-31, XML
// answers) that the aurora provider's cutover uses — DescribeDBClusters,
// DescribeDBInstances, ModifyDBCluster, CreateDBInstance, FailoverDBCluster and
// DeleteDBInstance, and RebootDBInstance, which a crash fault calls — and that a
// run's telemetry reads — DescribeEvents, and
// CloudWatch's GetMetricData in the Smithy RPC v2 CBOR protocol the CloudWatch
// client speaks — so the unmodified aws-sdk-go-v2 clients can drive it through
// their BaseEndpoint (rehearse's --aws-endpoint-url). It hosts one Aurora
// PostgreSQL-like cluster and carries every call out on a Backend: with LocalBackend,
// a real local primary/replica cluster (migrate/local) behind Aurora-like cluster
// endpoints (migrate/endpoint). CreateDBInstance starts a real replica
// (pg_basebackup), FailoverDBCluster performs a real promotion and endpoint flip, and
// the Describe calls report the real state. With a BlueGreenBackend it also serves
// Blue/Green Deployments (Create, Describe, Switchover and DeleteBlueGreenDeployment)
// over real logical replication, with RDS's statuses and faults.
//
// With a Backend that is a Meter (LocalBackend), the emulator measures every
// instance's node each second — CPU, memory and I/O of its processes, connections,
// replica lag — and answers GetMetricData with CloudWatch's RDS metrics derived
// from them, each marked emulated: Serverless v2 capacity (ACU) is estimated from
// CPU and memory within the cluster's range. DescribeEvents reports the failovers
// and the instances created and deleted, as the emulator saw them.
//
// It is not AWS: there is no IAM (any credentials are accepted, signatures are not
// checked), no storage layer shared between instances (replicas stream WAL), no
// Serverless v2 scaling (the ACU range is recorded, not enforced; the reported
// capacity is an estimate), and write forwarding is emulated at the endpoints.
// Faults that AWS produces (throttling, AccessDenied, InvalidDBClusterStateFault,
// instances that never become available, an old engine version) are injected
// through Options, for tests.
package emulator

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
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
	mon        *monitor
	bg         blueGreens
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
	s.startMonitor()
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
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
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
