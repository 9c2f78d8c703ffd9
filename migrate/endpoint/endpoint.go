// Package endpoint emulates Aurora's cluster endpoints in front of a local (or
// container) cluster. The load always connects to a writer endpoint and a reader
// endpoint, never to nodes directly, so a switchover is seen the way an application
// sees it on Aurora. There are two modes:
//
//   - dns (DNS): two TCP forwarders on 127.0.0.1 stand for the DNS names of
//     Aurora's cluster and reader endpoints. At a failover the old writer's
//     connections drop, and for a stale-DNS window new connections still reach the
//     old node (refused while it is down, read-only errors, SQLSTATE 25006, once it
//     runs as a standby), as they do on Aurora while clients cache the old address.
//   - proxy (PgBouncerPair): one real PgBouncer per endpoint in transaction pooling
//     mode. A switchover PAUSEs it, repoints it at the new writer and RESUMEs it, so
//     client connections survive, as with RDS Proxy.
//
// Write forwarding is emulated at the endpoint: while it is on, new connections to
// the reader endpoint are served by the writer.
//
// Both modes implement Mode, which the cutover provider holds.
package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Endpoint modes, as spelled in scenarios and on the command line (--endpoint).
const (
	// ModeDNS is the Aurora-like DNS endpoint emulation (the default).
	ModeDNS = "dns"
	// ModeProxy is the PgBouncer (RDS Proxy-like) mode.
	ModeProxy = "proxy"
)

// DefaultStale is the dns mode's stale window when Config.Stale is 0.
const DefaultStale = 2 * time.Second

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
// steers through a switchover. Both DNS and PgBouncerPair implement it.
//
// A planned switchover calls Hold, then stops the old writer and promotes the new
// one, then calls Release with the new writer. What Hold and Release do differs by
// mode, as it does on Aurora:
//
//   - dns: Hold does nothing (DNS cannot hold clients back; the old writer's
//     connections break when it stops). Release drops what is still connected to the
//     old writer on both endpoints, keeps new connections going to it for the stale
//     window, then switches and returns.
//   - proxy: Hold PAUSEs the PgBouncers that reach the writer, which waits for
//     in-flight transactions and then holds new ones (clients block, they do not
//     fail). Release repoints them and RESUMEs, and the held clients continue on the
//     new writer over the same client connections.
type Mode interface {
	// Name returns the mode: ModeDNS or ModeProxy.
	Name() string
	// WriterAddr and ReaderAddr return the 127.0.0.1:port of the endpoints.
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
	// reach writer.
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
)

// ExecMode returns the pgx query exec mode for connections through endpoints of the
// given mode. PgBouncer 1.18 in transaction pooling mode does not support named
// prepared statements (a statement prepared in one transaction may be gone, or on
// another server connection, in the next), so proxy uses QueryExecModeExec, which
// only uses the unnamed statement within one round trip. dns (and anything else)
// keeps pgx's default, QueryExecModeCacheStatement.
func ExecMode(mode string) pgx.QueryExecMode {
	if mode == ModeProxy {
		return pgx.QueryExecModeExec
	}
	return pgx.QueryExecModeCacheStatement
}

// Config describes a pair of endpoints for New.
type Config struct {
	// Mode is ModeDNS (the default when empty) or ModeProxy.
	Mode string
	// Writer is the writer node's host:port. Required.
	Writer string
	// Readers are the reader nodes' host:port; none means the reader endpoint reaches
	// the writer.
	Readers []string
	// Stale is the dns mode's stale-DNS window; 0 means DefaultStale. A negative value
	// means no window.
	Stale time.Duration
	// Dir is the proxy mode's work directory (PgBouncer configs and logs). Required
	// for ModeProxy.
	Dir string
	// PoolSize is each PgBouncer's default_pool_size: server connections per
	// database and user; 0 means DefaultPoolSize.
	PoolSize int
	// MaxClientConn is each PgBouncer's max_client_conn; 0 means DefaultMaxClientConn.
	MaxClientConn int
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeDNS
	}
	if c.Stale == 0 {
		c.Stale = DefaultStale
	}
	if c.Stale < 0 {
		c.Stale = 0
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
	if !slices.Contains([]string{ModeDNS, ModeProxy}, c.Mode) {
		bad("Mode %q: want %s or %s", c.Mode, ModeDNS, ModeProxy)
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
	if c.PoolSize < 0 {
		bad("PoolSize %d: want 0 (default) or more", c.PoolSize)
	}
	if c.MaxClientConn < 0 {
		bad("MaxClientConn %d: want 0 (default) or more", c.MaxClientConn)
	}
	return errs
}

// New starts the endpoints cfg describes: NewDNS for ModeDNS, StartPgBouncerPair for
// ModeProxy.
func New(ctx context.Context, cfg Config) (Mode, error) {
	cfg = cfg.withDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.Mode == ModeProxy {
		return StartPgBouncerPair(ctx, cfg)
	}
	return NewDNS(cfg.Writer, cfg.Readers, cfg.Stale, cfg.Log)
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
