package tpcb

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/workload"
	"github.com/rehearse-dev/rehearse/workload/internal/pgtest"
)

func newPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// setUp starts a server for w and runs w's Setup on it.
func setUp(t testing.TB, w *Workload) (*pgtest.Server, *pgxpool.Pool) {
	t.Helper()
	srv := pgtest.Start(t)
	pool := newPool(t, srv.DSN)
	if err := w.Setup(context.Background(), pool, &testLog{t: t}); err != nil {
		t.Fatal(err)
	}
	return srv, pool
}

// dial opens a connection of its own, closed when the test ends.
func dial(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func newWorkload(t testing.TB, scale int, selectOnly bool, opts ...Option) *Workload {
	t.Helper()
	w, err := New(Config{Scale: scale}, selectOnly, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

type testLog struct {
	t   testing.TB
	buf bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) {
	l.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return l.buf.Write(p)
}

func TestSetupInitialisesThenReuses(t *testing.T) {
	srv := pgtest.Start(t)
	pool := newPool(t, srv.DSN)
	ctx := context.Background()

	log1 := &testLog{t: t}
	if err := newWorkload(t, 1, false).Setup(ctx, pool, log1); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log1.buf.String(), "initialising") {
		t.Fatalf("first setup did not initialise: %q", log1.buf.String())
	}
	var accounts, tellers, branches int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pgbench_accounts), (SELECT count(*) FROM pgbench_tellers), (SELECT count(*) FROM pgbench_branches)`).Scan(&accounts, &tellers, &branches); err != nil {
		t.Fatal(err)
	}
	if accounts != 100000 || tellers != 10 || branches != 1 {
		t.Fatalf("rows: %d accounts, %d tellers, %d branches", accounts, tellers, branches)
	}

	log2 := &testLog{t: t}
	if err := newWorkload(t, 1, true).Setup(ctx, pool, log2); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log2.buf.String(), "reusing pgbench tables at scale 1") {
		t.Fatalf("second setup did not reuse: %q", log2.buf.String())
	}

	err := newWorkload(t, 2, false).Setup(ctx, pool, &testLog{t: t})
	if !errors.Is(err, ErrScaleMismatch) || !strings.Contains(err.Error(), "scale 1") {
		t.Fatalf("setup at another scale: %v, want ErrScaleMismatch", err)
	}
	if n := count(t, pool, `SELECT count(*) FROM pgbench_accounts`); n != 100000 {
		t.Fatalf("scale mismatch touched the data: %d accounts", n)
	}
}

func count(t testing.TB, pool *pgxpool.Pool, sql string) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// describe renders the pgbench tables' definitions: columns, storage options,
// constraints and indexes.
func describe(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
SELECT c.relname || ' ' || coalesce(array_to_string(c.reloptions, ','), '') || ': ' ||
       (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY a.attnum)
          FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) || ' | ' ||
       coalesce((SELECT string_agg(pg_get_indexdef(i.indexrelid), '; ') FROM pg_index i WHERE i.indrelid = c.oid), '') || ' | ' ||
       coalesce((SELECT string_agg(pg_get_constraintdef(k.oid), '; ') FROM pg_constraint k WHERE k.conrelid = c.oid), '')
  FROM pg_class c WHERE c.relname LIKE 'pgbench\_%' AND c.relkind = 'r' ORDER BY c.relname`)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}

func TestSchemaMatchesPgbench(t *testing.T) {
	srv := pgtest.Start(t)
	bin, err := pgtest.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	// The server's own pgbench, else any: missing, the test is skipped (fails under CI).
	pgbench := filepath.Join(bin, "pgbench")
	if _, err := exec.LookPath(pgbench); err != nil {
		pgbench = testutil.RequireTool(t, "pgbench", "it comes with the PostgreSQL server, Debian package postgresql")
	}
	ctx := context.Background()
	admin := newPool(t, srv.DSN)
	for _, db := range []string{"ours", "theirs"} {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
			t.Fatal(err)
		}
	}
	ours := newPool(t, strings.Replace(srv.DSN, "/postgres?", "/ours?", 1))
	theirs := newPool(t, strings.Replace(srv.DSN, "/postgres?", "/theirs?", 1))
	if err := newWorkload(t, 1, false).Setup(ctx, ours, &testLog{t: t}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", strings.Replace(srv.DSN, "/postgres?", "/theirs?", 1)).CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	if a, b := describe(t, ours), describe(t, theirs); a != b {
		t.Fatalf("schema differs from pgbench -i:\nours:\n%s\npgbench:\n%s", a, b)
	}
	var diff int64
	if err := ours.QueryRow(ctx, `SELECT count(*) FROM pgbench_accounts WHERE bid <> (aid - 1) / 100000 + 1 OR abalance <> 0 OR filler <> ''`).Scan(&diff); err != nil || diff != 0 {
		t.Fatalf("account rows differ from pgbench's: %d (%v)", diff, err)
	}
	// A database initialised by pgbench itself is reused.
	log := &testLog{t: t}
	if err := newWorkload(t, 1, false).Setup(ctx, theirs, log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.buf.String(), "reusing") {
		t.Fatalf("pgbench's tables were not reused: %q", log.buf.String())
	}
}

func run(t *testing.T, w *Workload, dsn string, goroutines, perG int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(ctx)
			r := rand.New(rand.NewPCG(uint64(g), 1))
			s := w.NewSession(g, r)
			for range perG {
				if err := w.Ops()[w.Next(&s, r)].Run(ctx, conn, &s, r); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestTPCBTransactionsVerify(t *testing.T) {
	ctx := context.Background()
	w := newWorkload(t, 1, false)
	srv, pool := setUp(t, w)
	if op := w.Ops()[w.Next(nil, nil)]; op.Name != OpTPCB || op.Kind != workload.Write {
		t.Fatalf("op = %+v", op)
	}
	run(t, w, srv.DSN, 8, 100)
	if n := count(t, pool, `SELECT count(*) FROM pgbench_history`); n != 800 {
		t.Fatalf("history rows = %d, want 800", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM pgbench_history WHERE delta NOT BETWEEN -5000 AND 5000 OR aid NOT BETWEEN 1 AND 100000 OR tid NOT BETWEEN 1 AND 10 OR bid <> 1 OR mtime IS NULL`); n != 0 {
		t.Fatalf("%d history rows out of pgbench's ranges", n)
	}
	res, err := w.Verify(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if !res.BalanceConserved || res.AcknowledgedWrites != 800 || res.LostAcknowledgedWrites != 0 || res.DuplicateWrites != 0 {
		t.Fatalf("Verify = %+v", res)
	}

	// A second run on the reused tables counts only its own history rows.
	w2 := newWorkload(t, 1, false)
	if err := w2.Setup(ctx, pool, &testLog{t: t}); err != nil {
		t.Fatal(err)
	}
	run(t, w2, srv.DSN, 2, 50)
	if _, err := pool.Exec(ctx, `DELETE FROM pgbench_history WHERE ctid = (SELECT max(ctid) FROM pgbench_history)`); err != nil {
		t.Fatal(err)
	}
	res, err = w2.Verify(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if res.AcknowledgedWrites != 100 || res.LostAcknowledgedWrites != 1 || len(res.Details) != 1 {
		t.Fatalf("Verify after deleting a history row = %+v", res)
	}
	if _, err := pool.Exec(ctx, `UPDATE pgbench_tellers SET tbalance = tbalance + 1 WHERE tid = 1`); err != nil {
		t.Fatal(err)
	}
	if res, err = w2.Verify(ctx, pool); err != nil || res.BalanceConserved {
		t.Fatalf("Verify after skewing a teller = %+v, %v", res, err)
	}
}

func TestSelectOnly(t *testing.T) {
	srv := pgtest.Start(t)
	pool := newPool(t, srv.DSN)
	ctx := context.Background()
	w := newWorkload(t, 1, true)
	if w.Name() != "tpcb-select" {
		t.Fatalf("Name = %q", w.Name())
	}
	if err := w.Setup(ctx, pool, &testLog{t: t}); err != nil {
		t.Fatal(err)
	}
	if op := w.Ops()[0]; op.Name != OpSelect || op.Kind != workload.Read {
		t.Fatalf("op = %+v", op)
	}
	run(t, w, srv.DSN, 4, 100)
	res, err := w.Verify(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Checked || !res.BalanceConserved || res.AcknowledgedWrites != 0 {
		t.Fatalf("Verify = %+v", res)
	}
}

func TestNewRejectsNegativeScale(t *testing.T) {
	if _, err := New(Config{Scale: -1}, false); !errors.Is(err, ErrConfig) {
		t.Fatalf("New(scale -1) = %v, want ErrConfig", err)
	}
	w, err := New(Config{}, false)
	if err != nil || w.scale != DefaultScale || w.Name() != "tpcb" {
		t.Fatalf("New(defaults) = %+v, %v", w, err)
	}
}

func benchmarkOp(b *testing.B, selectOnly bool, opts ...Option) {
	ctx := context.Background()
	w := newWorkload(b, 1, selectOnly, opts...)
	srv, _ := setUp(b, w)
	conn := dial(b, srv.DSN)
	r := rand.New(rand.NewPCG(1, 1))
	var s workload.Session
	op := w.Ops()[0].Run
	b.ReportAllocs()
	for b.Loop() {
		if err := op(ctx, conn, &s, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTPCB(b *testing.B)   { benchmarkOp(b, false) }
func BenchmarkSelect(b *testing.B) { benchmarkOp(b, true) }

// TestCommitInterruptedAfterLocalCommitIsAmbiguous makes END wait for a synchronous
// standby that does not exist, then terminates the backend: committed locally, but
// the client sees only the connection close.
func TestCommitInterruptedAfterLocalCommitIsAmbiguous(t *testing.T) {
	ctx := context.Background()
	w := newWorkload(t, 1, false)
	srv, pool := setUp(t, w)
	err := pgtest.CommitCutOff(t, pool, srv.DSN, func(ctx context.Context, conn *pgx.Conn) error {
		return w.Ops()[0].Run(ctx, conn, &workload.Session{}, rand.New(rand.NewPCG(1, 1)))
	})
	if !errors.Is(err, workload.ErrAmbiguous) {
		t.Fatalf("tpcb returned %v, want ErrAmbiguous", err)
	}
	res, err := w.Verify(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ambiguous != 1 || res.AmbiguousCommitted != 1 || res.LostAcknowledgedWrites != 0 || !res.BalanceConserved {
		t.Fatalf("Verify = %+v", res)
	}
}

// TestPipelinedVariant runs the two-round-trip variant: the same transaction, the
// same integrity.
func TestPipelinedVariant(t *testing.T) {
	ctx := context.Background()
	w := newWorkload(t, 1, false, Pipelined())
	srv, pool := setUp(t, w)
	run(t, w, srv.DSN, 4, 50)
	res, err := w.Verify(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if !res.BalanceConserved || res.AcknowledgedWrites != 200 || res.LostAcknowledgedWrites != 0 || res.DuplicateWrites != 0 {
		t.Fatalf("Verify = %+v", res)
	}
}

// TestFailedStatementRollsBack makes a statement of the faithful transaction fail
// and checks that the connection is left outside any transaction, with nothing
// acknowledged.
func TestFailedStatementRollsBack(t *testing.T) {
	ctx := context.Background()
	w := newWorkload(t, 1, false)
	srv, pool := setUp(t, w)
	conn := dial(t, srv.DSN)
	r := rand.New(rand.NewPCG(1, 1))
	if err := w.Ops()[0].Run(ctx, conn, &workload.Session{}, r); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE pgbench_history ADD CONSTRAINT no_rows CHECK (false) NOT VALID`); err != nil {
		t.Fatal(err)
	}
	if err := w.Ops()[0].Run(ctx, conn, &workload.Session{}, r); err == nil {
		t.Fatal("the transaction succeeded despite the failing insert")
	}
	if st := conn.PgConn().TxStatus(); st != 'I' {
		t.Fatalf("transaction status after the failure = %c, want I", st)
	}
	if w.Acknowledged() != 1 {
		t.Fatalf("acknowledged = %d, want 1", w.Acknowledged())
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE pgbench_history DROP CONSTRAINT no_rows`); err != nil {
		t.Fatal(err)
	}
	// The prepared statements survive the failure: the next transaction succeeds.
	if err := w.Ops()[0].Run(ctx, conn, &workload.Session{}, r); err != nil {
		t.Fatal(err)
	}
	res, err := w.Verify(ctx, pool)
	if err != nil || !res.BalanceConserved || res.LostAcknowledgedWrites != 0 {
		t.Fatalf("Verify = %+v, %v", res, err)
	}
}

func BenchmarkTPCBPipelined(b *testing.B) { benchmarkOp(b, false, Pipelined()) }
