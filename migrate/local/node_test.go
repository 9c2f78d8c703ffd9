package local

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rehearse-dev/rehearse/internal/testutil"
)

// requireBinaries returns the PostgreSQL server programs: the test is skipped on a
// machine without them (and fails under CI).
func requireBinaries(t *testing.T) Binaries {
	t.Helper()
	testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
	bin, err := FindBinaries(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// testConfig returns a fast config in a fresh work directory the postgres OS user can
// reach: t.TempDir's per-test parent is 0700, so open it to traversal.
func testConfig(t *testing.T) Config {
	t.Helper()
	bin := requireBinaries(t)
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	return Config{Dir: dir, Bin: bin, MaxConnections: 20, SharedBuffers: "16MB", Log: &testutil.SyncBuffer{}}
}

// startPrimary starts a primary and registers its cleanup (which runs even when the
// test fails).
func startPrimary(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := InitPrimary(t.Context(), cfg)
	if err != nil {
		t.Fatalf("InitPrimary: %v\nlog:\n%s", err, cfg.Log)
	}
	t.Cleanup(func() {
		if err := n.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return n
}

func connect(t *testing.T, n *Node, db string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), n.DSN(db))
	if err != nil {
		t.Fatalf("connect %s: %v", n.DSN(db), err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func show(t *testing.T, conn *pgx.Conn, name string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(t.Context(), "SHOW "+name).Scan(&v); err != nil {
		t.Fatalf("SHOW %s: %v", name, err)
	}
	return v
}

// TestPrimary runs one primary through its whole lifecycle; the subtests depend on
// each other's order (one initdb keeps the package fast).
func TestPrimary(t *testing.T) {
	cfg := testConfig(t)

	// The first port offered is taken: InitPrimary must retry on another.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	picks := 0
	cfg.pickPort = func() (int, error) {
		picks++
		if picks == 1 {
			return busyPort, nil
		}
		return freePort("127.0.0.1")
	}

	n := startPrimary(t, cfg)
	log := cfg.Log.(*testutil.SyncBuffer)
	if n.Port() == busyPort || picks != 2 {
		t.Fatalf("port %d after %d picks; want a retry away from busy port %d", n.Port(), picks, busyPort)
	}
	if want := "postgres://postgres@127.0.0.1:" + strconv.Itoa(n.Port()) + "/rehearse?sslmode=disable&passfile=" + url.QueryEscape(filepath.Join(cfg.Dir, PassFileName)); n.DSN(Database) != want {
		t.Errorf("DSN = %q, want %q", n.DSN(Database), want)
	}
	if n.DataDir() != filepath.Join(cfg.Dir, "node1") || n.LogFile() != filepath.Join(cfg.Dir, "node1.log") {
		t.Errorf("DataDir %q, LogFile %q: want them under %s", n.DataDir(), n.LogFile(), cfg.Dir)
	}
	for _, want := range []string{"initdb node1", "port " + strconv.Itoa(busyPort) + " was taken", "primary node1 ready"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("progress log lacks %q:\n%s", want, log)
		}
	}

	t.Run("settings", func(t *testing.T) {
		conn := connect(t, n, Database)
		var one int
		if err := conn.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("SELECT 1 = %d, %v", one, err)
		}
		for name, want := range map[string]string{
			"data_checksums":          "on",
			"wal_level":               "replica",
			"wal_log_hints":           "on",
			"hot_standby":             "on",
			"fsync":                   "off",
			"max_wal_senders":         "10",
			"max_replication_slots":   "10",
			"max_connections":         "20",
			"shared_buffers":          "16MB",
			"listen_addresses":        "127.0.0.1",
			"unix_socket_directories": "",
			"logging_collector":       "off",
			"port":                    strconv.Itoa(n.Port()),
		} {
			if got := show(t, conn, name); got != want {
				t.Errorf("SHOW %s = %q, want %q", name, got, want)
			}
		}
		v, err := n.ServerVersion(t.Context())
		if err != nil || !strings.HasPrefix(v, n.Version()) {
			t.Errorf("ServerVersion = %q, %v; want it to start with %q", v, err, n.Version())
		}
		if _, err := conn.Exec(t.Context(), "CREATE TABLE t (v int); INSERT INTO t VALUES (1)"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("owned by server user", func(t *testing.T) {
		id, err := runAsIdentity()
		if err != nil {
			t.Fatal(err)
		}
		want := uint32(os.Geteuid())
		if id != nil {
			want = id.uid
		}
		for _, p := range []string{cfg.Dir, n.DataDir(), n.LogFile()} {
			if st := stat(t, p); st.Uid != want {
				t.Errorf("%s owned by uid %d, want %d", p, st.Uid, want)
			}
		}
	})

	t.Run("replication connection", func(t *testing.T) {
		// pg_hba.conf must let pg_basebackup-style replication sessions in over TCP.
		conn, err := pgconn.Connect(t.Context(), n.DSN("postgres")+"&replication=database")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(t.Context(), "IDENTIFY_SYSTEM").ReadAll(); err != nil {
			t.Fatalf("IDENTIFY_SYSTEM: %v", err)
		}
	})

	t.Run("stop fast and start", func(t *testing.T) {
		pid := n.PID()
		if err := n.Stop(t.Context(), Fast); err != nil {
			t.Fatal(err)
		}
		if n.Running() || n.PID() != 0 || alive(pid) {
			t.Fatalf("after Stop: Running %v, PID %d, old pid %d alive %v", n.Running(), n.PID(), pid, alive(pid))
		}
		if err := n.Stop(t.Context(), Fast); err != nil {
			t.Errorf("second Stop: %v (want a no-op)", err)
		}
		if err := n.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := n.Start(t.Context()); !errors.Is(err, ErrAlreadyRunning) {
			t.Errorf("Start on a running node = %v, want ErrAlreadyRunning", err)
		}
		if err := n.WaitReady(t.Context()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("kill and recover", func(t *testing.T) {
		conn := connect(t, n, Database)
		if _, err := conn.Exec(t.Context(), "INSERT INTO t VALUES (2)"); err != nil {
			t.Fatal(err)
		}
		pid := n.PID()
		if pid == 0 {
			t.Fatal("not running")
		}
		if err := n.Kill(t.Context()); err != nil {
			t.Fatal(err)
		}
		if alive(pid) || n.Running() {
			t.Fatalf("postmaster pid %d still alive after Kill", pid)
		}
		if err := n.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n.PID() == pid || n.PID() == 0 {
			t.Errorf("PID after restart = %d (old %d)", n.PID(), pid)
		}
		var sum int
		if err := connect(t, n, Database).QueryRow(t.Context(), "SELECT sum(v) FROM t").Scan(&sum); err != nil || sum != 3 {
			t.Errorf("committed rows after crash recovery: sum = %d, %v; want 3", sum, err)
		}
		if b, _ := os.ReadFile(n.LogFile()); !strings.Contains(string(b), "not properly shut down") {
			t.Errorf("server log does not show crash recovery")
		}
	})

	t.Run("start failure reports log tail", func(t *testing.T) {
		if err := n.Stop(t.Context(), Immediate); err != nil {
			t.Fatal(err)
		}
		confPath := filepath.Join(n.DataDir(), "postgresql.conf")
		orig, err := os.ReadFile(confPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(confPath, append(orig, "shared_buffers = 'lots'\n"...), 0o600); err != nil {
			t.Fatal(err)
		}
		err = n.Start(t.Context())
		var ce *CommandError
		if !errors.As(err, &ce) || !errors.Is(err, ErrCommand) {
			t.Fatalf("Start with a bad setting = %v, want a *CommandError", err)
		}
		for _, want := range []string{"pg_ctl", "start", `"shared_buffers"`, "what to do"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
		if n.Running() {
			t.Error("a server is running after the failed start")
		}
		if err := os.WriteFile(confPath, orig, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := n.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("stop smart", func(t *testing.T) {
		if err := n.Stop(t.Context(), Smart); err != nil {
			t.Fatal(err)
		}
		if n.Running() {
			t.Fatal("running after smart stop")
		}
		if err := n.Stop(t.Context(), "sideways"); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("bad mode: %v, want ErrInvalidConfig", err)
		}
		if err := n.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("remove", func(t *testing.T) {
		pid := n.PID()
		if err := n.Remove(t.Context()); err != nil {
			t.Fatal(err)
		}
		if alive(pid) {
			t.Errorf("postmaster %d alive after Remove", pid)
		}
		if _, err := os.Stat(n.DataDir()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("data dir after Remove: %v, want it gone", err)
		}
		if _, err := os.Stat(n.LogFile()); err != nil {
			t.Errorf("server log should be kept: %v", err)
		}
		if err := n.Close(t.Context()); err != nil {
			t.Errorf("Close after Remove: %v (want a no-op)", err)
		}
		if err := n.Start(t.Context()); err == nil {
			t.Error("Start after Remove succeeded")
		}
	})
}

func TestInitPrimaryPortInUse(t *testing.T) {
	cfg := testConfig(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg.Port = l.Addr().(*net.TCPAddr).Port
	n, err := InitPrimary(t.Context(), cfg)
	if err == nil {
		n.Close(t.Context())
		t.Fatal("InitPrimary on a busy port succeeded")
	}
	if !errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), strconv.Itoa(cfg.Port)) {
		t.Errorf("err = %v; want ErrPortInUse naming port %d", err, cfg.Port)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "node1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data dir left behind: %v", err)
	}
}

func TestInitPrimaryDataDirExists(t *testing.T) {
	cfg := testConfig(t)
	existing := filepath.Join(cfg.Dir, "node1")
	if err := os.Mkdir(existing, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := InitPrimary(t.Context(), cfg)
	if !errors.Is(err, ErrDataDirExists) {
		t.Fatalf("err = %v, want ErrDataDirExists", err)
	}
	if _, err := os.Stat(existing); err != nil {
		t.Errorf("existing data dir was touched: %v", err)
	}
}

func TestInitPrimaryInvalidConfig(t *testing.T) {
	_, err := InitPrimary(t.Context(), Config{Name: "a/b"})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{"Dir is empty", "Bin.Dir is empty", `Name "a/b"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestInitPrimaryCancelled(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	n, err := InitPrimary(ctx, cfg)
	if err == nil {
		n.Close(t.Context())
		t.Fatal("InitPrimary with a cancelled context succeeded")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want it to wrap context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "node1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data dir left behind: %v", err)
	}
}

func TestWaitSeconds(t *testing.T) {
	tests := []struct {
		name     string
		deadline time.Duration // 0 = none
		want     int
	}{
		{name: "no deadline", want: 60},
		{name: "later deadline", deadline: time.Hour, want: 60},
		{name: "earlier deadline", deadline: 5*time.Second + 200*time.Millisecond, want: 6},
		{name: "past deadline", deadline: -time.Second, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.deadline != 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, time.Now().Add(tt.deadline))
				defer cancel()
			}
			if got := waitSeconds(ctx, 60*time.Second); got != tt.want {
				t.Errorf("waitSeconds = %d, want %d", got, tt.want)
			}
		})
	}
}
