// Package pgtest starts a throwaway PostgreSQL server for integration tests.
//
// The server runs from the machine's own binaries (pg_config --bindir, the PATH, or
// the Debian layout /usr/lib/postgresql/*/bin), with fsync off, on a free 127.0.0.1
// port, in a temporary directory that is removed when the test ends, pass or fail,
// admitting only the postgres superuser with a password made for the server (in
// Server.DSN).
// When running as root the server runs as the `postgres` OS user, because PostgreSQL
// refuses to run as root.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/internal/testutil"
)

// ErrNoPostgres is returned when no PostgreSQL server binaries can be found.
var ErrNoPostgres = errors.New("pgtest: no PostgreSQL server binaries found")

// BinDir finds the directory holding initdb and pg_ctl.
func BinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if isFile(filepath.Join(dir, "initdb")) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	// Debian/Ubuntu keep server binaries off the PATH; prefer the newest version.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isFile(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

func version(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// Server is a running test server.
type Server struct {
	// DSN connects to the postgres database as the postgres superuser, with the
	// server's password (the server admits no one without it).
	DSN string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// DataDir is the server's data directory.
	DataDir string
}

// Start initialises and starts a server and registers its teardown with t.Cleanup.
// It skips the test when no PostgreSQL binaries are installed, or fails it when the
// environment variable CI is set (see testutil.RequireTool).
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
		t.Fatalf("pgtest: %v", err) // initdb is there, but not where BinDir looks
	}
	cred, uid, gid, err := credential()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	root, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	data := filepath.Join(root, "data")
	logFile := filepath.Join(root, "server.log")
	started := false
	t.Cleanup(func() {
		if started {
			if out, err := run(cred, filepath.Join(bin, "pg_ctl"), "stop", "-D", data, "-m", "immediate", "-w"); err != nil {
				t.Logf("pgtest: pg_ctl stop: %v\n%s", err, out)
			}
		}
		_ = os.RemoveAll(root)
	})
	// The postgres user must be able to reach and own its directories.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if cred != nil {
		for _, p := range []string{root, data} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatalf("pgtest: chown %s: %v", p, err)
			}
		}
	}
	// The server admits the postgres superuser with a password made for it only,
	// over TCP and its socket alike, as the servers rehearse starts do.
	password := randomPassword(t)
	pwfile := filepath.Join(root, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if cred != nil {
		if err := os.Chown(pwfile, uid, gid); err != nil {
			t.Fatalf("pgtest: chown %s: %v", pwfile, err)
		}
	}
	out, err := run(cred, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "scram-sha-256", "--pwfile", pwfile, "-E", "UTF8", "--no-sync", "--locale=C")
	_ = os.Remove(pwfile)
	if err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := testutil.FreePort(t)
		opts := fmt.Sprintf("-c port=%d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=128MB", port, root)
		out, err := run(cred, filepath.Join(bin, "pg_ctl"), "start", "-D", data, "-l", logFile, "-w", "-t", "60", "-o", opts)
		if err == nil {
			started = true
			return &Server{
				DSN:     fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable", password, port),
				Port:    port,
				DataDir: data,
			}
		}
		serverLog, _ := os.ReadFile(logFile)
		lastErr = fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, serverLog)
	}
	t.Fatalf("pgtest: %v", lastErr)
	return nil
}

// randomPassword is 32 random bytes in hex: safe in a URL as it is.
func randomPassword(t testing.TB) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return hex.EncodeToString(b)
}

// credential returns the credential to run server binaries with: the postgres user
// when running as root, nil otherwise.
func credential() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, -1, -1, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("running as root needs a postgres user: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

func run(cred *syscall.Credential, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	cmd.Dir = os.TempDir()
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	err := cmd.Run()
	return buf.Bytes(), err
}

// CommitCutOff runs op on a connection of its own while the server's COMMIT waits
// for a synchronous standby that does not exist, then terminates that backend: the
// server has committed locally, but the client only sees its connection close. It
// returns op's error, which a workload must report as ambiguous. pool is an admin
// connection pool to the same server; the setting is undone before returning.
func CommitCutOff(t testing.TB, pool *pgxpool.Pool, dsn string, op func(ctx context.Context, conn *pgx.Conn) error) error {
	t.Helper()
	ctx := context.Background()
	setSync := func(names string) {
		t.Helper()
		if _, err := pool.Exec(ctx, `ALTER SYSTEM SET synchronous_standby_names = '`+names+`'`); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pid := conn.PgConn().PID()
	setSync("nobody")
	defer setSync("")
	// pg_reload_conf only signals: poll until this backend has the new setting.
	testutil.Eventually(t, 30*time.Second, "the backend to see synchronous_standby_names = nobody", func() bool {
		var setting string
		if err := conn.QueryRow(ctx, `SHOW synchronous_standby_names`).Scan(&setting); err != nil {
			t.Fatal(err)
		}
		return setting == "nobody"
	})
	// The checkpointer, not this backend, tells commits that a synchronous standby is
	// configured, so the first commits after the reload may not wait yet: retry until
	// one does. The server offers no event to block on, so poll pg_stat_activity.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	var done chan error
	for waiting := false; !waiting; {
		if done == nil {
			done = make(chan error, 1)
			go func(done chan<- error) { done <- op(ctx, conn) }(done)
		}
		select {
		case <-deadline:
			t.Fatal("the commit never waited for the synchronous standby")
		case err := <-done:
			if err != nil {
				t.Fatalf("the operation failed before its commit waited: %v", err)
			}
			done = nil // committed before the standby requirement reached it
		case <-tick.C:
			if err := pool.QueryRow(ctx, `SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep'`, pid).Scan(&waiting); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the operation did not return within 30s of its backend's termination")
		return nil
	}
}
