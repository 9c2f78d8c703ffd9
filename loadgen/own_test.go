//go:build linux

package loadgen

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/internal/netconn"
	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/local"
	"github.com/rehearse-dev/rehearse/workload"
)

// startServer starts a PostgreSQL server for the test and returns its DSN.
func startServer(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
	bin, err := local.FindBinaries(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	n, err := local.InitPrimary(t.Context(), local.Config{Dir: dir, Name: name, Bin: bin, MaxConnections: 30, SharedBuffers: "16MB"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n.DSN(local.Database)
}

// loopPool is a pool whose connections a loop can attach, as the engine opens
// for the closed model.
func loopPool(t *testing.T, dsn string, size int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = size
	d := &net.Dialer{}
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return netconn.Dial(ctx, d, network, addr)
	}
	p, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// boundWorkload is a ConnBound workload of one operation.
type boundWorkload struct{ opWorkload }

func (*boundWorkload) ConnBound() bool { return true }

// unwatchedCtx is what a ConnBound operation hands the driver.
func unwatchedCtx(t *testing.T, ctx context.Context) context.Context {
	if ctx.Done() != nil {
		t.Error("a ConnBound operation got a ctx that can be cancelled")
		return ctx
	}
	return context.Background()
}

// In the closed loop, a ConnBound workload's workers own their connections on
// shared threads: each keeps one backend until a timeout (its connection's
// deadline) breaks it, the timeouts are recorded as such, and the connections are
// back in the pool when the run ends.
func TestClosedLoopOnLoops(t *testing.T) {
	dsn := startServer(t, "loops")
	const workers = 6
	pool := loopPool(t, dsn, workers)
	var (
		mu       sync.Mutex
		backends = map[int64]map[uint32]bool{} // session → backend pids
		slow     = map[int64]int{}             // session → operations that timed out
		lastSlow = map[int64]bool{}            // session → its last operation timed out
		threads  = map[int64]map[int]bool{}    // session → threads its operations ran on
		calls    atomic.Int64
	)
	op := func(ctx context.Context, c *pgx.Conn, s *workload.Session, _ *rand.Rand) error {
		ctx = unwatchedCtx(t, ctx)
		mu.Lock()
		if backends[s.Customer] == nil {
			backends[s.Customer] = map[uint32]bool{}
		}
		backends[s.Customer][c.PgConn().PID()] = true
		if threads[s.Customer] == nil {
			threads[s.Customer] = map[int]bool{}
		}
		threads[s.Customer][syscall.Gettid()] = true
		mu.Unlock()
		sql := "SELECT 1"
		mu.Lock()
		lastSlow[s.Customer] = calls.Add(1)%499 == 0
		if lastSlow[s.Customer] {
			sql = "SELECT pg_sleep(2)"
			slow[s.Customer]++
		}
		mu.Unlock()
		_, err := c.PgConn().Exec(ctx, sql).ReadAll()
		return err
	}
	wl := &boundWorkload{opWorkload{op: workload.Op{Name: "stmt", Kind: workload.Write, Run: op}}}
	rec := NewRecorder(wl.Ops(), nil)
	procs := runtime.GOMAXPROCS(0)
	p := NewPgxPool(pool)
	// The operation timeout also bounds replacing a connection a timeout broke (a
	// SCRAM login), so it leaves room for a busy machine.
	st, err := Run(t.Context(), Config{Workload: wl, Writer: p, Reader: p, Workers: workers, Duration: 1500 * time.Millisecond,
		OpTimeout: 500 * time.Millisecond, Grace: 3 * time.Second, Recorder: rec}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sum := rec.Summary(st.Elapsed)
	timeouts := int64(0)
	for _, e := range sum.Errors {
		if e.Class != Timeout.String() {
			t.Errorf("errors of class %s: %d (%s)", e.Class, e.Count, e.Example)
		}
		timeouts += e.Count
	}
	nslow := 0
	for _, n := range slow {
		nslow += n
	}
	if sum.Totals.Succeeded < 100 || nslow == 0 || timeouts != int64(nslow) || sum.Totals.Failed != int64(nslow) {
		t.Errorf("totals %+v, %d timeouts; want >100 successes and %d > 0 timeouts", sum.Totals, timeouts, nslow)
	}
	for s, pids := range backends {
		// A timeout breaks the connection: the next operation runs on another.
		want := 1 + slow[s]
		if lastSlow[s] {
			want--
		}
		if len(pids) != want {
			t.Errorf("session %d ran on %d backends after %d timeouts, want %d", s, len(pids), slow[s], want)
		}
		// On a loop, a worker never leaves its loop's thread.
		if len(threads[s]) != 1 {
			t.Errorf("session %d ran on %d threads", s, len(threads[s]))
		}
	}
	// A broken connection is closed by the pool in the background.
	testutil.Eventually(t, 10*time.Second, "every connection back in the pool", func() bool { return pool.Stat().AcquiredConns() == 0 })
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Errorf("GOMAXPROCS %d after the run, was %d", got, procs)
	}
}

// What is still in flight when the grace period ends is cut off, as a cancelled
// context cuts it off.
func TestClosedLoopOnLoopsCancelsAtGraceEnd(t *testing.T) {
	dsn := startServer(t, "grace")
	pool := loopPool(t, dsn, 2)
	op := func(ctx context.Context, c *pgx.Conn, _ *workload.Session, _ *rand.Rand) error {
		_, err := c.PgConn().Exec(unwatchedCtx(t, ctx), "SELECT pg_sleep(30)").ReadAll()
		return err
	}
	wl := &boundWorkload{opWorkload{op: workload.Op{Name: "stmt", Kind: workload.Write, Run: op}}}
	rec := NewRecorder(wl.Ops(), nil)
	p := NewPgxPool(pool)
	start := time.Now()
	st, err := Run(t.Context(), Config{Workload: wl, Writer: p, Reader: p, Workers: 2, Duration: 200 * time.Millisecond,
		OpTimeout: time.Minute, Grace: 300 * time.Millisecond, Recorder: rec}, start)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the run took %v", took)
	}
	sum := rec.Summary(st.Elapsed)
	if sum.Totals.Failed != 2 || len(sum.Errors) != 1 || sum.Errors[0].Class != Other.String() {
		t.Errorf("totals %+v errors %+v; want the 2 operations in flight cut off (class other)", sum.Totals, sum.Errors)
	}
}
