package endpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

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

// Time bounds used when ctx carries no earlier deadline.
const (
	readyTimeout  = 15 * time.Second
	stopGrace     = 5 * time.Second
	killWait      = 5 * time.Second
	adminTimeout  = 5 * time.Second // connecting to the admin console
	resumeTimeout = 10 * time.Second
	pollInterval  = 20 * time.Millisecond
	portAttempts  = 5
	logTailBytes  = 4 << 10
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

// PgBouncer is one PgBouncer process in transaction pooling mode, listening on a
// free 127.0.0.1 port, trusting loopback clients, in front of one PostgreSQL node.
// It runs as the server OS user (postgres when this process is root) and is
// controlled through its admin console (PAUSE, RESUME, RELOAD).
type PgBouncer struct {
	cfg     PgBouncerConfig
	program string
	dir     local.ServerDir
	port    int
	ini     string
	users   string
	logFile string

	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped

	mu      sync.Mutex // serialises admin operations
	backend string
	paused  bool

	stopMu  sync.Mutex
	stopped bool
}

// StartPgBouncer writes the config and auth file, starts PgBouncer as the server OS
// user on a free 127.0.0.1 port and waits until its admin console answers (bounded by
// ctx, 15 s without an earlier deadline). On failure nothing is left running and the
// error includes the tail of PgBouncer's log.
func StartPgBouncer(ctx context.Context, cfg PgBouncerConfig) (*PgBouncer, error) {
	cfg = cfg.withDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	program, err := FindPgBouncer(cfg.Program)
	if err != nil {
		return nil, err
	}
	dir, err := local.PrepareServerDir(cfg.Dir, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("endpoint: pgbouncer %s work dir: %w", cfg.Name, err)
	}
	b := &PgBouncer{
		cfg: cfg, program: program, dir: dir, backend: cfg.Backend,
		ini:     filepath.Join(dir.Path, cfg.Name+".ini"),
		users:   filepath.Join(dir.Path, cfg.Name+".users"),
		logFile: filepath.Join(dir.Path, cfg.Name+".log"),
	}
	ok := false
	defer func() {
		if !ok {
			b.removeDir()
		}
	}()
	// The auth file only names the user: auth_type=trust does not check passwords
	// but still requires the user to be listed.
	if err := writeReadable(b.users, fmt.Sprintf("%q \"\"\n", adminUser)); err != nil {
		return nil, err
	}
	var last error
	for range portAttempts {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		err = b.start(ctx, port)
		if err == nil {
			ok = true
			fmt.Fprintf(cfg.Log, "pgbouncer %s ready on %s -> %s (transaction pooling, pool %d)\n", cfg.Name, b.Addr(), cfg.Backend, cfg.PoolSize)
			return b, nil
		}
		last = err
		if !errors.Is(err, errPortTaken) {
			return nil, err
		}
		fmt.Fprintf(cfg.Log, "pgbouncer %s: port %d was taken before it could bind it; trying another\n", cfg.Name, port)
	}
	return nil, fmt.Errorf("endpoint: pgbouncer %s: no free port after %d attempts: %w", cfg.Name, portAttempts, last)
}

// errPortTaken marks a start that failed because the port was taken meanwhile.
var errPortTaken = errors.New("port taken")

// start writes the config for port and runs PgBouncer until it is ready.
func (b *PgBouncer) start(ctx context.Context, port int) error {
	b.port = port
	if err := b.writeIni(); err != nil {
		return err
	}
	logf, err := os.OpenFile(b.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("endpoint: pgbouncer %s: open log: %w", b.cfg.Name, err)
	}
	defer logf.Close() // the child has its own copy of the descriptor
	offset := fileSize(b.logFile)
	// The process outlives ctx (a start deadline): Stop ends it.
	cmd, err := local.ServerCommand(context.WithoutCancel(ctx), b.program, b.ini)
	if err != nil {
		return fmt.Errorf("endpoint: pgbouncer %s: %w", b.cfg.Name, err)
	}
	cmd.Dir = b.dir.Path
	cmd.Stdout, cmd.Stderr = logf, logf // in the foreground PgBouncer logs to stderr
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: %s: start %s: %w", ErrPgBouncer, b.cfg.Name, b.program, err)
	}
	b.cmd = cmd
	b.done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(b.done)
	}()

	rctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-b.done:
			tail := tailFile(b.logFile, offset)
			if strings.Contains(tail, "Address already in use") {
				return errPortTaken
			}
			return fmt.Errorf("%w: %s exited during start (%v); its log %s:\n%s", ErrPgBouncer, b.cfg.Name, cmd.ProcessState, b.logFile, indent(tail))
		default:
		}
		err := b.admin(rctx, "SHOW VERSION")
		if err == nil {
			return nil
		}
		select {
		case <-rctx.Done():
			b.kill()
			return fmt.Errorf("%w: %s not ready on %s: %w (last error: %v); its log %s:\n%s",
				ErrPgBouncer, b.cfg.Name, b.Addr(), rctx.Err(), err, b.logFile, indent(tailFile(b.logFile, offset)))
		case <-b.done:
		case <-tick.C:
		}
	}
}

// Addr returns the 127.0.0.1:port clients connect to.
func (b *PgBouncer) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
}

// DSN returns a connection URL for database db through PgBouncer, as the postgres
// user.
func (b *PgBouncer) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", adminUser, b.Addr(), db)
}

// PID returns the PgBouncer process id (it may have exited; see Running).
func (b *PgBouncer) PID() int { return b.cmd.Process.Pid }

// Running reports whether the PgBouncer process is still running.
func (b *PgBouncer) Running() bool {
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// LogFile returns PgBouncer's log file.
func (b *PgBouncer) LogFile() string { return b.logFile }

// Backend returns the node PgBouncer's databases point at.
func (b *PgBouncer) Backend() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.backend
}

// Paused reports whether Pause is in effect.
func (b *PgBouncer) Paused() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.paused
}

// Pause issues PAUSE: PgBouncer waits until every in-flight transaction has finished
// and its server connections are closed, then holds every new query (clients block,
// they do not fail, for up to QueryWait). It returns once the PAUSE is in effect.
// When ctx ends first, PgBouncer is resumed and the error says so. Pausing a paused
// PgBouncer is a no-op.
func (b *PgBouncer) Pause(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.paused {
		return nil
	}
	start := time.Now()
	if err := b.admin(ctx, "PAUSE"); err != nil {
		// The console may have gone away mid-PAUSE with the pause in effect: undo it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resumeTimeout)
		defer cancel()
		rerr := b.admin(rctx, "RESUME")
		if rerr != nil && !strings.Contains(rerr.Error(), "not paused") {
			return fmt.Errorf("endpoint: pgbouncer %s: PAUSE failed: %w; RESUME after it failed too: %v", b.cfg.Name, err, rerr)
		}
		return fmt.Errorf("endpoint: pgbouncer %s: PAUSE failed (in-flight transactions did not finish in time?); resumed: %w", b.cfg.Name, err)
	}
	b.paused = true
	fmt.Fprintf(b.cfg.Log, "pgbouncer %s paused (%v waiting for in-flight transactions)\n", b.cfg.Name, time.Since(start).Round(time.Millisecond))
	return nil
}

// Resume issues RESUME: held queries proceed on (new) server connections. Resuming a
// PgBouncer that is not paused is a no-op.
func (b *PgBouncer) Resume(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.paused {
		return nil
	}
	if err := b.admin(ctx, "RESUME"); err != nil {
		return fmt.Errorf("endpoint: pgbouncer %s: RESUME: %w", b.cfg.Name, err)
	}
	b.paused = false
	fmt.Fprintf(b.cfg.Log, "pgbouncer %s resumed\n", b.cfg.Name)
	return nil
}

// Repoint points every database at backend (host:port): it rewrites the config and
// issues RELOAD. PgBouncer closes its server connections to the old backend as they
// are released (at once when paused, else after their current transaction); client
// connections stay. Call it between Pause and Resume to move clients atomically
// between transactions.
func (b *PgBouncer) Repoint(ctx context.Context, backend string) error {
	if err := checkBackend(backend); err != nil {
		return fmt.Errorf("endpoint: pgbouncer %s repoint: %w", b.cfg.Name, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if backend == b.backend {
		return nil
	}
	old := b.backend
	b.backend = backend
	if err := b.writeIni(); err != nil {
		b.backend = old
		return err
	}
	if err := b.admin(ctx, "RELOAD"); err != nil {
		b.backend = old
		_ = b.writeIni()
		return fmt.Errorf("endpoint: pgbouncer %s: RELOAD to repoint %s -> %s: %w", b.cfg.Name, old, backend, err)
	}
	fmt.Fprintf(b.cfg.Log, "pgbouncer %s repointed %s -> %s\n", b.cfg.Name, old, backend)
	return nil
}

// Admin runs one admin console command (SHOW POOLS, SHOW CLIENTS, ...) and returns
// its rows as text.
func (b *PgBouncer) Admin(ctx context.Context, command string) ([][]string, error) {
	var rows [][]string
	err := b.adminRows(ctx, command, func(r []string) { rows = append(rows, r) })
	return rows, err
}

// admin runs a command on the admin console, discarding any rows.
func (b *PgBouncer) admin(ctx context.Context, command string) error {
	return b.adminRows(ctx, command, nil)
}

// adminRows runs a command on the admin console over the simple query protocol (the
// only one the console speaks).
func (b *PgBouncer) adminRows(ctx context.Context, command string, row func([]string)) error {
	cctx, cancel := context.WithTimeout(ctx, adminTimeout)
	conn, err := pgconn.Connect(cctx, b.DSN("pgbouncer")+"&connect_timeout=5")
	cancel()
	if err != nil {
		if !b.Running() {
			return fmt.Errorf("%w: %s is not running (%v): %w", ErrPgBouncer, b.cfg.Name, b.cmd.ProcessState, err)
		}
		return fmt.Errorf("endpoint: pgbouncer %s admin console: %w", b.cfg.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	results, err := conn.Exec(ctx, command).ReadAll()
	if err != nil {
		return fmt.Errorf("%w: %s: %s: %w", ErrPgBouncer, b.cfg.Name, command, err)
	}
	if row != nil {
		for _, r := range results {
			for _, vals := range r.Rows {
				s := make([]string, len(vals))
				for i, v := range vals {
					s[i] = string(v)
				}
				row(s)
			}
		}
	}
	return nil
}

// Stop ends PgBouncer: SIGTERM (immediate shutdown: client connections close), then
// SIGKILL if it has not exited within ctx's deadline (5 s without one). It returns
// once the process has exited and been reaped, and removes a fallback work
// directory. It is idempotent.
func (b *PgBouncer) Stop(ctx context.Context) error {
	b.stopMu.Lock()
	defer b.stopMu.Unlock()
	if b.stopped {
		return nil
	}
	var err error
	if b.Running() {
		fmt.Fprintf(b.cfg.Log, "pgbouncer %s stop (pid %d)\n", b.cfg.Name, b.PID())
		if serr := b.cmd.Process.Signal(syscall.SIGTERM); serr != nil && !errors.Is(serr, os.ErrProcessDone) {
			err = fmt.Errorf("endpoint: pgbouncer %s: SIGTERM: %w", b.cfg.Name, serr)
		}
		gctx, cancel := context.WithTimeout(ctx, stopGrace)
		select {
		case <-b.done:
		case <-gctx.Done():
			err = nil // escalate below
		}
		cancel()
		if b.Running() {
			b.kill()
		}
		if b.Running() {
			return fmt.Errorf("%w: %s (pid %d) still running after SIGKILL", ErrPgBouncer, b.cfg.Name, b.PID())
		}
	}
	b.stopped = true
	b.removeDir()
	return err
}

// Close stops PgBouncer (see Stop), bounded by 15 s; it is meant for deferred calls
// and test cleanups.
func (b *PgBouncer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return b.Stop(ctx)
}

// kill sends SIGKILL and waits (bounded) for the process to be reaped.
func (b *PgBouncer) kill() {
	_ = b.cmd.Process.Kill()
	t := time.NewTimer(killWait)
	defer t.Stop()
	select {
	case <-b.done:
	case <-t.C:
	}
}

// removeDir removes a fallback work directory created for this PgBouncer.
func (b *PgBouncer) removeDir() {
	if b.dir.Owned {
		_ = os.RemoveAll(b.dir.Path)
	}
}

// writeIni renders the config for the current backend and port.
func (b *PgBouncer) writeIni() error {
	host, port, _ := net.SplitHostPort(b.backend)
	return writeReadable(b.ini, renderIni(b.cfg, host, port, b.port, b.users))
}

// renderIni renders pgbouncer.ini. Server connections are made as the client's user
// (postgres), to the same database name.
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
		{"auth_type", "trust"},  // loopback only, like the local nodes' pg_hba.conf
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
// when this process is root; the files hold no secrets).
func writeReadable(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("endpoint: write %s: %w", path, err)
	}
	return os.Chmod(path, 0o644)
}

// freePort asks the kernel for a free 127.0.0.1 port; another process may take it
// before PgBouncer binds it (StartPgBouncer retries).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("endpoint: no free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// tailFile returns at most logTailBytes of path written after offset.
func tailFile(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || offset > int64(len(b)) {
		return ""
	}
	b = b[offset:]
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimSpace(string(b))
}

func indent(s string) string {
	if s == "" {
		return "    (empty)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
