// Package aurora is the cutover provider for Amazon Aurora PostgreSQL: it drives the
// plan in DESIGN.md through the RDS API with aws-sdk-go-v2 — DescribeDBClusters
// (preflight), ModifyDBCluster + CreateDBInstance db.serverless (create_replica),
// aurora_replica_status() over SQL (catch_up), ModifyDBCluster
// EnableLocalWriteForwarding (forward_writes), FailoverDBCluster (switchover and
// rollback) and DeleteDBInstance (decommission). The blue/green strategy drives an
// Aurora Blue/Green Deployment instead (bluegreen.go): CreateBlueGreenDeployment,
// DescribeBlueGreenDeployments, SwitchoverBlueGreenDeployment and
// DeleteBlueGreenDeployment.
//
// It uses the SDK's standard configuration chain (environment, shared profiles, SSO,
// IMDS), region and retryer (which retries throttling). Every API call is recorded
// (Config.OnCall and each step's detail); no credential is ever logged. An
// AccessDenied answer is reported at once with the IAM action it needs
// (ErrAccessDenied), also from inside waiters.
//
// The same API sequence can be rehearsed offline against migrate/aurora/emulator,
// a stand-in for RDS's control plane over a real local cluster, by pointing
// Config.EndpointURL at it.
package aurora

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/rehearse-dev/rehearse/migrate"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrConfirm means a wet run lacks a --confirm naming the target cluster.
	ErrConfirm = errors.New("aurora: confirmation required")
	// ErrInvalidConfig means a Config field is unusable.
	ErrInvalidConfig = errors.New("aurora: invalid config")
	// ErrAccessDenied means the identity lacks an IAM permission (see PermissionError).
	ErrAccessDenied = errors.New("aurora: access denied")
	// ErrUnsupportedVersion means the engine or version cannot run the plan.
	ErrUnsupportedVersion = errors.New("aurora: unsupported engine version")
	// ErrWaiterTimeout means an instance or the cluster did not reach the awaited
	// state in time.
	ErrWaiterTimeout = errors.New("aurora: waiter timed out")
	// ErrInvalidClusterState means RDS kept refusing an action because of the
	// cluster's state (InvalidDBClusterStateFault) after the retries.
	ErrInvalidClusterState = errors.New("aurora: the cluster's state does not allow the action")
	// ErrNotFound means the cluster or an instance does not exist.
	ErrNotFound = errors.New("aurora: not found")
)

// Defaults for zero Config fields.
const (
	DefaultInstanceClass      = "db.serverless"
	DefaultEngine             = "aurora-postgresql"
	DefaultMinACU             = 0.5
	DefaultMaxACU             = 16
	DefaultCreateTimeout      = 60 * time.Minute
	DefaultDeleteTimeout      = 30 * time.Minute
	DefaultFailoverTimeout    = 15 * time.Minute
	DefaultForwardingTimeout  = 15 * time.Minute
	DefaultWaiterMinDelay     = 15 * time.Second
	DefaultWaiterMaxDelay     = 60 * time.Second
	DefaultPoll               = 5 * time.Second
	DefaultFailoverRetries    = 10
	DefaultFailoverRetryDelay = 15 * time.Second
)

// Config configures a Provider. Zero fields take the defaults above.
type Config struct {
	// ClusterID is the DB cluster identifier. Required.
	ClusterID string
	// Region is the AWS region; empty means the standard chain's (AWS_REGION, the
	// profile), and us-east-1 for a loopback EndpointURL.
	Region string
	// EndpointURL overrides the RDS endpoint (the SDK's BaseEndpoint), e.g. the
	// emulator's http://127.0.0.1:PORT. For a loopback URL the provider signs with
	// fixed emulator credentials and never consults IMDS.
	EndpointURL string
	// Credentials overrides the standard credential chain (nil: the chain).
	Credentials aws.CredentialsProvider
	// DSN supplies the SQL user, password, database and TLS settings (a URL,
	// postgres://user:pass@host:port/db?sslmode=require). Its host:port are replaced
	// by the cluster endpoints DescribeDBClusters reports; its host may name the
	// cluster endpoint (see ClusterIDFromDSN). Empty: postgres@.../postgres without TLS.
	DSN string
	// PassFile is a password file (libpq's .pgpass format) the SQL connections read
	// the password from when the DSN carries none, e.g. the emulator's; "": the
	// DSN's own, or PGPASSFILE's.
	PassFile string
	// InstanceID is the identifier of the instance CreateReplica creates (default
	// ClusterID + "-serverless").
	InstanceID string
	// InstanceClass is the new instance's class (DefaultInstanceClass).
	InstanceClass string
	// PromotionTier is the new instance's failover tier (0, the first).
	PromotionTier int32
	// MinACU and MaxACU are the Serverless v2 scaling range set when the cluster has
	// none (defaults 0.5 and 16).
	MinACU, MaxACU float64
	// CreateTimeout, DeleteTimeout, FailoverTimeout and ForwardingTimeout bound the
	// waits for an instance to become available, to be deleted, for a failover and
	// for write forwarding to change.
	CreateTimeout, DeleteTimeout, FailoverTimeout, ForwardingTimeout time.Duration
	// WaiterMinDelay and WaiterMaxDelay pace the SDK's instance waiters.
	WaiterMinDelay, WaiterMaxDelay time.Duration
	// Poll paces the provider's own polling of DescribeDBClusters and SQL probes.
	Poll time.Duration
	// FailoverRetries is how often FailoverDBCluster is retried on
	// InvalidDBClusterStateFault, FailoverRetryDelay apart.
	FailoverRetries    int
	FailoverRetryDelay time.Duration
	// RetryMaxAttempts and RetryMaxBackoff tune the SDK's standard retryer (0: the
	// SDK's defaults, 3 attempts and 20 s).
	RetryMaxAttempts int
	RetryMaxBackoff  time.Duration
	// OnCall is called after every RDS API call (may be nil). It is called from the
	// goroutine that made the call.
	OnCall func(Call)
	// Log gets one line per API call (nil: none). No credential is written.
	Log io.Writer
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Call is one RDS API call, for the timeline.
type Call struct {
	// Action is the API operation (CreateDBInstance).
	Action string
	// Start is when the call began.
	Start time.Time
	// Duration is how long it took, retries included.
	Duration time.Duration
	// Attempts is how many HTTP attempts the retryer made.
	Attempts int
	// RequestID is the last request id AWS answered with.
	RequestID string
	// Err is the call's error (nil: success).
	Err error
}

// String formats the call for logs and step details.
func (c Call) String() string {
	res := "ok"
	if c.Err != nil {
		res = "error: " + c.Err.Error()
	}
	s := fmt.Sprintf("%s %s (%v", c.Action, res, c.Duration.Round(time.Millisecond))
	if c.Attempts > 1 {
		s += fmt.Sprintf(", %d attempts", c.Attempts)
	}
	return s + ")"
}

func (c Config) withDefaults() Config {
	if c.InstanceID == "" && c.ClusterID != "" {
		c.InstanceID = c.ClusterID + "-serverless"
	}
	if c.InstanceClass == "" {
		c.InstanceClass = DefaultInstanceClass
	}
	if c.MinACU == 0 && c.MaxACU == 0 {
		c.MinACU, c.MaxACU = DefaultMinACU, DefaultMaxACU
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.CreateTimeout, DefaultCreateTimeout)
	def(&c.DeleteTimeout, DefaultDeleteTimeout)
	def(&c.FailoverTimeout, DefaultFailoverTimeout)
	def(&c.ForwardingTimeout, DefaultForwardingTimeout)
	def(&c.WaiterMinDelay, DefaultWaiterMinDelay)
	def(&c.WaiterMaxDelay, DefaultWaiterMaxDelay)
	def(&c.Poll, DefaultPoll)
	def(&c.FailoverRetryDelay, DefaultFailoverRetryDelay)
	if c.FailoverRetries <= 0 {
		c.FailoverRetries = DefaultFailoverRetries
	}
	if c.WaiterMaxDelay < c.WaiterMinDelay {
		c.WaiterMaxDelay = c.WaiterMinDelay
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate returns every problem with c, each wrapping ErrInvalidConfig.
func (c Config) Validate() []error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.ClusterID == "" {
		bad("ClusterID is empty; name the DB cluster (its DBClusterIdentifier)")
	}
	if c.MinACU < 0 || c.MaxACU < c.MinACU || c.MaxACU > 256 {
		bad("MinACU %v and MaxACU %v: want 0 <= min <= max <= 256", c.MinACU, c.MaxACU)
	}
	if c.EndpointURL != "" {
		if u, err := url.Parse(c.EndpointURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("EndpointURL %q: want http(s)://host[:port]", c.EndpointURL)
		}
	}
	if c.DSN != "" {
		if _, err := url.Parse(c.DSN); err != nil || !strings.HasPrefix(c.DSN, "postgres") {
			bad("DSN: want a postgres:// URL (%s)", Redact(c.DSN))
		}
	}
	return errs
}

// CheckConfirm refuses a wet run unless confirm names clusterID: a wet run adds an
// instance, fails the cluster over and deletes the old writer, or with strategy
// blue_green creates a blue/green deployment and switches the cluster over to it.
// Dry runs need no confirmation. The error wraps ErrConfirm.
func CheckConfirm(clusterID, confirm string, wet bool, strategy string) error {
	if !wet {
		return nil
	}
	if confirm == "" {
		what := "it adds an instance, fails over onto it and deletes the old writer"
		if strategy == migrate.StrategyBlueGreen {
			what = "it creates a blue/green deployment, switches over to green (blue's instances are renamed -old1) and deletes the deployment"
		}
		return fmt.Errorf("%w: a wet run changes Aurora cluster %q (%s); pass --confirm %s to proceed", ErrConfirm, clusterID, what, clusterID)
	}
	if confirm != clusterID {
		return fmt.Errorf("%w: --confirm %q does not match the target cluster %q; nothing was changed", ErrConfirm, confirm, clusterID)
	}
	return nil
}

// ClusterIDFromDSN returns the cluster identifier named by a DSN whose host is an
// Aurora cluster endpoint (ID.cluster-XXXX.REGION.rds.amazonaws.com, or the
// cluster-ro- reader endpoint); ok is false for any other host.
func ClusterIDFromDSN(dsn string) (id string, ok bool) {
	host := dsnHost(dsn)
	label, rest, found := strings.Cut(host, ".")
	if !found || label == "" {
		return "", false
	}
	if strings.HasPrefix(rest, "cluster-") {
		return label, true
	}
	return "", false
}

// ResolveClusterID names the target cluster: the cluster endpoint named by dsn's
// host (see ClusterIDFromDSN), else confirm (the --confirm flag). The error wraps
// ErrInvalidConfig when neither names one.
func ResolveClusterID(dsn, confirm string) (string, error) {
	if id, ok := ClusterIDFromDSN(dsn); ok {
		return id, nil
	}
	if confirm != "" {
		return confirm, nil
	}
	return "", fmt.Errorf("%w: name the Aurora cluster: a DSN whose host is its cluster endpoint (ID.cluster-XXXX.REGION.rds.amazonaws.com), or --confirm CLUSTER_ID", ErrInvalidConfig)
}

// dsnHost returns the host of a postgres URL ("" when it has none).
func dsnHost(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// Redact returns dsn with its password replaced by "xxxxx" (for messages).
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable DSN)"
	}
	return u.Redacted()
}

// SupportsLocalWriteForwarding reports whether an Aurora PostgreSQL version has
// local write forwarding: 16.4 and later 16.x, 15.8+, 14.13+, and every major
// version after 16.
func SupportsLocalWriteForwarding(version string) bool {
	major, minor, ok := parseVersion(version)
	if !ok {
		return false
	}
	switch {
	case major > 16:
		return true
	case major == 16:
		return minor >= 4
	case major == 15:
		return minor >= 8
	case major == 14:
		return minor >= 13
	}
	return false
}

func parseVersion(v string) (major, minor int, ok bool) {
	a, b, _ := strings.Cut(v, ".")
	b, _, _ = strings.Cut(b, ".")
	var err1, err2 error
	major, err1 = strconv.Atoi(a)
	minor, err2 = strconv.Atoi(b)
	return major, minor, err1 == nil && err2 == nil
}

// isLoopbackURL reports whether u's host is 127.0.0.0/8, ::1 or localhost.
func isLoopbackURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	h := p.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
