// Package local runs PostgreSQL server processes from the machine's own binaries: the
// embedded local target of rehearse. A Node is one server (data directory, port, log);
// InitPrimary creates and starts a primary. Nodes listen on 127.0.0.1 only, without
// Unix sockets, and trust loopback connections, for normal and replication sessions.
//
// PostgreSQL refuses to run as root. When this process is root, every server program
// runs as the "postgres" OS user (via process credentials, no sudo), and the work
// directory is handed to that user.
package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// StopMode is a pg_ctl shutdown mode.
type StopMode string

// Shutdown modes (see pg_ctl -m).
const (
	// Smart waits for all clients to disconnect.
	Smart StopMode = "smart"
	// Fast rolls back open transactions, disconnects clients and checkpoints.
	Fast StopMode = "fast"
	// Immediate aborts all server processes; the next start runs crash recovery.
	Immediate StopMode = "immediate"
)

// Time bounds used when ctx carries no earlier deadline.
const (
	defaultStartWait  = 60 * time.Second
	defaultStopWait   = 60 * time.Second
	initdbTimeout     = 2 * time.Minute
	killWait          = 10 * time.Second
	closeTimeout      = 30 * time.Second
	readyTimeout      = 30 * time.Second
	commandGrace      = 10 * time.Second // on top of pg_ctl's own -t
	portAttempts      = 5
	logTailLines      = 25
	logTailBytes      = 8 << 10
	connectTimeout    = 2 * time.Second
	serverUserEnvPath = "/usr/local/bin:/usr/bin:/bin"
)

// Node is one PostgreSQL server: a data directory, a port and a log file. Its
// lifecycle methods (Start, Stop, Kill, Remove, Close) are serialised; the accessors
// are safe to call at any time.
type Node struct {
	cfg      Config    // with defaults applied
	id       *identity // OS user the server runs as; nil = this process's user
	workDir  string
	ownedDir bool // workDir is a fallback created for this node: Remove deletes it
	dataDir  string
	logFile  string
	port     int // fixed once the node is returned to the caller

	mu     sync.Mutex
	closed bool
}

// InitPrimary creates and starts a primary: initdb (data checksums, superuser
// "postgres", trust auth), the node's postgresql.conf settings and loopback-only
// pg_hba.conf, start, readiness, and the database "rehearse". On any failure it
// leaves nothing running and removes what it created (the server log stays in Dir).
func InitPrimary(ctx context.Context, cfg Config) (*Node, error) {
	n, err := newNode(cfg)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			n.discard(ctx)
		}
	}()
	if _, err := os.Stat(n.dataDir); err == nil {
		ok = true // not ours: leave it alone
		return nil, fmt.Errorf("%w: %s; remove it (or the node) first, or choose another Name or Dir", ErrDataDirExists, n.dataDir)
	}
	if n.cfg.Port != 0 {
		if err := checkPortFree(n.cfg.Port); err != nil {
			return nil, err
		}
	}

	if err := n.initdb(ctx); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(n.dataDir, "pg_hba.conf"), []byte(hbaConf), 0o600); err != nil {
		return nil, fmt.Errorf("local: write pg_hba.conf: %w", err)
	}
	if n.cfg.Port != 0 {
		if err := n.startOnPort(ctx, n.cfg.Port); err != nil {
			return nil, err
		}
	} else {
		pick := n.cfg.pickPort
		if pick == nil {
			pick = freePort
		}
		try := func(port int) error {
			err := n.startOnPort(ctx, port)
			if errors.Is(err, ErrPortInUse) {
				fmt.Fprintf(n.cfg.Log, "port %d was taken before %s could bind it; trying another\n", port, n.cfg.Name)
			}
			return err
		}
		if _, err := retryPorts(portAttempts, pick, try); err != nil {
			return nil, err
		}
	}
	// pg_ctl -w already saw the server ready; this confirms TCP works, bounded so a
	// context without a deadline cannot hang here.
	readyCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := n.WaitReady(readyCtx); err != nil {
		return nil, err
	}
	if err := n.createDatabase(ctx, Database); err != nil {
		return nil, err
	}
	ok = true
	fmt.Fprintf(n.cfg.Log, "primary %s ready: %s\n", n.cfg.Name, n.DSN(Database))
	return n, nil
}

// newNode validates cfg, resolves the OS user and the work directory.
func newNode(cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	id, err := runAsIdentity()
	if err != nil {
		return nil, err
	}
	dir, owned, err := prepareWorkDir(cfg.Dir, id, cfg.Log)
	if err != nil {
		return nil, err
	}
	return &Node{
		cfg:      cfg,
		id:       id,
		workDir:  dir,
		ownedDir: owned,
		dataDir:  filepath.Join(dir, cfg.Name),
		logFile:  filepath.Join(dir, cfg.Name+".log"),
	}, nil
}

// Name returns the node name.
func (n *Node) Name() string { return n.cfg.Name }

// Port returns the 127.0.0.1 port the node listens on.
func (n *Node) Port() int { return n.port }

// DataDir returns the node's data directory.
func (n *Node) DataDir() string { return n.dataDir }

// LogFile returns the server log file (pg_ctl -l).
func (n *Node) LogFile() string { return n.logFile }

// WorkDir returns the directory holding the data directory and log; it differs from
// Config.Dir when the fallback under os.TempDir() was used.
func (n *Node) WorkDir() string { return n.workDir }

// Bin returns the binaries the node runs.
func (n *Node) Bin() Binaries { return n.cfg.Bin }

// Version returns the version of the binaries, e.g. "15.18".
func (n *Node) Version() string { return n.cfg.Bin.Version }

// DSN returns a connection URL for database db as the superuser, e.g.
// "postgres://postgres@127.0.0.1:5433/rehearse?sslmode=disable".
func (n *Node) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, n.port, db)
}

// PID returns the postmaster's pid, or 0 when the server is not running.
func (n *Node) PID() int {
	pid := readPostmasterPID(n.dataDir)
	if !alive(pid) {
		return 0
	}
	return pid
}

// Running reports whether the node's postmaster is alive.
func (n *Node) Running() bool { return n.PID() != 0 }

// Start starts the stopped (or crashed) server on its port and waits until it accepts
// connections, for at most ctx's deadline (60 s without one). It does not move to
// another port: clients know this one. On failure the error includes the server log
// tail, and no server process is left behind.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return fmt.Errorf("local: start %s: node was removed", n.cfg.Name)
	}
	return n.start(ctx)
}

// startOnPort writes the managed settings for port and starts the server.
func (n *Node) startOnPort(ctx context.Context, port int) error {
	if err := n.writeConf(port); err != nil {
		return err
	}
	n.port = port
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.start(ctx)
}

// writeConf (re)writes the managed block of postgresql.conf.
func (n *Node) writeConf(port int) error {
	path := filepath.Join(n.dataDir, "postgresql.conf")
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("local: read %s: %w", path, err)
	}
	conf, err := replaceManagedBlock(string(old), renderConf(n.cfg.settings(port)))
	if err != nil {
		return fmt.Errorf("%w (%s)", err, path)
	}
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("local: write %s: %w", path, err)
	}
	return nil
}

// start runs pg_ctl start -w; n.mu must be held.
func (n *Node) start(ctx context.Context) error {
	if pid := n.PID(); pid != 0 {
		return fmt.Errorf("%w: %s (pid %d, port %d)", ErrAlreadyRunning, n.cfg.Name, pid, n.port)
	}
	// A postmaster.pid left by a crash names a dead (or zombie) process; the server
	// would refuse to start while a zombie holds that pid, so drop the stale lock.
	if pid := readPostmasterPID(n.dataDir); pid != 0 {
		if err := os.Remove(filepath.Join(n.dataDir, "postmaster.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("local: start %s: remove stale postmaster.pid: %w", n.cfg.Name, err)
		}
	}
	wait := waitSeconds(ctx, defaultStartWait)
	fmt.Fprintf(n.cfg.Log, "start %s on 127.0.0.1:%d\n", n.cfg.Name, n.port)
	offset := fileSize(n.logFile)
	_, err := n.run(ctx, time.Duration(wait)*time.Second+commandGrace, "pg_ctl",
		"start", "-D", n.dataDir, "-l", n.logFile, "-w", "-t", strconv.Itoa(wait))
	if err == nil {
		return nil
	}
	n.stopStray(ctx)
	ce := asCommandError(err)
	ce.Op = fmt.Sprintf("start %s on 127.0.0.1:%d", n.cfg.Name, n.port)
	ce.LogFile = n.logFile
	ce.LogTail = tailFile(n.logFile, offset, logTailLines, logTailBytes)
	switch {
	case portConflict(ce.LogTail):
		ce.Kind = ErrPortInUse
		ce.Hint = fmt.Sprintf("port %d on 127.0.0.1 is taken by another process; free it, or use Port 0 to pick a free one", n.port)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || strings.Contains(ce.Output, "server did not start in time"):
		ce.Hint = fmt.Sprintf("the server was not ready within %d s (crash recovery can take long); allow more time via the context deadline, and check the server log", wait)
	default:
		ce.Hint = "read the server log above; a damaged data directory can be removed with Remove and created again"
	}
	return ce
}

func portConflict(log string) bool {
	return strings.Contains(log, "Address already in use") || strings.Contains(log, "could not bind")
}

// stopStray makes sure no postmaster from a failed start survives.
func (n *Node) stopStray(ctx context.Context) {
	if n.PID() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if _, err := n.run(ctx, 15*time.Second, "pg_ctl", "stop", "-D", n.dataDir, "-m", string(Immediate), "-w", "-t", "10"); err != nil || n.PID() != 0 {
		_ = n.kill(ctx)
	}
}

// Stop shuts the server down in the given mode and waits until the postmaster has
// exited, for at most ctx's deadline (60 s without one). Stopping a stopped node is a
// no-op.
func (n *Node) Stop(ctx context.Context, mode StopMode) error {
	switch mode {
	case Smart, Fast, Immediate:
	default:
		return fmt.Errorf("%w: stop mode %q: want smart, fast or immediate", ErrInvalidConfig, mode)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stop(ctx, mode)
}

func (n *Node) stop(ctx context.Context, mode StopMode) error {
	pid := n.PID()
	if pid == 0 {
		return nil
	}
	wait := waitSeconds(ctx, defaultStopWait)
	fmt.Fprintf(n.cfg.Log, "stop %s (%s)\n", n.cfg.Name, mode)
	offset := fileSize(n.logFile)
	_, err := n.run(ctx, time.Duration(wait)*time.Second+commandGrace, "pg_ctl",
		"stop", "-D", n.dataDir, "-m", string(mode), "-w", "-t", strconv.Itoa(wait))
	if err == nil {
		// pg_ctl returns once postmaster.pid is gone, a moment before the process
		// itself exits; callers may rely on the process being gone.
		if _, err := n.waitGone(ctx, []int{pid}); err != nil {
			return fmt.Errorf("local: stop %s (%s): postmaster pid %d still alive after pg_ctl stop: %w", n.cfg.Name, mode, pid, err)
		}
		return nil
	}
	ce := asCommandError(err)
	ce.Op = fmt.Sprintf("stop %s (%s)", n.cfg.Name, mode)
	ce.LogFile = n.logFile
	ce.LogTail = tailFile(n.logFile, offset, logTailLines, logTailBytes)
	ce.Hint = "the server may still be running; retry with the Immediate mode, or Kill it"
	return ce
}

// Kill crashes the node: SIGKILL to the postmaster and every child process at once,
// like a power loss of the machine (the next Start runs crash recovery). It waits
// until the processes are gone, for at most ctx's deadline (10 s without one). Killing
// a stopped node is a no-op.
func (n *Node) Kill(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.kill(ctx)
}

func (n *Node) kill(ctx context.Context) error {
	pid := n.PID()
	if pid == 0 {
		return nil
	}
	fmt.Fprintf(n.cfg.Log, "kill %s (postmaster pid %d)\n", n.cfg.Name, pid)
	// Freeze the postmaster first so it cannot fork a new child (or react to its
	// children's deaths) while they are listed, then kill it and all of them. Listing
	// must happen before it dies: orphans are reparented and no longer findable.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("local: kill %s: SIGSTOP pid %d: %w", n.cfg.Name, pid, err)
	}
	victims := append([]int{pid}, childrenOf(pid)...)
	for _, p := range victims {
		if err := syscall.Kill(p, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("local: kill %s: SIGKILL pid %d: %w", n.cfg.Name, p, err)
		}
	}
	if left, err := n.waitGone(ctx, victims); err != nil {
		return fmt.Errorf("local: kill %s: %d of its processes still alive after SIGKILL: %w", n.cfg.Name, left, err)
	}
	return nil
}

// waitGone polls until none of pids is alive, for at most killWait; it returns how
// many are left when ctx ends first.
func (n *Node) waitGone(ctx context.Context, pids []int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, killWait)
	defer cancel()
	tick := time.NewTicker(n.cfg.PollInterval)
	defer tick.Stop()
	for {
		left := 0
		for _, p := range pids {
			if alive(p) {
				left++
			}
		}
		if left == 0 {
			return 0, nil
		}
		select {
		case <-ctx.Done():
			return left, ctx.Err()
		case <-tick.C:
		}
	}
}

// Remove stops the server if it runs (fast, then immediate, then SIGKILL) and deletes
// its data directory (and the fallback work directory, if one was created for it).
// The server log in a caller-chosen Dir is kept.
func (n *Node) Remove(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.remove(ctx, Fast)
}

func (n *Node) remove(ctx context.Context, mode StopMode) error {
	if n.closed {
		return nil
	}
	var errs []error
	// Escalate: the requested mode, then immediate, then SIGKILL. Errors only matter
	// if the server survives all three.
	if n.PID() != 0 {
		errs = append(errs, n.stop(ctx, mode))
	}
	if n.PID() != 0 && mode != Immediate {
		errs = append(errs, n.stop(ctx, Immediate))
	}
	if n.PID() != 0 {
		errs = append(errs, n.kill(ctx))
	}
	if pid := n.PID(); pid != 0 {
		errs = append(errs, fmt.Errorf("local: remove %s: server still running (pid %d); data directory kept", n.cfg.Name, pid))
		return errors.Join(errs...)
	}
	errs = errs[:0]
	fmt.Fprintf(n.cfg.Log, "remove %s (%s)\n", n.cfg.Name, n.dataDir)
	if err := os.RemoveAll(n.dataDir); err != nil {
		errs = append(errs, fmt.Errorf("local: remove %s: %w", n.dataDir, err))
	}
	if n.ownedDir {
		if err := os.RemoveAll(n.workDir); err != nil {
			errs = append(errs, fmt.Errorf("local: remove %s: %w", n.workDir, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	n.closed = true
	return nil
}

// Close is the idempotent cleanup for tests and deferred calls: an immediate stop
// (the data is discarded anyway) and Remove. It keeps going when ctx is already
// cancelled (as t.Context() is during t.Cleanup), bounded by 30 s.
func (n *Node) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.remove(ctx, Immediate)
}

// discard undoes a failed InitPrimary.
func (n *Node) discard(ctx context.Context) {
	_ = n.Close(ctx)
}

// WaitReady polls until the server accepts a connection to the "postgres" database,
// every Config.PollInterval, until ctx ends. It fails early, with the server log
// tail, when the postmaster is not running.
func (n *Node) WaitReady(ctx context.Context) error {
	tick := time.NewTicker(n.cfg.PollInterval)
	defer tick.Stop()
	for {
		err := n.ping(ctx)
		if err == nil {
			return nil
		}
		if n.PID() == 0 {
			return &CommandError{
				Op: "wait for " + n.cfg.Name, Err: fmt.Errorf("server is not running: %w", err),
				LogFile: n.logFile, LogTail: tailFile(n.logFile, 0, logTailLines, logTailBytes),
				Hint: "start it (Start), and read the server log",
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("local: %s not ready at 127.0.0.1:%d: %w (last error: %v)", n.cfg.Name, n.port, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func (n *Node) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

// ServerVersion asks the running server for its version (SHOW server_version).
func (n *Node) ServerVersion(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, n.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("local: connect to %s: %w", n.cfg.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "", fmt.Errorf("local: %s server_version: %w", n.cfg.Name, err)
	}
	return v, nil
}

func (n *Node) createDatabase(ctx context.Context, db string) error {
	conn, err := pgx.Connect(ctx, n.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("local: connect to %s: %w", n.cfg.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return fmt.Errorf("local: create database %s on %s: %w", db, n.cfg.Name, err)
	}
	return nil
}

func (n *Node) initdb(ctx context.Context) error {
	fmt.Fprintf(n.cfg.Log, "initdb %s (PostgreSQL %s) in %s\n", n.cfg.Name, n.cfg.Bin.Version, n.dataDir)
	args := []string{"-D", n.dataDir, "-U", Superuser, "--auth=trust", "--data-checksums",
		"--encoding=UTF8", "--locale=C"}
	if !n.cfg.Fsync {
		args = append(args, "--no-sync")
	}
	if _, err := n.run(ctx, initdbTimeout, "initdb", args...); err != nil {
		ce := asCommandError(err)
		ce.Op = "initdb " + n.cfg.Name
		ce.Hint = fmt.Sprintf("check that %s is writable by the OS user running the server and that the disk has space", n.workDir)
		return ce
	}
	return nil
}

// run executes a server program as the node's OS user, in the work directory, with a
// small fixed environment (no PG* variables leak in), bounded by timeout.
func (n *Node) run(ctx context.Context, timeout time.Duration, program string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.cfg.Bin.Path(program), args...)
	cmd.Dir = n.workDir
	cmd.Env = []string{"PATH=" + n.cfg.Bin.Dir + ":" + serverUserEnvPath, "LC_ALL=C", "LANG=C"}
	if n.id != nil {
		cmd.Env = append(cmd.Env, "HOME="+n.id.home, "USER="+n.id.name, "LOGNAME="+n.id.name)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: n.id.credential()}
	}
	// pg_ctl start leaves a daemon behind; it redirects the daemon's output to the
	// log, but never let an inherited pipe hold Wait forever.
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	output := strings.TrimSpace(out.String())
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return output, &CommandError{Op: program, Args: cmd.Args, Output: output, Err: err}
	}
	return output, nil
}

func asCommandError(err error) *CommandError {
	var ce *CommandError
	if errors.As(err, &ce) {
		return ce
	}
	return &CommandError{Err: err}
}

// waitSeconds is the pg_ctl -t value: def, or less when ctx ends sooner; at least 1.
func waitSeconds(ctx context.Context, def time.Duration) int {
	d := def
	if dl, ok := ctx.Deadline(); ok {
		if r := time.Until(dl); r < d {
			d = r
		}
	}
	return max(1, int(math.Ceil(d.Seconds())))
}

// freePort asks the kernel for a free 127.0.0.1 port. Another process may take it
// before the server binds it; callers retry (retryPorts).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoFreePort, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// checkPortFree fails with ErrPortInUse when port cannot be bound on 127.0.0.1.
func checkPortFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("%w: 127.0.0.1:%d cannot be bound (%v); stop whatever listens there, choose another Port, or use Port 0 to pick a free one",
			ErrPortInUse, port, err)
	}
	return l.Close()
}

// retryPorts calls try with ports from pick until one works, a failure is not a port
// conflict (returned as is), or attempts run out (ErrNoFreePort).
func retryPorts(attempts int, pick func() (int, error), try func(port int) error) (int, error) {
	var last error
	for range attempts {
		port, err := pick()
		if err != nil {
			last = err
			continue
		}
		err = try(port)
		if err == nil {
			return port, nil
		}
		if !errors.Is(err, ErrPortInUse) {
			return 0, err
		}
		last = err
	}
	return 0, fmt.Errorf("%w: %d attempts failed; the last one:\n%v", ErrNoFreePort, attempts, last)
}
