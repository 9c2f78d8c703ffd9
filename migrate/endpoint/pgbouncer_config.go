package endpoint

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/migrate/local"
)

// PgBouncer defaults, used for zero PgBouncerConfig fields.
const (
	// DefaultPoolSize is default_pool_size: server connections per database and user.
	DefaultPoolSize = 20
	// DefaultMaxClientConn is max_client_conn.
	DefaultMaxClientConn = 1000
	// DefaultQueryWait is query_wait_timeout: how long a client may wait for a server
	// connection, paused time included, before PgBouncer fails its query.
	DefaultQueryWait = 120 * time.Second
	// pgbouncerFallback is where Debian's pgbouncer package installs the program,
	// searched when it is not on PATH (root's PATH usually has /usr/sbin; others'
	// may not).
	pgbouncerFallback = "/usr/sbin/pgbouncer"
	// adminUser is the admin console user and the only user in the auth file; it is
	// also PostgreSQL's superuser on local nodes.
	adminUser = local.Superuser
)

// PgBouncerConfig describes one PgBouncer process.
type PgBouncerConfig struct {
	// Dir is the work directory for the config, auth file and log. Required. When it
	// is not reachable by the OS user PgBouncer runs as, a directory under the temp
	// directory is used instead and removed by Stop (see local.PrepareServerDir).
	Dir string
	// Name names the files (Name.ini, Name.users, Name.log) and log lines; "pgbouncer"
	// when empty.
	Name string
	// Backend is the PostgreSQL node's host:port. Required.
	Backend string
	// Credentials are the backend's (local.Node.Credentials): PgBouncer admits
	// clients with their password (scram-sha-256) and logs into the backend with
	// it; its auth file (0600, removed at Stop) holds it. Required.
	Credentials *local.Credentials
	// Via maps a backend node's host:port to the address PgBouncer connects to
	// instead: a fault proxy standing in front of the node. nil: the node itself.
	// Backend (and Repoint) keep naming the node.
	Via func(node string) string
	// Databases are the database names clients may use; [local.Database, "postgres"]
	// when empty.
	Databases []string
	// PoolSize is default_pool_size; 0 means DefaultPoolSize.
	PoolSize int
	// MaxClientConn is max_client_conn; 0 means DefaultMaxClientConn.
	MaxClientConn int
	// QueryWait is query_wait_timeout; 0 means DefaultQueryWait. It bounds how long a
	// client can be held by a PAUSE.
	QueryWait time.Duration
	// Program is the pgbouncer executable; empty searches PATH, then /usr/sbin.
	Program string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

func (c PgBouncerConfig) withDefaults() PgBouncerConfig {
	if c.Name == "" {
		c.Name = "pgbouncer"
	}
	if len(c.Databases) == 0 {
		c.Databases = []string{local.Database, "postgres"}
	}
	if c.PoolSize == 0 {
		c.PoolSize = DefaultPoolSize
	}
	if c.MaxClientConn == 0 {
		c.MaxClientConn = DefaultMaxClientConn
	}
	if c.QueryWait == 0 {
		c.QueryWait = DefaultQueryWait
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return c
}

// Validate returns every problem with c (after defaults), each wrapping
// ErrInvalidConfig.
func (c PgBouncerConfig) Validate() []error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Dir == "" {
		bad("pgbouncer Dir is empty; set a work directory")
	}
	if !nameRE.MatchString(c.Name) {
		bad("pgbouncer Name %q: use letters, digits, '_', '-' and '.' only", c.Name)
	}
	if c.Credentials == nil {
		bad("pgbouncer Credentials is nil; pass the backend's (local.Node.Credentials): PgBouncer admits no one without a password")
	}
	if c.Backend == "" {
		bad("pgbouncer Backend is empty; set the node's host:port")
	} else if err := checkBackend(c.Backend); err != nil {
		errs = append(errs, err)
	}
	for _, db := range c.Databases {
		if !nameRE.MatchString(db) || db == "pgbouncer" {
			bad("pgbouncer database %q: want a plain name other than pgbouncer", db)
		}
	}
	if c.PoolSize < 1 {
		bad("pgbouncer PoolSize %d: want at least 1", c.PoolSize)
	}
	if c.MaxClientConn < 1 {
		bad("pgbouncer MaxClientConn %d: want at least 1", c.MaxClientConn)
	}
	if c.QueryWait < time.Second {
		bad("pgbouncer QueryWait %v: want at least 1s", c.QueryWait)
	}
	return errs
}

// checkBackend validates a backend address that goes into PgBouncer's config.
func checkBackend(addr string) error {
	if err := checkHostPort(addr); err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(addr)
	if strings.ContainsAny(host, " \t\n'=;,") {
		return fmt.Errorf("%w: backend host %q has characters PgBouncer's config cannot hold", ErrInvalidConfig, host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%w: backend %q: port is not 1-65535", ErrInvalidConfig, addr)
	}
	return nil
}

// FindPgBouncer returns the pgbouncer program: program itself when set, else the
// first pgbouncer on PATH, else /usr/sbin/pgbouncer. It fails with ErrNoPgBouncer.
func FindPgBouncer(program string) (string, error) {
	if program != "" {
		if p, err := exec.LookPath(program); err == nil {
			return p, nil
		}
		return "", fmt.Errorf("%w: %s is not an executable; install PgBouncer (`apt-get install -y pgbouncer`) or fix the path", ErrNoPgBouncer, program)
	}
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if fi, err := os.Stat(pgbouncerFallback); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return pgbouncerFallback, nil
	}
	return "", fmt.Errorf("%w: not on PATH nor at %s; the proxy endpoint mode needs it: install it with `apt-get install -y pgbouncer` (Debian/Ubuntu), or use the dns endpoint mode",
		ErrNoPgBouncer, pgbouncerFallback)
}

// renderIni renders pgbouncer.ini. Server connections are made as the client's user
// (postgres), to the same database name, with the password of the auth file.
func renderIni(c PgBouncerConfig, host, port string, listenPort int, authFile string) string {
	var s strings.Builder
	s.WriteString(";; Written by rehearse (migrate/endpoint); rewritten on every repoint, edits are lost.\n")
	s.WriteString("[databases]\n")
	dbs := slices.Clone(c.Databases)
	slices.Sort(dbs)
	for _, db := range slices.Compact(dbs) {
		fmt.Fprintf(&s, "%s = host=%s port=%s dbname=%s\n", db, host, port, db)
	}
	kv := [][2]string{
		{"listen_addr", "127.0.0.1"},
		{"listen_port", strconv.Itoa(listenPort)},
		{"unix_socket_dir", ""}, // no Unix socket: loopback TCP only
		// Loopback is reachable by every user of the machine: the run's password
		// only, as on the nodes (pg_hba.conf).
		{"auth_type", "scram-sha-256"},
		{"auth_file", authFile},
		{"admin_users", adminUser},
		{"pool_mode", "transaction"},
		{"default_pool_size", strconv.Itoa(c.PoolSize)},
		{"max_client_conn", strconv.Itoa(c.MaxClientConn)},
		{"query_wait_timeout", strconv.Itoa(int(c.QueryWait.Round(time.Second) / time.Second))},
		// After a failed server login (the old writer shutting down just before the
		// pause took hold, or the new one not yet accepting) retry soon: with 1 s,
		// every smoke switchover measured a second's extra stall after RESUME, with
		// 0.1 s none (write stall 987 ms → 222 ms). The default is 15 s.
		{"server_login_retry", "0.1"},
		{"server_connect_timeout", "5"},
		{"ignore_startup_parameters", "extra_float_digits"},
		{"syslog", "0"},
		{"log_connections", "0"},
		{"log_disconnections", "0"},
	}
	s.WriteString("\n[pgbouncer]\n")
	for _, p := range kv {
		fmt.Fprintf(&s, "%s = %s\n", p[0], p[1])
	}
	return s.String()
}

// writeReadable writes a file the server OS user can read (it runs as another user
// when this process is root); for files that hold no secret (the auth file is
// written with local.WritePrivateFile).
func writeReadable(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("endpoint: write %s: %w", path, err)
	}
	return os.Chmod(path, 0o644)
}
