// Package endpoint provides Aurora's cluster endpoints in front of a local (or
// container) cluster. The load always connects to a writer endpoint and a reader
// endpoint, never to nodes directly, so a switchover is seen the way an application
// sees it on Aurora. There are two modes, and an internal third:
//
//   - dns (DNS): the cluster endpoint and reader endpoint are names on the cluster's
//     DNS server (migrate/dnsserver), CNAMEs to the instances' own names, which
//     answer each node's own address. At a failover the records flip to the new
//     writer after a propagation delay; until a client's cached answer expires (the
//     TTL) it still reaches the old node: refused while it is down, read-only errors
//     (SQLSTATE 25006) once it runs as a standby. Nothing is simulated: what clients
//     see comes from the TTL, their cache and their retries.
//   - proxy (PgBouncerPair): one real PgBouncer per endpoint in transaction pooling
//     mode, each with a name of its own on the DNS server. A switchover PAUSEs it,
//     repoints it at the new writer and RESUMEs it, so client connections survive,
//     as with RDS Proxy.
//   - forward (Forwarders): two TCP forwarders on 127.0.0.1 with a stale window that
//     stands for DNS caching, for clients that must reach the endpoints at
//     127.0.0.1:port (the Aurora emulator); not offered to scenarios.
//
// Write forwarding is emulated at the endpoint: while it is on, new connections to
// the reader endpoint are served by the writer.
//
// Every mode implements Mode, which the cutover provider holds.
package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
	"github.com/rehearse-dev/rehearse/migrate/local"
)

// Endpoint modes, as spelled in scenarios and on the command line (--endpoint).
const (
	// ModeDNS is the Aurora-like DNS mode (the default).
	ModeDNS = "dns"
	// ModeProxy is the PgBouncer (RDS Proxy-like) mode.
	ModeProxy = "proxy"
	// ModeForward is the TCP forwarder mode with a stale window, for clients that
	// must reach the endpoints at 127.0.0.1:port; scenarios do not offer it.
	ModeForward = "forward"
)

// DefaultPropagation is how long after a redirect the dns mode's records flip (and
// the forward mode's stale window lasts) when Config.Propagation is 0.
const DefaultPropagation = 2 * time.Second

// DefaultStale is the former name of DefaultPropagation.
//
// Deprecated: use DefaultPropagation.
const DefaultStale = DefaultPropagation

// Sentinel errors; match them with errors.Is.
var (
	// ErrInvalidConfig means a Config field (or an address) is unusable.
	ErrInvalidConfig = errors.New("endpoint: invalid config")
	// ErrNoPgBouncer means the pgbouncer program was not found.
	ErrNoPgBouncer = errors.New("endpoint: pgbouncer not found")
	// ErrPgBouncer means a PgBouncer process failed to start, died, or refused an
	// admin console command.
	ErrPgBouncer = errors.New("endpoint: pgbouncer failed")
	// ErrClosed means the endpoints were already closed.
	ErrClosed = errors.New("endpoint: closed")
)

// Mode is a pair of cluster endpoints (writer and reader) that the cutover provider
// steers through a switchover. DNS, PgBouncerPair and Forwarders implement it.
//
// A planned switchover calls Hold, then stops the old writer and promotes the new
// one, then calls Release with the new writer. What Hold and Release do differs by
// mode, as it does on Aurora:
//
//   - dns: Hold does nothing (DNS cannot hold clients back; the old writer's
//     connections break when it stops). Release waits the propagation delay, flips
//     the records and returns once the DNS server answers with the new writer.
//   - forward: Hold does nothing. Release drops what is still connected to the old
//     writer on both endpoints, keeps new connections going to it for the stale
//     window, then switches and returns.
//   - proxy: Hold PAUSEs the PgBouncers that reach the writer, which waits for
//     in-flight transactions and then holds new ones (clients block, they do not
//     fail). Release repoints them and RESUMEs, and the held clients continue on the
//     new writer over the same client connections.
type Mode interface {
	// Name returns the mode: ModeDNS, ModeProxy or ModeForward.
	Name() string
	// WriterAddr and ReaderAddr return the host:port clients connect to: the
	// endpoints' names on the DNS server (dns; proxy with a DNS server) and the port,
	// or 127.0.0.1:port.
	WriterAddr() string
	ReaderAddr() string
	// ExecMode is the pgx query exec mode the load's pools must use through these
	// endpoints (see ExecMode).
	ExecMode() pgx.QueryExecMode
	// Writer returns the node address (host:port) the writer endpoint reaches now.
	Writer() string
	// Hold prepares the endpoints for a writer change (see the type's doc).
	Hold(ctx context.Context) error
	// Release points the endpoints at writer, with readers as the reader endpoint's
	// members (none: the writer), and undoes Hold. It returns once new connections
	// (dns: new lookups) reach writer.
	Release(ctx context.Context, writer string, readers []string) error
	// SetReaders changes the reader endpoint's members (none: the writer, as on
	// Aurora). Established connections stay where they are.
	SetReaders(ctx context.Context, readers []string) error
	// SetForwarding turns write-forwarding emulation on or off: while on, the reader
	// endpoint's new connections are served by the writer.
	SetForwarding(ctx context.Context, on bool) error
	// Close stops the endpoints and ends their connections. It is idempotent.
	Close(ctx context.Context) error
}

var (
	_ Mode = (*DNS)(nil)
	_ Mode = (*PgBouncerPair)(nil)
	_ Mode = (*Forwarders)(nil)
)

// ExecMode returns the pgx query exec mode for connections through endpoints of the
// given mode. PgBouncer 1.18 in transaction pooling mode does not support named
// prepared statements (a statement prepared in one transaction may be gone, or on
// another server connection, in the next), so proxy uses QueryExecModeExec, which
// only uses the unnamed statement within one round trip. dns and forward (and
// anything else) keep pgx's default, QueryExecModeCacheStatement.
func ExecMode(mode string) pgx.QueryExecMode {
	if mode == ModeProxy {
		return pgx.QueryExecModeExec
	}
	return pgx.QueryExecModeCacheStatement
}

// Config describes a pair of endpoints for New.
type Config struct {
	// Mode is ModeDNS (the default when empty), ModeProxy or ModeForward.
	Mode string
	// Writer is the writer node's host:port. Required.
	Writer string
	// Readers are the reader nodes' host:port; none means the reader endpoint reaches
	// the writer.
	Readers []string
	// DNS is the cluster's DNS server, on which the nodes' instance names answer
	// their addresses. The dns mode keeps the endpoint records on it (required; the
	// nodes must then share one port); the proxy mode gives its PgBouncers names
	// there and keeps the cluster endpoint records current as well (optional). The
	// caller owns it.
	DNS *dnsserver.Server
	// Propagation is how long after a redirect the dns mode's records flip to the
	// new writer (the forward mode's stale window); 0 means Stale, or
	// DefaultPropagation when that is 0 too. A negative value means at once.
	Propagation time.Duration
	// Stale sets Propagation when that is 0.
	//
	// Deprecated: the dns mode has no stale window any more; set Propagation.
	Stale time.Duration
	// Dir is the proxy mode's work directory (PgBouncer configs and logs). Required
	// for ModeProxy.
	Dir string
	// Credentials are the nodes' (local.Cluster.Credentials), which the proxy mode's
	// PgBouncers admit. Required for ModeProxy.
	Credentials *local.Credentials
	// PoolSize is each PgBouncer's default_pool_size: server connections per
	// database and user; 0 means DefaultPoolSize.
	PoolSize int
	// MaxClientConn is each PgBouncer's max_client_conn; 0 means DefaultMaxClientConn.
	MaxClientConn int
	// Via maps a node's host:port to the address the proxy mode's PgBouncers connect
	// to instead: a fault proxy standing in front of the node (nil: the node itself).
	// Everything else keeps naming the nodes.
	Via func(node string) string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeDNS
	}
	if c.Propagation == 0 {
		c.Propagation = c.Stale
	}
	if c.Propagation == 0 {
		c.Propagation = DefaultPropagation
	}
	if c.Propagation < 0 {
		c.Propagation = 0
	}
	if c.Log == nil {
		c.Log = io.Discard
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
	if !slices.Contains([]string{ModeDNS, ModeProxy, ModeForward}, c.Mode) {
		bad("Mode %q: want %s or %s", c.Mode, ModeDNS, ModeProxy)
	}
	if c.Mode == ModeDNS && c.DNS == nil {
		bad("DNS is nil; the dns mode keeps its records on the cluster's DNS server")
	}
	if c.Writer == "" {
		bad("Writer is empty; set the writer node's host:port")
	} else if err := checkHostPort(c.Writer); err != nil {
		errs = append(errs, err)
	}
	for _, r := range c.Readers {
		if err := checkHostPort(r); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Mode == ModeProxy && c.Dir == "" {
		bad("Dir is empty; the proxy mode needs a work directory for PgBouncer")
	}
	if c.Mode == ModeProxy && c.Credentials == nil {
		bad("Credentials is nil; the proxy mode's PgBouncers admit the nodes' password only")
	}
	if c.PoolSize < 0 {
		bad("PoolSize %d: want 0 (default) or more", c.PoolSize)
	}
	if c.MaxClientConn < 0 {
		bad("MaxClientConn %d: want 0 (default) or more", c.MaxClientConn)
	}
	return errs
}

// New starts the endpoints cfg describes: NewDNS for ModeDNS, StartPgBouncerPair for
// ModeProxy, NewForwarders for ModeForward.
func New(ctx context.Context, cfg Config) (Mode, error) {
	cfg = cfg.withDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	switch cfg.Mode {
	case ModeProxy:
		return StartPgBouncerPair(ctx, cfg)
	case ModeForward:
		return NewForwarders(cfg.Writer, cfg.Readers, cfg.Propagation, cfg.Log)
	}
	return NewDNS(cfg)
}

// Option tunes the dns and forward modes.
type Option func(*options)

type options struct {
	after func(time.Duration) <-chan time.Time
}

func applyOptions(opts []Option) options {
	o := options{after: time.After}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WithAfter replaces the timer that times the propagation delay (the forward mode's
// stale window), time.After by default, so tests can end it when they choose.
func WithAfter(after func(time.Duration) <-chan time.Time) Option {
	return func(o *options) { o.after = after }
}

// readerTargets is where the reader endpoint's new connections go: the writer while
// forwarding is on or when there are no readers (Aurora's reader endpoint then
// reaches the writer), else the readers.
func readerTargets(writer string, readers []string, forwarding bool) []string {
	if forwarding || len(readers) == 0 {
		return []string{writer}
	}
	return slices.Clone(readers)
}
