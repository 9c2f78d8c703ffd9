package loadgen

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/local"
	"github.com/rehearse-dev/rehearse/workload"
)

// A session that holds its connection runs its transaction block on one connection,
// even when a statement in it is a read, and lets go of it when the block ends.
func TestHeldConnectionKeepsTheTransaction(t *testing.T) {
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
	n, err := local.InitPrimary(t.Context(), local.Config{Dir: dir, Name: "held", Bin: bin, MaxConnections: 30, SharedBuffers: "16MB"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	newPool := func() *pgxpool.Pool {
		p, err := pgxpool.New(t.Context(), n.DSN(local.Database))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	wp, rp := newPool(), newPool()
	if _, err := wp.Exec(t.Context(), "CREATE TABLE held (tx bigint, pid int)"); err != nil {
		t.Fatal(err)
	}
	// Each session runs BEGIN; INSERT; SELECT (a read); COMMIT, one statement per
	// operation.
	var mu sync.Mutex
	step := map[int64]int{}
	var pids sync.Map // session → the backend pids it ran on
	stmt := func(ctx context.Context, c *pgx.Conn, s *workload.Session, _ *rand.Rand) error {
		mu.Lock()
		i := step[s.Customer] % 4
		step[s.Customer]++
		mu.Unlock()
		var pid int
		if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			return err
		}
		v, _ := pids.LoadOrStore(s.Customer, &[]int{})
		*v.(*[]int) = append(*v.(*[]int), pid)
		switch i {
		case 0:
			s.Hold = true
			_, err := c.Exec(ctx, "BEGIN")
			return err
		case 1:
			_, err := c.Exec(ctx, "INSERT INTO held VALUES (txid_current(), pg_backend_pid())")
			return err
		case 2:
			var n int
			return c.QueryRow(ctx, "SELECT count(*) FROM held").Scan(&n)
		default:
			s.Hold = false
			_, err := c.Exec(ctx, "COMMIT")
			return err
		}
	}
	kinds := []workload.Kind{workload.Write, workload.Write, workload.Read, workload.Write}
	wl := &seqWorkload{step: &step, mu: &mu, kinds: kinds, run: stmt}
	sched := &captured{}
	for round := range 3 {
		for i := range 4 {
			for s := range 4 {
				sched.add(int32(s), time.Duration(round*400+i*50+s)*time.Millisecond)
			}
		}
	}
	rec := NewRecorder(wl.Ops(), nil)
	st, err := Run(t.Context(), Config{Workload: wl, Writer: NewPgxPool(wp), Reader: NewPgxPool(rp), Arrivals: sched,
		Sessions: 4, Workers: 4, OpTimeout: 5 * time.Second, Grace: 5 * time.Second, Recorder: rec}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if sum := rec.Summary(st.Elapsed); sum.Totals.Failed != 0 || sum.Totals.Transactions != 48 {
		t.Fatalf("totals %+v errors %+v", sum.Totals, sum.Errors)
	}
	// Every block ran on one backend: its four statements share a pid.
	pids.Range(func(k, v any) bool {
		ps := *v.(*[]int)
		for b := 0; b+3 < len(ps); b += 4 {
			if ps[b] != ps[b+1] || ps[b] != ps[b+2] || ps[b] != ps[b+3] {
				t.Errorf("session %v block %d ran on backends %v", k, b/4, ps[b:b+4])
			}
		}
		return true
	})
	var rows, txs int
	if err := wp.QueryRow(t.Context(), "SELECT count(*), count(DISTINCT tx) FROM held").Scan(&rows, &txs); err != nil || rows != 12 || txs != 12 {
		t.Errorf("held rows %d in %d transactions (%v), want 12 committed", rows, txs, err)
	}
	// Nothing is still held: the pools close without waiting.
	if wp.Stat().AcquiredConns() != 0 || rp.Stat().AcquiredConns() != 0 {
		t.Errorf("connections still acquired: writer %d reader %d", wp.Stat().AcquiredConns(), rp.Stat().AcquiredConns())
	}
}

// seqWorkload runs its sessions' statements in a fixed order of kinds.
type seqWorkload struct {
	opWorkload
	mu    *sync.Mutex
	step  *map[int64]int
	kinds []workload.Kind
	run   workload.OpFunc
}

func (w *seqWorkload) Ops() []workload.Op {
	var ops []workload.Op
	for i, k := range w.kinds {
		ops = append(ops, workload.Op{Name: []string{"begin", "insert", "select", "commit"}[i], Kind: k, Run: w.run})
	}
	return ops
}

func (w *seqWorkload) Next(s *workload.Session, _ *rand.Rand) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return (*w.step)[s.Customer] % 4
}
