// Package local runs PostgreSQL server processes from the machine's own binaries: the
// embedded local target of rehearse. A Node is one server (data directory, address,
// log); InitPrimary creates and starts a primary. Nodes listen on one loopback address
// only (127.0.0.1 by default; a Cluster gives each node an address of its own in a
// /24 of 127.0.0.0/8, on a port they share), without Unix sockets, and admit only
// clients with the run's password (scram-sha-256, see Credentials), for normal and
// replication sessions: other users of the machine reach loopback addresses too.
//
// PostgreSQL refuses to run as root. When this process is root, every server program
// runs as the "postgres" OS user (via process credentials, no sudo), and the work
// directory is handed to that user.
package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
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
	creds    *Credentials
	ownCreds bool // creds were generated for this node: Remove deletes them

	mu     sync.Mutex
	closed bool
}

// InitPrimary creates and starts a primary: initdb (data checksums, superuser
// "postgres" with the credentials' password), the node's postgresql.conf settings
// and loopback-only, password-only pg_hba.conf, start, readiness, and the database
// "rehearse". Without Config.Credentials it generates them in the work directory.
// On any failure it leaves nothing running and removes what it created (the server
// log stays in Dir).
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
		if err := checkPortFree(n.cfg.Host, n.cfg.Port); err != nil {
			return nil, err
		}
	}

	if n.creds == nil {
		if n.creds, err = NewCredentials(n.workDir, n.cfg.Log); err != nil {
			return nil, err
		}
		n.ownCreds = true
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
		pick := n.pickPort()
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
		creds:    cfg.Credentials,
	}, nil
}

// Name returns the node name.
func (n *Node) Name() string { return n.cfg.Name }

// Port returns the port the node listens on.
func (n *Node) Port() int { return n.port }

// Host returns the loopback address the node listens on.
func (n *Node) Host() string { return n.cfg.Host }

// Addr returns the node's host:port.
func (n *Node) Addr() string { return net.JoinHostPort(n.cfg.Host, strconv.Itoa(n.port)) }

// pickPort returns the free-port picker for the node's host.
func (n *Node) pickPort() func() (int, error) {
	if n.cfg.pickPort != nil {
		return n.cfg.pickPort
	}
	return func() (int, error) { return freePort(n.cfg.Host) }
}

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

// DSN returns a connection URL for database db as the superuser at the node's own
// address, whose password is read from the credentials' file, e.g.
// "postgres://postgres@127.0.0.1:5433/rehearse?sslmode=disable&passfile=%2Frun%2F.pgpass".
// It holds no secret.
func (n *Node) DSN(db string) string { return n.creds.DSN(n.Addr(), db) }

// Credentials are the credentials the node admits.
func (n *Node) Credentials() *Credentials { return n.creds }

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
			return fmt.Errorf("local: %s not ready at %s: %w (last error: %v)", n.cfg.Name, n.Addr(), ctx.Err(), err)
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
