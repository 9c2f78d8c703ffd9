package script

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/workload"
	"github.com/rehearse-dev/rehearse/workload/internal/pgtest"
	"github.com/rehearse-dev/rehearse/workload/tpcb"
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

func dial(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// database creates a database on srv and returns its DSN.
func database(t testing.TB, srv *pgtest.Server, admin *pgxpool.Pool, name string) string {
	t.Helper()
	if _, err := admin.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(srv.DSN, "/postgres?", "/"+name+"?", 1)
}

type testLog struct {
	t   testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) {
	l.t.Logf("%s", bytes.TrimRight(p, "\n"))
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// run drives the workload as the load generator does: sessions on their own
// connections, each drawing scripts with Next and running them, retrying
// serialization failures and deadlocks. It returns every other error.
func run(t testing.TB, w *Workload, dsn string, sessions, perSession int) []error {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := range sessions {
		wg.Go(func() {
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			defer conn.Close(ctx)
			r := rand.New(rand.NewPCG(uint64(i), 1))
			s := w.NewSession(i, r)
			for range perSession {
				op := w.Ops()[w.Next(&s, r)]
				for attempt := 0; ; attempt++ {
					err := op.Run(ctx, conn, &s, r)
					var pgErr *pgconn.PgError
					if errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001") && attempt < 20 {
						continue
					}
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
					break
				}
			}
		})
	}
	wg.Wait()
	return errs
}

func mustRun(t testing.TB, w *Workload, dsn string, sessions, perSession int) {
	t.Helper()
	for _, err := range run(t, w, dsn, sessions, perSession) {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

func queryInts(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) []int64 {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			switch x := v.(type) {
			case int64:
				out = append(out, x)
			case int32:
				out = append(out, int64(x))
			default:
				t.Fatalf("%s: value %v (%T) is not an integer", sql, v, v)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func pgbenchPath(t testing.TB) string {
	t.Helper()
	bin, err := pgtest.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	// The server's own pgbench, else any: missing, the test is skipped (fails under CI).
	p := filepath.Join(bin, "pgbench")
	if _, err := exec.LookPath(p); err != nil {
		p = testutil.RequireTool(t, "pgbench", "it comes with the PostgreSQL server, Debian package postgresql")
	}
	return p
}

// TestParityWithPgbench runs pgbench's own TPC-B-like script under `pgbench -f` and
// under this workload against two fresh copies of the same schema: the same number
// of transactions leave the same row counts, and both conserve what the script
// conserves (every transaction adds its delta to an account, a teller, a branch and
// the history).
func TestParityWithPgbench(t *testing.T) {
	srv := pgtest.Start(t)
	pgbench := pgbenchPath(t)
	admin := newPool(t, srv.DSN)
	ctx := context.Background()
	theirsDSN := database(t, srv, admin, "theirs")
	oursDSN := database(t, srv, admin, "ours")
	for _, dsn := range []string{theirsDSN, oursDSN} {
		if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", dsn).CombinedOutput(); err != nil {
			t.Fatalf("pgbench -i: %v\n%s", err, out)
		}
	}
	const clients, perClient = 4, 50
	script, err := filepath.Abs("testdata/tpcb-like.sql")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(pgbench, "-n", "-M", "prepared", "-f", script, "-c", fmt.Sprint(clients), "-t", fmt.Sprint(perClient), theirsDSN).CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench -f: %v\n%s", err, out)
	}
	t.Logf("pgbench:\n%s", out)

	w, err := New(Config{Scripts: []ScriptFile{{File: script, Weight: 1}}, Scale: 1})
	if err != nil {
		t.Fatal(err)
	}
	ours := newPool(t, oursDSN)
	if err := w.Setup(ctx, ours, &testLog{t: t}); err != nil {
		t.Fatal(err)
	}
	mustRun(t, w, oursDSN, clients, perClient)

	const counts = `SELECT (SELECT count(*) FROM pgbench_accounts), (SELECT count(*) FROM pgbench_tellers),
       (SELECT count(*) FROM pgbench_branches), (SELECT count(*) FROM pgbench_history)`
	const sums = `SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(tbalance) FROM pgbench_tellers),
       (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(delta) FROM pgbench_history)`
	const ranges = `SELECT count(*) FROM pgbench_history
 WHERE aid NOT BETWEEN 1 AND 100000 OR tid NOT BETWEEN 1 AND 10 OR bid <> 1 OR delta NOT BETWEEN -5000 AND 5000 OR mtime IS NULL`
	theirs := newPool(t, theirsDSN)
	tc, oc := queryInts(t, theirs, counts), queryInts(t, ours, counts)
	if fmt.Sprint(tc) != fmt.Sprint(oc) || tc[3] != clients*perClient {
		t.Errorf("row counts (accounts, tellers, branches, history): pgbench %v, script workload %v; want %d history rows", tc, oc, clients*perClient)
	}
	for name, pool := range map[string]*pgxpool.Pool{"pgbench": theirs, "script workload": ours} {
		s := queryInts(t, pool, sums)
		if s[0] != s[1] || s[1] != s[2] || s[2] != s[3] {
			t.Errorf("%s: sums of abalance, tbalance, bbalance and delta differ: %v", name, s)
		}
		if n := queryInts(t, pool, ranges); n[0] != 0 {
			t.Errorf("%s: %d history rows outside pgbench's ranges", name, n[0])
		}
	}
	// Each statement was prepared once per connection and reused.
	var prepared int64
	if err := ours.QueryRow(ctx, `SELECT count(*) FROM pg_stat_statements`).Scan(&prepared); err == nil {
		t.Logf("%d statements in pg_stat_statements", prepared)
	}
	res, err := w.Verify(ctx, ours)
	if err != nil || !res.Checked || !res.BalanceConserved {
		t.Fatalf("Verify = %+v, %v", res, err)
	}
}

// shop builds the shop workload of testdata/shop and sets it up on a fresh server.
func shop(t testing.TB, invariants []Invariant, log *testLog) (*Workload, *pgtest.Server, *pgxpool.Pool) {
	t.Helper()
	w, err := New(Config{
		Setup:      "testdata/shop/setup.sql",
		SetupCheck: "SELECT 1 FROM pg_tables WHERE tablename = 'orders'",
		Scripts: []ScriptFile{
			{File: "testdata/shop/order.sql", Weight: 5},
			{File: "testdata/shop/transfer.sql", Weight: 3},
			{File: "testdata/shop/balance.sql", Weight: 2, Kind: "read"},
		},
		Invariants:   invariants,
		Acknowledged: &Acknowledged{Table: "orders", Column: "txid"},
		Seed:         1,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := pgtest.Start(t)
	pool := newPool(t, srv.DSN)
	if err := w.Setup(context.Background(), pool, log); err != nil {
		t.Fatal(err)
	}
	return w, srv, pool
}

var shopInvariants = []Invariant{
	{Name: "money", SQL: "SELECT sum(balance) FROM accounts", Expect: "unchanged"},
	{Name: "no_negative_orders", SQL: "SELECT count(*) FROM orders WHERE amount < 0", Expect: "0"},
	{Name: "accounts", SQL: "SELECT count(*)::numeric(10,2) FROM accounts", Expect: "100"},
}

func TestAcknowledgedWrites(t *testing.T) {
	ctx := context.Background()
	log := &testLog{t: t}
	w, srv, pool := shop(t, shopInvariants, log)
	if !strings.Contains(log.String(), "running testdata/shop/setup.sql (4 statements)") {
		t.Errorf("setup log: %q", log.String())
	}
	if err := w.Baseline(ctx, pool); err != nil {
		t.Fatal(err)
	}
	mustRun(t, w, srv.DSN, 6, 40)
	acked := w.Acknowledged()
	if n := queryInts(t, pool, `SELECT count(*) FROM orders`)[0]; n != acked || acked < 100 {
		t.Fatalf("%d orders for %d acknowledged executions", n, acked)
	}
	res, err := w.Verify(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Checked || !res.BalanceConserved || res.AcknowledgedWrites != acked || res.LostAcknowledgedWrites != 0 ||
		res.DuplicateWrites != 0 || res.Ambiguous != 0 || len(res.Details) != 0 || len(res.Invariants) != 3 {
		t.Fatalf("Verify = %+v", res)
	}
	for _, inv := range res.Invariants {
		if !inv.Passed || inv.Before != inv.After {
			t.Errorf("invariant %+v", inv)
		}
	}
	if res.Invariants[0].Before != "100000" || res.Invariants[2].Before != "100.00" {
		t.Errorf("invariants' values: %+v", res.Invariants)
	}

	// A second Setup finds the tables: the setup check skips the file.
	if err := w.Setup(ctx, pool, log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "the setup check returned a row; skipping") {
		t.Errorf("setup log: %q", log.String())
	}

	// The connection dies while the server commits: an INSERT in its own
	// transaction, then an explicit COMMIT. Both committed locally.
	for i, op := range []workload.Op{w.Ops()[0], w.Ops()[1]} {
		s := w.NewSession(1000+i, nil)
		err := pgtest.CommitCutOff(t, pool, srv.DSN, func(ctx context.Context, conn *pgx.Conn) error {
			return op.Run(ctx, conn, &s, nil)
		})
		if !errors.Is(err, workload.ErrAmbiguous) {
			t.Fatalf("%s with its commit cut off returned %v, want ErrAmbiguous", op.Name, err)
		}
	}
	res, err = w.Verify(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ambiguous != 2 || res.AmbiguousCommitted != 2 || res.LostAcknowledgedWrites != 0 || res.DuplicateWrites != 0 || !res.BalanceConserved {
		t.Fatalf("Verify after the cut-off commits = %+v", res)
	}
	// A commit that beat the standby requirement was retried by CommitCutOff and
	// acknowledged: count them all again.
	acked = w.Acknowledged()

	// Rows changed behind the workload's back: one acknowledged order deleted, one
	// duplicated.
	if _, err := pool.Exec(ctx, `DELETE FROM orders WHERE id = (SELECT min(id) FROM orders)`); err != nil {
		t.Fatal(err)
	}
	res, err = w.Verify(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if res.LostAcknowledgedWrites != 1 || res.DuplicateWrites != 0 || len(res.Details) != 1 ||
		!strings.Contains(res.Details[0], fmt.Sprintf("1 of %d acknowledged executions are missing from orders.txid", acked)) {
		t.Fatalf("Verify after a delete = %+v", res)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO orders (txid, customer, amount) SELECT txid, customer, amount FROM orders WHERE id = (SELECT max(id) FROM orders)`); err != nil {
		t.Fatal(err)
	}
	res, err = w.Verify(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if res.LostAcknowledgedWrites != 1 || res.DuplicateWrites != 1 || len(res.Details) != 2 ||
		!strings.Contains(res.Details[1], "1 extra rows in orders.txid repeat the :txid") {
		t.Fatalf("Verify after a duplicate = %+v", res)
	}

	// Invariants broken behind its back: both values are reported.
	if _, err := pool.Exec(ctx, `UPDATE accounts SET balance = balance + 5 WHERE id = 1; INSERT INTO orders (txid, customer, amount) VALUES (gen_random_uuid(), 1, -3)`); err != nil {
		t.Fatal(err)
	}
	res, err = w.Verify(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	money, negative := res.Invariants[0], res.Invariants[1]
	if res.BalanceConserved || money.Passed || money.Before != "100000" || money.After != "100005" ||
		negative.Passed || negative.Before != "0" || negative.After != "1" || !res.Invariants[2].Passed {
		t.Fatalf("invariants after changes behind the workload's back: %+v", res.Invariants)
	}
	details := strings.Join(res.Details, "\n")
	for _, want := range []string{
		`Invariant "money" (expect unchanged) failed: before 100000, after 100005: the value changed from 100000 to 100005.`,
		`Invariant "no_negative_orders" (expect 0) failed: before 0, after 1: expected 0, but it is 1 after the load (it was 0 before).`,
	} {
		if !strings.Contains(details, want) {
			t.Errorf("details lack %q:\n%s", want, details)
		}
	}
}

func TestBaselineRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		script     string // default: testdata/shop/order.sql
		invariants []Invariant
		ack        Acknowledged
		want       []string
	}{
		{
			name:   "statements",
			script: "\\set x 1\nSELEC 1;\nSELECT nope FROM orders;\nSELECT :x;\nSELECT :x::int, 'ok' \\; SELEC 2;\nINSERT INTO orders (txid, customer, amount) VALUES (:txid, 1, :x);\n",
			ack:    Acknowledged{Table: "orders", Column: "txid"},
			want: []string{
				`s.sql:2: SELEC 1: ERROR: syntax error at or near "SELEC" (SQLSTATE 42601): fix the statement (it was prepared against the database after setup, not run)`,
				`s.sql:3: SELECT nope FROM orders: ERROR: column "nope" does not exist (SQLSTATE 42703; hint: Perhaps you meant to reference the column "orders.note")`,
			},
		},
		{
			name:   "statements after a statement that changes the schema",
			script: "CREATE TEMP TABLE IF NOT EXISTS scratch (a int);\nINSERT INTO scratch VALUES (1);\nSELEC 1;\nINSERT INTO orders (txid, customer, amount) VALUES (:txid, 1, 1);\n",
			ack:    Acknowledged{Table: "orders", Column: "txid"},
			want:   []string{`s.sql:3: SELEC 1: ERROR: syntax error at or near "SELEC"`},
		},
		{
			name: "invariants",
			invariants: []Invariant{
				{Name: "fails", SQL: "SELECT sum(nope) FROM accounts", Expect: "unchanged"},
				{Name: "rows", SQL: "SELECT balance FROM accounts", Expect: "unchanged"},
				{Name: "columns", SQL: "SELECT 1, 2", Expect: "unchanged"},
				{Name: "no rows", SQL: "SELECT 1 WHERE false", Expect: "0"},
				{Name: "statement", SQL: "SET work_mem = '64MB'", Expect: "0"},
				{Name: "two commands", SQL: "SELECT 1; SELECT 2", Expect: "unchanged"},
				{Name: "writes", SQL: "DELETE FROM orders RETURNING 1", Expect: "0"},
				{Name: "good", SQL: "SELECT 1", Expect: "1"},
			},
			ack: Acknowledged{Table: "orders", Column: "txid"},
			want: []string{
				`invariant "fails": its SQL fails: ERROR: column "nope" does not exist (SQLSTATE 42703): fix the query`,
				`invariant "rows": its SQL returns 100 rows; it must return exactly one row with one column`,
				`invariant "columns": its SQL returns 2 columns; it must return exactly one row with one column`,
				`invariant "no rows": its SQL returns 0 rows`,
				`invariant "statement": its SQL returns 0 columns`,
				`invariant "two commands": its SQL fails: ERROR: cannot insert multiple commands into a prepared statement`,
				`invariant "writes": its SQL fails: ERROR: cannot execute DELETE in a read-only transaction`,
			},
		},
		{name: "no table", ack: Acknowledged{Table: "purchases", Column: "txid"},
			want: []string{"acknowledged: table purchases does not exist (after setup): create it in the setup file, or fix the name"}},
		{name: "no column", ack: Acknowledged{Table: "public.orders", Column: "tx"},
			want: []string{"acknowledged: table public.orders has no column tx (its columns: id, txid, customer, amount, note): add it, or fix the name"}},
		{name: "wrong type", ack: Acknowledged{Table: "orders", Column: "amount"},
			want: []string{"acknowledged: column orders.amount is integer; it must be uuid or text to hold :txid"}},
		{name: "bad name", ack: Acknowledged{Table: "a.b.c.d", Column: "x"},
			want: []string{`acknowledged: table "a.b.c.d": ERROR: improper relation name (too many dotted names): a.b.c.d (SQLSTATE 42601)`}},
	}
	w0, _, pool := shop(t, nil, &testLog{t: t})
	_ = w0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := "testdata/shop/order.sql"
			if tt.script != "" {
				file = writeFile(t, t.TempDir(), "s.sql", tt.script)
			}
			w, err := New(Config{
				Scripts:      []ScriptFile{{File: file, Weight: 1}},
				Invariants:   tt.invariants,
				Acknowledged: &tt.ack,
			})
			if err != nil {
				t.Fatal(err)
			}
			err = w.Baseline(ctx, pool)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Baseline = %v, want ErrInvalid", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("%d problems, want %d:\n%s", len(lines), len(tt.want), err)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("missing %q in:\n%s", want, err)
				}
			}
		})
	}
	if n := queryInts(t, pool, `SELECT count(*) FROM orders`)[0]; n != 0 {
		t.Errorf("an invariant wrote: %d orders", n)
	}
}

func TestSetupFailures(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Start(t)
	pool := newPool(t, srv.DSN)
	dir := t.TempDir()
	script := writeFile(t, dir, "s.sql", "SELECT 1;")
	setup := writeFile(t, dir, "setup.sql", "CREATE TABLE a (x int);\n\nINSERT INTO a\n  VALUES ('not a number');\nCREATE TABLE b (x int);\n")
	w, err := New(Config{Scripts: []ScriptFile{{File: script, Weight: 1}}, Setup: setup})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Setup(ctx, pool, nil)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), setup+`:3: INSERT INTO a …: ERROR: invalid input syntax for type integer: "not a number" (SQLSTATE 22P02)`) {
		t.Fatalf("Setup = %v", err)
	}
	w, err = New(Config{Scripts: []ScriptFile{{File: script, Weight: 1}}, Setup: setup, SetupCheck: "SELECT FROM nowhere"})
	if err != nil {
		t.Fatal(err)
	}
	err = w.Setup(ctx, pool, nil)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `setup check SELECT FROM nowhere: ERROR: relation "nowhere" does not exist`) {
		t.Fatalf("Setup with a failing check = %v", err)
	}
}

// TestRuntimeErrors runs scripts that fail as they run: the execution fails with
// a clear error and leaves the connection outside any transaction.
func TestRuntimeErrors(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Start(t)
	pool := newPool(t, srv.DSN)
	if _, err := pool.Exec(ctx, `CREATE TABLE t (id int PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	conn := dial(t, srv.DSN)
	tests := []struct{ name, script, want string }{
		{"division by zero", "\\set zero 0\n\\set x 1 / :zero\nSELECT :x;", `s.sql:2: \set x: division by zero`},
		{"gset without a row", "BEGIN;\nSELECT 1 AS a WHERE false \\gset\nCOMMIT;", `s.sql:2: SELECT 1 AS a WHERE false: \gset expected one row, got 0`},
		{"gset with two rows", "SELECT 1 AS a UNION SELECT 2 \\gset", `\gset expected one row, got 2`},
		{"gset on a command", "BEGIN;\nINSERT INTO t VALUES (1, 'a') \\gset\nCOMMIT;", `\gset expected one row, got 0`},
		{"server error in a transaction", "BEGIN;\nINSERT INTO t VALUES (1, 'x');\nINSERT INTO t VALUES (1, 'x');\nCOMMIT;",
			`s.sql:3: INSERT INTO t VALUES (1, 'x'): ERROR: duplicate key value violates unique constraint "t_pkey" (SQLSTATE 23505)`},
		{"open transaction at the end", "BEGIN;\nSELECT 1;", "the script ended inside a transaction block: end it with COMMIT or END"},
		{"condition", "\\if 1 / 0 = 1\n\\endif\nSELECT 1;", `s.sql:1: condition: division by zero`},
		{"sleep variable", "SELECT 'soon' AS d \\gset\n\\sleep :d ms", `s.sql:2: \sleep: invalid sleep time "soon" for variable "d"`},
		{"text in arithmetic", "SELECT 'abc' AS v \\gset\n\\set w :v + 1\nSELECT :w;", `s.sql:2: \set w: malformed variable "v" value: "abc"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := newScript(t, tt.script)
			if err != nil {
				t.Fatal(err)
			}
			s := w.NewSession(0, nil)
			err = w.Ops()[0].Run(ctx, conn, &s, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want an error containing %q", err, tt.want)
			}
			if errors.Is(err, workload.ErrAmbiguous) {
				t.Errorf("Run = %v: not ambiguous", err)
			}
			if st := conn.PgConn().TxStatus(); st != 'I' {
				t.Errorf("transaction status after the failure = %c, want I", st)
			}
		})
	}
	if n := queryInts(t, pool, `SELECT count(*) FROM t`)[0]; n != 0 {
		t.Errorf("%d rows committed by failed executions", n)
	}
	// \sleep returns when its context ends.
	w, err := newScript(t, "\\sleep 1000 s\nSELECT 1;")
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	s := w.NewSession(0, nil)
	if err := w.Ops()[0].Run(cctx, conn, &s, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestVariables runs scripts that use variables across commands and executions,
// compound commands, \aset, NULLs and debug().
func TestVariables(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Start(t)
	pool := newPool(t, srv.DSN)
	if _, err := pool.Exec(ctx, `CREATE TABLE seen (s int PRIMARY KEY); CREATE TABLE log (s int, v bigint, n int, x text, y int, t text)`); err != nil {
		t.Fatal(err)
	}
	// v is set by \aset only on a session's first execution: later executions read
	// the value the session kept, as pgbench's per-client variables do.
	script := `SELECT :client_id * 10 AS v WHERE NOT EXISTS (SELECT 1 FROM seen WHERE s = :client_id) \aset
INSERT INTO seen SELECT :client_id WHERE NOT EXISTS (SELECT 1 FROM seen WHERE s = :client_id);
SELECT NULL::int AS n, 'it''s' AS x \gset
\set one debug(1)
SELECT :one + 1 AS a \; SELECT :x || ' \ ' AS x, 2 AS y \gset
\; SELECT 6 AS i6 \; SELECT :x AS x WHERE false \; SELECT :x AS x2 \; \aset
INSERT INTO log VALUES (:client_id, :v, :n, :x2, :y::int + :i6, :txid);
`
	w, err := newScript(t, script)
	if err != nil {
		t.Fatal(err)
	}
	log := &testLog{t: t}
	if err := w.Setup(ctx, pool, log); err != nil {
		t.Fatal(err)
	}
	// Variables set by \aset may be unset after it, so they persist too.
	var persistent []string
	for _, slot := range w.persistent {
		persistent = append(persistent, w.sym.names[slot])
	}
	if strings.Join(persistent, " ") != "v x2 i6" {
		t.Errorf("persistent variables: %v", persistent)
	}
	mustRun(t, w, srv.DSN, 3, 4)
	bad := queryInts(t, pool, `SELECT count(*) FILTER (WHERE v IS DISTINCT FROM s * 10),
       count(*) FILTER (WHERE n IS NOT NULL), count(*) FILTER (WHERE x <> 'it''s \ '),
       count(*) FILTER (WHERE y <> 8), count(DISTINCT t), count(*) FROM log`)
	if fmt.Sprint(bad) != "[0 0 0 0 12 12]" {
		t.Errorf("log rows (bad v, bad n, bad x, bad y, distinct txids, rows) = %v", bad)
	}
	if got := strings.Count(log.String(), ":4): int 1"); got != 12 {
		t.Errorf("debug output: %d lines, want 12:\n%s", got, log.String())
	}
}

// TestExecModes runs pgbench's script on a connection that keeps prepared
// statements (pgx's default) and on one that must not (as through PgBouncer in
// transaction pooling): the first prepares each statement once, the second none.
func TestExecModes(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Start(t)
	pool := newPool(t, srv.DSN)
	builtin, err := tpcb.New(tpcb.Config{Scale: 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := builtin.Setup(ctx, pool, io.Discard); err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{Scripts: []ScriptFile{{File: "testdata/tpcb-like.sql", Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mode     pgx.QueryExecMode
		prepared int64
	}{{pgx.QueryExecModeCacheStatement, 7}, {pgx.QueryExecModeExec, 0}} {
		cfg, err := pgx.ParseConfig(srv.DSN)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DefaultQueryExecMode = tt.mode
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		s := w.NewSession(0, nil)
		for range 20 {
			if err := w.Ops()[0].Run(ctx, conn, &s, nil); err != nil {
				t.Fatalf("%v: %v", tt.mode, err)
			}
		}
		var n int64
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_prepared_statements WHERE statement NOT LIKE '%pg_prepared_statements%'`, pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != tt.prepared {
			t.Errorf("%v: %d prepared statements, want %d", tt.mode, n, tt.prepared)
		}
		conn.Close(ctx)
	}
	if n := queryInts(t, pool, `SELECT count(*) FROM pgbench_history`)[0]; n != 40 {
		t.Errorf("%d history rows, want 40", n)
	}
}
