package endpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/local"
)

// needPgBouncer skips the test under -short, or when pgbouncer is not installed
// (a failure under CI instead).
func needPgBouncer(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PgBouncer")
	}
	testutil.RequireTool(t, "pgbouncer", "Debian package pgbouncer")
	if _, err := FindPgBouncer(""); err != nil {
		t.Fatal(err)
	}
}

func startBouncer(t *testing.T, cfg PgBouncerConfig) *PgBouncer {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = workDir(t)
	}
	if cfg.Credentials == nil {
		cfg.Credentials = testCreds
	}
	log := &testutil.SyncBuffer{}
	cfg.Log = log
	b, err := StartPgBouncer(t.Context(), cfg)
	if err != nil {
		t.Fatalf("StartPgBouncer: %v\nlog:\n%s", err, log)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close pgbouncer: %v", err)
		}
		if t.Failed() {
			if l, err := os.ReadFile(b.LogFile()); err == nil {
				t.Logf("pgbouncer %s log:\n%s", cfg.Name, l)
			}
		}
	})
	return b
}

// procAlive reports whether pid is a live (not zombie) process.
func procAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || len(s) < i+3 || (s[i+2] != 'Z' && s[i+2] != 'X')
}

// pgbouncerProcs lists the live pgbouncer processes whose command line names dir.
func pgbouncerProcs(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && strings.Contains(string(cmd), "pgbouncer") && strings.Contains(string(cmd), dir) && procAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestFindPgBouncerMissing(t *testing.T) {
	_, err := FindPgBouncer("/nonexistent/pgbouncer")
	if !errors.Is(err, ErrNoPgBouncer) || !strings.Contains(err.Error(), "apt-get install") {
		t.Errorf("FindPgBouncer(missing) = %v, want ErrNoPgBouncer telling how to install it", err)
	}
}

func TestPgBouncerConfigValidate(t *testing.T) {
	errs := PgBouncerConfig{Name: "bad name", Backend: "nohost", Databases: []string{"pgbouncer"}, PoolSize: -1}.Validate()
	if len(errs) != 6 {
		t.Errorf("Validate() = %v, want 6 errors", errs)
	}
}

func TestRenderIni(t *testing.T) {
	got := renderIni(PgBouncerConfig{Databases: []string{"rehearse", "postgres"}, PoolSize: 7, MaxClientConn: 50, QueryWait: time.Minute},
		"127.0.0.1", "5433", 6432, "/w/writer.users")
	for _, want := range []string{
		"postgres = host=127.0.0.1 port=5433 dbname=postgres\nrehearse = host=127.0.0.1 port=5433 dbname=rehearse\n",
		"listen_addr = 127.0.0.1\n", "listen_port = 6432\n", "unix_socket_dir = \n",
		"auth_type = scram-sha-256\n", "auth_file = /w/writer.users\n", "admin_users = postgres\n",
		"pool_mode = transaction\n", "default_pool_size = 7\n", "max_client_conn = 50\n",
		"query_wait_timeout = 60\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ini lacks %q:\n%s", want, got)
		}
	}
}

func TestPgBouncerStartStop(t *testing.T) {
	needPgBouncer(t)
	n1 := startNode(t, "node1")
	dir := workDir(t)
	b := startBouncer(t, PgBouncerConfig{Dir: dir, Name: "writer", Backend: nodeAddr(n1), PoolSize: 4})

	conn := connect(t, b.Addr(), ExecMode(ModeProxy))
	if got := mustServerPort(t, conn); got != n1.Port() {
		t.Fatalf("through pgbouncer reached %d, want node1 %d", got, n1.Port())
	}
	// PgBouncer admits the run's password only, as the node does.
	testutil.RequireRefused(t, b.Addr(), n1.Bin().Path("psql"))
	if data, err := os.ReadFile(b.LogFile()); err == nil && strings.Contains(string(data), testCreds.Password()) {
		t.Error("PgBouncer's log holds the password")
	}
	ctx := t.Context()
	if _, err := conn.Exec(ctx, "CREATE TABLE acct (id int PRIMARY KEY, bal int)"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO acct VALUES ($1, $2)", i, i*10); err != nil {
			t.Fatal(err)
		}
		var bal int
		if err := tx.QueryRow(ctx, "SELECT bal FROM acct WHERE id = $1", i).Scan(&bal); err != nil || bal != i*10 {
			t.Fatalf("select in tx: %d, %v", bal, err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var sum int
	if err := conn.QueryRow(ctx, "SELECT sum(bal) FROM acct").Scan(&sum); err != nil || sum != 1900 {
		t.Fatalf("sum = %d, %v", sum, err)
	}

	pid := b.PID()
	if !procAlive(pid) {
		t.Fatalf("pgbouncer pid %d not running", pid)
	}
	if err := b.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if procAlive(pid) {
		t.Errorf("pgbouncer pid %d still running after Stop", pid)
	}
	if left := pgbouncerProcs(dir); len(left) > 0 {
		t.Errorf("pgbouncer processes left: %v", left)
	}
	if err := b.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := serverPort(ctx, conn); err == nil {
		t.Error("client connection survived Stop")
	}
}

// TestPgBouncerPauseRepointResume is the RDS-Proxy-like switchover: a client runs a
// loop of transactions through PgBouncer; PAUSE holds it, PgBouncer is repointed to
// another node and the first one stopped, RESUME lets the same client connection go
// on, now on the second node, without a single error.
func TestPgBouncerPauseRepointResume(t *testing.T) {
	needPgBouncer(t)
	n1, n2 := startNode(t, "node1"), startNode(t, "node2")
	b := startBouncer(t, PgBouncerConfig{Name: "writer", Backend: nodeAddr(n1), PoolSize: 2})
	ctx := t.Context()

	conn := connect(t, b.Addr(), ExecMode(ModeProxy))
	var (
		iterations atomic.Int64
		lastPort   atomic.Int64
		loopErr    = make(chan error, 1)
		stop       = make(chan struct{})
	)
	go func() {
		for {
			select {
			case <-stop:
				loopErr <- nil
				return
			default:
			}
			// A transaction of two statements: PAUSE must never split one.
			tx, err := conn.Begin(ctx)
			if err != nil {
				loopErr <- err
				return
			}
			var p1, p2 int
			err = tx.QueryRow(ctx, "SELECT inet_server_port()").Scan(&p1)
			if err == nil {
				err = tx.QueryRow(ctx, "SELECT inet_server_port() + $1", 0).Scan(&p2)
			}
			if err == nil && p1 != p2 {
				err = errors.New("one transaction reached two servers")
			}
			if err == nil {
				err = tx.Commit(ctx)
			}
			if err != nil {
				_ = tx.Rollback(context.Background())
				loopErr <- err
				return
			}
			lastPort.Store(int64(p1))
			iterations.Add(1)
		}
	}()
	testutil.Eventually(t, 10*time.Second, "the client loop to run on node1", func() bool {
		return iterations.Load() > 10 && lastPort.Load() == int64(n1.Port())
	})

	t0 := time.Now()
	if err := b.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	paused := time.Since(t0)
	// The client's next transaction is held: PgBouncer reports it waiting.
	testutil.Eventually(t, 10*time.Second, "the client to wait in the paused pool", func() bool {
		return waitingClients(t, b) > 0
	})
	held := iterations.Load()
	if err := n1.Stop(ctx, local.Fast); err != nil { // the old writer goes away while clients are held
		t.Fatal(err)
	}
	t1 := time.Now()
	if err := b.Repoint(ctx, nodeAddr(n2)); err != nil {
		t.Fatal(err)
	}
	if err := b.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	repointResume := time.Since(t1)
	if got := iterations.Load(); got != held {
		t.Errorf("%d transactions completed while paused", got-held)
	}
	testutil.Eventually(t, 10*time.Second, "the same client connection to continue on node2", func() bool {
		return lastPort.Load() == int64(n2.Port()) && iterations.Load() > held+10
	})
	heldFor := time.Since(t0)
	close(stop)
	select {
	case err := <-loopErr:
		if err != nil {
			t.Fatalf("the client saw an error across PAUSE/repoint/RESUME: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client loop did not stop within 10s: a transaction is stuck")
	}
	t.Logf("PAUSE took %v; repoint+RESUME took %v; client held about %v (node1 stop included); %d transactions, 0 errors",
		paused, repointResume, heldFor, iterations.Load())
}

// waitingClients sums cl_waiting over PgBouncer's pools.
func waitingClients(t *testing.T, b *PgBouncer) int {
	t.Helper()
	rows, err := b.Admin(t.Context(), "SHOW POOLS")
	if err != nil {
		t.Fatalf("SHOW POOLS: %v", err)
	}
	// Columns: database, user, cl_active, cl_waiting, ...
	n := 0
	for _, r := range rows {
		if len(r) > 3 {
			w, _ := strconv.Atoi(r[3])
			n += w
		}
	}
	return n
}

func TestPgBouncerPauseIdempotentAndTimeout(t *testing.T) {
	needPgBouncer(t)
	n1 := startNode(t, "node1")
	b := startBouncer(t, PgBouncerConfig{Name: "writer", Backend: nodeAddr(n1), PoolSize: 2})
	ctx := t.Context()

	// An open transaction keeps PAUSE from completing: it fails at ctx's deadline and
	// leaves PgBouncer resumed.
	conn := connect(t, b.Addr(), ExecMode(ModeProxy))
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = b.Pause(pctx)
	cancel()
	if err == nil {
		t.Fatal("Pause completed with a transaction open")
	}
	if b.Paused() {
		t.Error("Paused() after a failed Pause")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("the open transaction failed after the aborted PAUSE: %v", err)
	}
	other := connect(t, b.Addr(), ExecMode(ModeProxy))
	if got := mustServerPort(t, other); got != n1.Port() {
		t.Errorf("after the aborted PAUSE a new client reached %d", got)
	}

	for range 2 {
		if err := b.Pause(ctx); err != nil {
			t.Fatalf("Pause: %v", err)
		}
	}
	for range 2 {
		if err := b.Resume(ctx); err != nil {
			t.Fatalf("Resume: %v", err)
		}
	}
	if got := mustServerPort(t, conn); got != n1.Port() {
		t.Errorf("after PAUSE/RESUME: %d", got)
	}
}

// TestPgBouncerPairSwitchover drives the proxy Mode as the provider will: forwarding,
// Hold, stop the old writer, Release.
func TestPgBouncerPairSwitchover(t *testing.T) {
	needPgBouncer(t)
	n1, n2 := startNode(t, "node1"), startNode(t, "node2")
	a1, a2 := nodeAddr(n1), nodeAddr(n2)
	log := &testutil.SyncBuffer{}
	m, err := New(t.Context(), Config{Mode: ModeProxy, Writer: a1, Readers: []string{a2}, Dir: workDir(t), PoolSize: 3, Log: log, Credentials: testCreds})
	if err != nil {
		t.Fatalf("New: %v\n%s", err, log)
	}
	t.Cleanup(func() {
		if err := m.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ctx := t.Context()
	mode := m.ExecMode()
	w, r := connect(t, m.WriterAddr(), mode), connect(t, m.ReaderAddr(), mode)
	if got := mustServerPort(t, w); got != n1.Port() {
		t.Fatalf("writer endpoint reached %d, want node1", got)
	}
	if got := mustServerPort(t, r); got != n2.Port() {
		t.Fatalf("reader endpoint reached %d, want node2", got)
	}

	// Forwarding: the same reader client is served by the writer from its next
	// transaction on.
	if err := m.SetForwarding(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := mustServerPort(t, r); got != n1.Port() {
		t.Errorf("forwarding on: reader client reached %d, want the writer node1 %d", got, n1.Port())
	}

	start := time.Now()
	if err := m.Hold(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n1.Stop(ctx, local.Fast); err != nil {
		t.Fatal(err)
	}
	if err := m.SetForwarding(ctx, false); err != nil { // the engine turns it off with the switchover
		t.Fatal(err)
	}
	if err := m.Release(ctx, a2, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("Hold → stop old writer → Release: %v", time.Since(start))
	if got := mustServerPort(t, w); got != n2.Port() {
		t.Errorf("after Release the writer client reached %d, want node2 %d", got, n2.Port())
	}
	if got := mustServerPort(t, r); got != n2.Port() {
		t.Errorf("after Release (no readers) the reader client reached %d, want the writer node2 %d", got, n2.Port())
	}
	if m.Writer() != a2 {
		t.Errorf("Writer() = %s", m.Writer())
	}
	if _, err := w.Exec(ctx, "CREATE TABLE after_switch (id int)"); err != nil {
		t.Errorf("write through the writer endpoint after Release: %v", err)
	}
}

// TestPgBouncerDiesWithItsParent starts a PgBouncer in a child test process that
// exits without stopping it, as a crashed run or a timed-out test binary would: the
// PgBouncer must not outlive it.
func TestPgBouncerDiesWithItsParent(t *testing.T) {
	if dir := os.Getenv(orphanEnv); dir != "" {
		orphanHelper(t, dir)
		return
	}
	needPgBouncer(t)
	if runtime.GOOS != "linux" {
		t.Skip("parent-death signal is Linux only")
	}
	dir := workDir(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPgBouncerDiesWithItsParent$", "-test.count=1")
	cmd.Env = append(os.Environ(), orphanEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the helper process did not exit within a minute:\n%s", out)
	}
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`ORPHAN PID (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("helper printed no pid:\n%s", out)
	}
	pid, _ := strconv.Atoi(string(m[1]))
	t.Cleanup(func() {
		if procAlive(pid) { // ours, via the helper: do not leave it behind
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	testutil.Eventually(t, 10*time.Second, "the orphaned pgbouncer to exit", func() bool { return !procAlive(pid) })
}

const orphanEnv = "REHEARSE_ENDPOINT_ORPHAN_DIR"

// orphanHelper starts a PgBouncer (no backend is needed to start one) and exits the
// process without any cleanup.
func orphanHelper(t *testing.T, dir string) {
	b, err := StartPgBouncer(t.Context(), PgBouncerConfig{Dir: dir, Name: "orphan", Backend: "127.0.0.1:1", Credentials: testCreds})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ORPHAN PID %d\n", b.PID())
	os.Exit(0)
}
