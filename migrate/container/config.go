package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
	"github.com/rehearse-dev/rehearse/migrate/endpoint"
	"github.com/rehearse-dev/rehearse/migrate/local"
)

// Defaults and names.
// containerPassFile is the postgres user's password file inside every node's
// container (mode 0600), which the entrypoint writes from REHEARSE_PASSWORD.
const containerPassFile = "/var/lib/postgresql/.pgpass"

const (
	// DefaultImage is the image used when Config.Image is empty: the official
	// PostgreSQL image, pinned to the major version rehearse targets.
	DefaultImage = "postgres:15"
	// BuiltImage is the image `make image` (images/postgres/build.sh) builds offline
	// from the machine's own Debian PostgreSQL 15 packages. ResolveImage falls back to
	// it when the configured image is absent.
	BuiltImage = "rehearse/postgres:15"
	// ImageEnv is the environment variable the CLI and tests read the image from
	// (this package never reads the environment itself).
	ImageEnv = "REHEARSE_POSTGRES_IMAGE"
	// RyukEnv is the testcontainers-go setting that must be "true" here: Ryuk, its
	// reaper container, cannot be pulled, and this package removes what it creates
	// itself. testcontainers-go only reads it from the environment (or
	// ~/.testcontainers.properties), once per process, so the CLI's main or a test's
	// TestMain sets it before the first container is created.
	RyukEnv = "TESTCONTAINERS_RYUK_DISABLED"
	// Database is the database the writer gets at start, for workloads.
	Database = "rehearse"
	// Superuser is the PostgreSQL superuser every connection uses.
	Superuser = "postgres"
	// DefaultStartTimeout bounds how long a node may take to accept connections.
	DefaultStartTimeout = 2 * time.Minute
	// DefaultMaxConnections is max_connections when Config.MaxConnections is 0.
	DefaultMaxConnections = 100
	// DefaultSharedBuffers is shared_buffers when Config.SharedBuffers is empty.
	DefaultSharedBuffers = "128MB"
	// LabelRun labels every container and network of a run with its run ID;
	// LabelNode names a container's node. Cleanup finds them by these labels.
	LabelRun  = "dev.rehearse.run"
	LabelNode = "dev.rehearse.node"
	// LabelEntrypoint is set on images built by images/postgres/build.sh; the
	// provider's replica, stop and rejoin commands need that entrypoint.
	LabelEntrypoint = "dev.rehearse.entrypoint"
	// pgPort is the port PostgreSQL listens on inside every container.
	pgPort = 5432
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrInvalidConfig means a Config field is unusable; the error lists every problem.
	ErrInvalidConfig = errors.New("container: invalid config")
	// ErrRyukEnabled means testcontainers-go would start Ryuk, which cannot be pulled
	// here: set TESTCONTAINERS_RYUK_DISABLED=true before the first call.
	ErrRyukEnabled = errors.New("container: testcontainers Ryuk is enabled")
	// ErrImageNotFound means the PostgreSQL image is not in the local Docker engine
	// (and there is no registry to pull it from).
	ErrImageNotFound = errors.New("container: PostgreSQL image not found")
	// ErrUnsupportedImage means the image lacks the rehearse-pg entrypoint commands
	// an operation needs (replicas, planned stop, rejoin).
	ErrUnsupportedImage = errors.New("container: image lacks the rehearse-pg entrypoint")
	// ErrNoNode means a node ID is not in the cluster.
	ErrNoNode = errors.New("container: no such node")
	// ErrWriter means an operation that must not touch the writer was asked to.
	ErrWriter = errors.New("container: node is the writer")
	// ErrNode means a node failed to start, stream or run a command; the error
	// carries the container's log tail.
	ErrNode = errors.New("container: node failed")
)

// Endpoints are the writer and reader endpoints the load connects to.
// endpoint.Mode (dns proxies or a PgBouncer pair) implements it.
type Endpoints interface {
	// WriterAddr and ReaderAddr are the host:port the load connects to.
	WriterAddr() string
	ReaderAddr() string
	// Hold prepares the endpoints for a writer change.
	Hold(ctx context.Context) error
	// Release points the endpoints at writer and readers and undoes Hold.
	Release(ctx context.Context, writer string, readers []string) error
	// SetReaders changes the reader endpoint's members (none: the writer).
	SetReaders(ctx context.Context, readers []string) error
	// SetForwarding emulates write forwarding at the reader endpoint.
	SetForwarding(ctx context.Context, on bool) error
	// Close stops the endpoints.
	Close(ctx context.Context) error
}

var _ Endpoints = endpoint.Mode(nil)

// Config describes a container cluster.
type Config struct {
	// Image is the PostgreSQL image; empty means DefaultImage. It must already be in
	// the local engine (see ResolveImage). The replica, switchover and rejoin
	// operations need BuiltImage's rehearse-pg entrypoint.
	Image string
	// RunID labels every container and network of the run (LabelRun) and names
	// them; empty means a random one. Letters, digits, '_' and '-'.
	RunID string
	// Credentials are the run's (local.Credentials): every node admits the
	// superuser with their password only (scram-sha-256, also for replication and
	// pg_rewind inside the containers), and the proxy mode's PgBouncers too. The
	// published ports are on loopback addresses, which every user of the machine
	// reaches, so nothing is trusted. nil makes Start generate them (in a private
	// temp directory) and Close remove them.
	Credentials *local.Credentials
	// Fsync turns on fsync; off (the zero value) is faster and only loses data on a
	// host crash, which a rehearsal does not simulate.
	Fsync bool
	// MaxConnections is max_connections; 0 means DefaultMaxConnections.
	MaxConnections int
	// SharedBuffers is shared_buffers; empty means DefaultSharedBuffers.
	SharedBuffers string
	// ExtraConf are more server settings (-c name=value), after the provider's own.
	ExtraConf map[string]string
	// Endpoint configures the endpoints (Mode, Dir, Propagation, pool sizes);
	// Writer, Readers, Log and DNS (when nil: Config.DNS) are filled in by the
	// provider. Mode "" means dns, which needs a DNS server.
	Endpoint endpoint.Config
	// DNS is the cluster's DNS server: each node's instance name answers its
	// published address there, and the endpoints keep their records on it. The
	// caller owns it (and closes it after the cluster). nil means Endpoint.DNS, or
	// when that is nil too, a server Start starts on 127.0.0.1:0 and Close closes
	// (see Cluster.DNS).
	DNS *dnsserver.Server
	// Port is the host port every node is published on, each on its own loopback
	// address; 0 means 5432 when it is free, else any free port.
	Port int
	// NewEndpoints overrides how endpoints are built (tests, custom modes); nil
	// means endpoint.New with Endpoint.
	NewEndpoints func(ctx context.Context, writer string) (Endpoints, error)
	// StartTimeout bounds each node's start; 0 means DefaultStartTimeout.
	StartTimeout time.Duration
	// PollInterval paces readiness, streaming and replay polls; 0 means 50 ms.
	PollInterval time.Duration
	// Log receives progress lines (and testcontainers' own); nil discards them.
	Log io.Writer
}

var (
	runIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,40}$`)
	keyRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)
)

// managedKeys are settings the provider relies on.
var managedKeys = []string{"listen_addresses", "port", "cluster_name"}

func (c Config) withDefaults() Config {
	if c.Image == "" {
		c.Image = DefaultImage
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.SharedBuffers == "" {
		c.SharedBuffers = DefaultSharedBuffers
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 50 * time.Millisecond
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.Endpoint.Mode == "" {
		c.Endpoint.Mode = endpoint.ModeDNS
	}
	return c
}

// Validate returns every problem with c (after defaults), each wrapping
// ErrInvalidConfig.
func (c Config) Validate() []error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.RunID != "" && !runIDRE.MatchString(c.RunID) {
		bad("RunID %q: use up to 41 letters, digits, '_' and '-'", c.RunID)
	}
	if c.MaxConnections < 1 {
		bad("MaxConnections %d: want at least 1", c.MaxConnections)
	}
	if c.NewEndpoints == nil && !slices.Contains([]string{endpoint.ModeDNS, endpoint.ModeProxy}, c.Endpoint.Mode) {
		bad("Endpoint.Mode %q: want %s or %s", c.Endpoint.Mode, endpoint.ModeDNS, endpoint.ModeProxy)
	}
	if c.NewEndpoints == nil && c.Endpoint.Mode == endpoint.ModeProxy && c.Endpoint.Dir == "" {
		bad("Endpoint.Dir is empty; the proxy mode needs a work directory for PgBouncer")
	}
	if c.Port < 0 || c.Port > 65535 {
		bad("Port %d: want 0 (5432 when free, else any) or 1-65535", c.Port)
	}
	for k, v := range c.ExtraConf {
		switch {
		case !keyRE.MatchString(k):
			bad("ExtraConf key %q is not a setting name", k)
		case slices.Contains(managedKeys, strings.ToLower(k)):
			bad("ExtraConf key %q is managed by the provider", k)
		case strings.ContainsAny(v, "\n\r\x00"):
			bad("ExtraConf %s: value contains a line break or NUL", k)
		}
	}
	return errs
}

// serverArgs are the postgres command-line settings of node id.
func (c Config) serverArgs(id string) []string {
	onOff := map[bool]string{true: "on", false: "off"}
	set := [][2]string{
		{"listen_addresses", "*"},
		{"cluster_name", id}, // also the walreceiver's application_name
		{"max_connections", fmt.Sprint(c.MaxConnections)},
		{"shared_buffers", c.SharedBuffers},
		{"fsync", onOff[c.Fsync]},
		{"synchronous_commit", "on"},
		{"wal_level", "replica"},
		{"max_wal_senders", "10"},
		{"max_replication_slots", "10"},
		{"wal_log_hints", "on"},
		{"hot_standby", "on"},
		{"hot_standby_feedback", "on"},
		{"wal_receiver_status_interval", "1s"},
		// A cut node is noticed in seconds, not the default minute.
		{"wal_sender_timeout", "5s"},
		{"wal_receiver_timeout", "5s"},
		{"jit", "off"},
	}
	keys := make([]string, 0, len(c.ExtraConf))
	for k := range c.ExtraConf {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		set = append(set, [2]string{k, c.ExtraConf[k]})
	}
	args := []string{"postgres"}
	for _, kv := range set {
		args = append(args, "-c", kv[0]+"="+kv[1])
	}
	return args
}

// env is the container environment shared by every node: initdb stores the
// password's SCRAM verifier (POSTGRES_PASSWORD takes it as it is), which the proxy
// mode's PgBouncers hold too; REHEARSE_PASSWORD is what the entrypoint writes
// into the postgres user's 0600 password file for pg_basebackup, pg_rewind and
// the WAL receiver, and keeps out of its children's environment. Neither is on a
// command line.
func (c Config) env() map[string]string {
	e := map[string]string{"POSTGRES_INITDB_ARGS": "--data-checksums"}
	if c.Credentials != nil {
		e["POSTGRES_PASSWORD"] = c.Credentials.Verifier()
		e["REHEARSE_PASSWORD"] = c.Credentials.Password()
	}
	return e
}
