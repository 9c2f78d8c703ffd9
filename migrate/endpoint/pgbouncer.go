package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rehearse-dev/rehearse/migrate/local"
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

// PgBouncer is one PgBouncer process in transaction pooling mode, listening on a
// free 127.0.0.1 port, admitting clients with the run's password (scram-sha-256),
// in front of one PostgreSQL node.
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

	// adminIdle are admin console connections kept between commands: each new one
	// is a SCRAM login (milliseconds), and PAUSE, RELOAD and RESUME run inside a
	// switchover's stall.
	adminMu   sync.Mutex
	adminIdle []*pgconn.PgConn
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
	// The auth file (0600, the server user's, removed at Stop) holds the run's
	// password: PgBouncer checks clients' SCRAM proofs against it and logs into the
	// nodes with it. A verifier alone would make every server login depend on
	// keys a client left behind, and a login that finds none fails every waiting
	// client for server_login_retry, right after a repoint when all server
	// connections are new.
	if err := local.WritePrivateFile(b.users, fmt.Sprintf("%q %q\n", adminUser, cfg.Credentials.Password())); err != nil {
		return nil, fmt.Errorf("endpoint: pgbouncer %s auth file: %w", cfg.Name, err)
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
// user, with the credentials' password file (see local.Credentials.DSN).
func (b *PgBouncer) DSN(db string) string { return b.cfg.Credentials.DSN(b.Addr(), db) }

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
	b.closeAdmin()
	if rerr := os.Remove(b.users); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = fmt.Errorf("endpoint: pgbouncer %s: remove its auth file: %w", b.cfg.Name, rerr)
	}
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
	addr := b.backend
	if b.cfg.Via != nil {
		addr = b.cfg.Via(addr)
	}
	host, port, _ := net.SplitHostPort(addr)
	return writeReadable(b.ini, renderIni(b.cfg, host, port, b.port, b.users))
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
