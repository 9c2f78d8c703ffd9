package replay

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/workload/internal/pgtest"
)

// The schedule is what the load generator replays, without this package
// importing it.
var _ loadgen.Arrivals = Arrivals(nil)

var recapture = flag.Bool("recapture", false,
	"capture testdata/capture.csv again from a real PostgreSQL session mix, with testdata/capture.json")

// The capture test's files: the csvlog, what the session mix did (its statement
// count and the tables it left), and the schema it ran against.
const (
	captureFile  = "testdata/capture.csv"
	expectedFile = "testdata/capture.json"
	schemaFile   = "testdata/schema.sql"
)

// captureFilter selects the session mix: the capture also holds the statements
// that created its database and schema.
var captureFilter = Filter{Database: "shop", Application: "shopapp"}

// expected is what the session mix did, recorded when it was captured.
type expected struct {
	// Statements is how many statements the sessions sent, Sessions how many
	// sessions sent them.
	Statements int64 `json:"statements"`
	Sessions   int   `json:"sessions"`
	// Tables holds each table's rows, as text, in key order, after the mix.
	Tables map[string][]string `json:"tables"`
}

// The capture, replayed through the load generator against a fresh copy of its
// schema, leaves the tables as the captured sessions left them, with the errors
// the capture had. Run with -recapture to take the capture again.
func TestCaptureReplay(t *testing.T) {
	if *recapture {
		recaptureMix(t)
	}
	raw, err := os.ReadFile(expectedFile)
	if err != nil {
		t.Fatal(err)
	}
	var exp expected
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	w, err := Open(ctx, Config{Capture: captureFile, Filter: captureFilter, Speed: 2})
	if err != nil {
		t.Fatal(err)
	}
	if w.Statements() != exp.Statements || w.Sessions() != exp.Sessions {
		t.Fatalf("the replay holds %d statements from %d sessions; the capture %d from %d",
			w.Statements(), w.Sessions(), exp.Statements, exp.Sessions)
	}

	srv := pgtest.Start(t)
	pool := freshShop(t, srv.DSN)
	arrivals, err := w.Arrivals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer arrivals.Close()
	rec := loadgen.NewRecorder(w.Ops(), nil)
	p := loadgen.NewPgxPool(pool)
	st, err := loadgen.Run(ctx, loadgen.Config{
		Workload: w, Writer: p, Reader: p, Arrivals: arrivals, Sessions: w.Sessions(),
		Workers: 8, OpTimeout: 30 * time.Second, Grace: 30 * time.Second, Recorder: rec,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := arrivals.Err(); err != nil {
		t.Fatal(err)
	}
	arrivalsWant := w.Statements() + w.Summary().SessionEnds
	if st.Arrivals != arrivalsWant || st.Interrupted {
		t.Fatalf("%d arrivals (interrupted %v), want %d", st.Arrivals, st.Interrupted, arrivalsWant)
	}
	sum := rec.Summary(st.Elapsed)
	var ran int64
	errs := map[string]int64{}
	for _, op := range sum.Operations {
		ran += op.Count
		if op.Errors > 0 {
			errs[op.Name] = op.Errors
		}
	}
	if ran != arrivalsWant {
		t.Errorf("the recorder counted %d operations, want %d", ran, arrivalsWant)
	}
	if captured := w.CapturedErrors(); !reflect.DeepEqual(errs, captured) {
		t.Errorf("errors per operation %v, the capture had %v (%+v)", errs, captured, sum.Errors)
	}
	if got := dumpTables(t, pool); !reflect.DeepEqual(got, exp.Tables) {
		t.Errorf("after the replay the tables hold\n%v\nafter the captured sessions\n%v", got, exp.Tables)
	}
}

// freshShop creates the shop database and its schema on a server and returns a
// pool to it.
func freshShop(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	ctx := t.Context()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE shop"); err != nil {
		t.Fatal(err)
	}
	schema, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Database = "shop"
	cfg.ConnConfig.RuntimeParams["application_name"] = "setup"
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, string(schema), pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	return pool
}

// dumpTables returns every table's rows as text, in key order.
func dumpTables(t *testing.T, pool *pgxpool.Pool) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, q := range []struct{ table, key string }{{"accounts", "id"}, {"orders", "id"}, {"audit", "id"}, {"totals", "name"}} {
		rows, err := pool.Query(t.Context(), "SELECT t::text FROM "+q.table+" t ORDER BY "+q.key)
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		out[q.table] = texts
	}
	return out
}

// recaptureMix runs the session mix against a capturing server and writes the
// capture and what the mix did to testdata.
func recaptureMix(t *testing.T) {
	srv := startCapturing(t)
	pool := freshShop(t, srv.DSN)
	ctx := t.Context()
	cfg, err := pgx.ParseConfig(srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = "shop"
	cfg.RuntimeParams["application_name"] = "shopapp"
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		statements int64
	)
	for _, mix := range sessionMix {
		wg.Go(func() {
			c, err := pgx.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close(ctx)
			sent := &sender{t: t, c: c}
			mix(ctx, sent)
			mu.Lock()
			statements += sent.n
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	exp := expected{Statements: statements, Sessions: len(sessionMix), Tables: dumpTables(t, pool)}
	pool.Close()
	srv.stop(t)
	capture, err := os.ReadFile(srv.CSVLog)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(captureFile, capture, 0o644); err != nil {
		t.Fatal(err)
	}
	raw, err := json.MarshalIndent(exp, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(expectedFile, append(raw, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("captured %d statements from %d sessions into %s", exp.Statements, exp.Sessions, captureFile)
}

// sender sends a session's statements and counts them; wantErr is the SQLSTATE a
// statement is meant to fail with ("" for none).
type sender struct {
	t *testing.T
	c *pgx.Conn
	n int64
}

// exec runs sql with args in the given exec mode.
func (s *sender) exec(ctx context.Context, wantErr, sql string, args ...any) {
	s.n++
	_, err := s.c.Exec(ctx, sql, args...)
	s.check(err, wantErr, sql)
}

// simple runs sql as one simple query (several statements in one round trip).
func (s *sender) simple(ctx context.Context, wantErr, sql string) {
	s.n++
	_, err := s.c.PgConn().Exec(ctx, sql).ReadAll()
	s.check(err, wantErr, sql)
}

func (s *sender) check(err error, wantErr, sql string) {
	var pgErr *pgconn.PgError
	switch {
	case wantErr == "" && err != nil:
		s.t.Errorf("%s: %v", sql, err)
	case wantErr != "" && (!errors.As(err, &pgErr) || pgErr.Code != wantErr):
		s.t.Errorf("%s: error %v, want SQLSTATE %s", sql, err, wantErr)
	}
}

// sessionMix is the captured application's sessions. Each writes only its own
// rows, or adds to the totals, so the tables end the same whatever order the
// sessions' statements interleave in, in the capture and in the replay.
var sessionMix = []func(ctx context.Context, s *sender){
	// Accounts, through statements pgx prepares under a name once per connection,
	// with parameters holding quotes, NULL, empty strings and newlines; a
	// transaction block calling nextval.
	func(ctx context.Context, s *sender) {
		owners := []string{"Ann", "O'Brien", `Zoë "Z" Ørsted`, "Bob, Jr.", "Eve"}
		notes := []any{nil, "two\nlines", "", `it's, "quoted"`, "$1 = 'not a parameter'"}
		for i := range 10 {
			s.exec(ctx, "", "INSERT INTO accounts (id, owner, balance, note) VALUES ($1, $2, $3, $4)",
				i+1, owners[i%len(owners)], 100*(i+1), notes[i%len(notes)])
		}
		for i := range 10 {
			s.exec(ctx, "", "UPDATE accounts SET balance = balance + $1 WHERE id = $2", 7, i+1)
		}
		var balance int64
		s.n++
		if err := s.c.QueryRow(ctx, "SELECT balance FROM accounts WHERE id = $1", 3).Scan(&balance); err != nil {
			s.t.Error(err)
		}
		s.exec(ctx, "", "BEGIN")
		s.exec(ctx, "", "UPDATE totals SET n = n + $1 WHERE name = 'deposits'", 70)
		s.exec(ctx, "", "INSERT INTO audit VALUES (nextval('audit_ids'), $1)", "deposits")
		s.exec(ctx, "", "COMMIT")
	},
	// Orders, through simple queries: a multi-row insert, two statements in one
	// query, a transaction block that fails and is rolled back, a division by
	// zero.
	func(ctx context.Context, s *sender) {
		s.simple(ctx, "", "INSERT INTO orders VALUES (101, 1, 'widget', 2, NULL), (102, 2, 'gadget', 1, 'gift; wrap it'), (103, 3, 'it''s', 3, E'two\\nlines')")
		s.simple(ctx, "", "INSERT INTO orders VALUES (104, 4, 'bolt', 9, NULL); UPDATE totals SET n = n + 4 WHERE name = 'orders'")
		s.simple(ctx, "", "BEGIN")
		s.simple(ctx, "", "INSERT INTO orders VALUES (200, 1, 'kept?', 1, NULL)")
		s.simple(ctx, "23505", "INSERT INTO orders VALUES (200, 1, 'duplicate', 1, NULL)")
		s.simple(ctx, "25P02", "UPDATE totals SET n = n + 1000 WHERE name = 'orders'")
		s.simple(ctx, "", "ROLLBACK")
		s.simple(ctx, "22012", "SELECT 1/0")
		s.simple(ctx, "", "UPDATE totals SET n = n + 3 WHERE name = 'orders'")
	},
	// More orders through the unnamed statement, one failing with a duplicate
	// key (its parameters are logged with its bind), a division failing before
	// its parameter is logged: the replay fails it as it failed, without sending
	// it.
	func(ctx context.Context, s *sender) {
		for i := range 5 {
			var comment any
			if i%2 == 0 {
				comment = "note " + strings.Repeat("x", i)
			}
			s.exec(ctx, "", "INSERT INTO orders (id, account, item, qty, comment) VALUES ($1, $2, $3, $4, $5)",
				pgx.QueryExecModeExec, 300+i, i+1, "nut", i+1, comment)
		}
		s.exec(ctx, "23505", "INSERT INTO orders (id, account, item, qty, comment) VALUES ($1, $2, $3, $4, $5)",
			pgx.QueryExecModeExec, 300, 1, "nut", 1, nil)
		// Fails binding (constant folding divides by zero): only its parse and
		// its ERROR are logged, without its parameter.
		s.exec(ctx, "22012", "SELECT 1/$1::int", pgx.QueryExecModeExec, 0)
		s.exec(ctx, "", "UPDATE totals SET n = n + $1 WHERE name = $2", pgx.QueryExecModeExec, 5, "orders")
	},
	// Reads, and a transaction block that locks a row and updates it.
	func(ctx context.Context, s *sender) {
		s.simple(ctx, "", "SELECT count(*) FROM orders WHERE qty IN (1, 2, 3)")
		s.simple(ctx, "", "SHOW server_version")
		s.n++
		if _, err := s.c.PgConn().CopyTo(ctx, io.Discard, "COPY (SELECT id, item FROM orders ORDER BY id) TO STDOUT"); err != nil {
			s.t.Error(err)
		}
		s.exec(ctx, "", "BEGIN")
		s.exec(ctx, "", "SELECT n FROM totals WHERE name = 'orders' FOR UPDATE")
		s.exec(ctx, "", "UPDATE totals SET n = n + 100 WHERE name = 'orders'")
		s.exec(ctx, "", "COMMIT")
	},
	// Session state: a search_path and a statement prepared in SQL, which the
	// session's later statements need on the same connection.
	func(ctx context.Context, s *sender) {
		s.simple(ctx, "", "SET search_path = public")
		s.simple(ctx, "", "PREPARE bump(int) AS UPDATE totals SET n = n + $1 WHERE name = 'deposits'")
		s.simple(ctx, "", "EXECUTE bump(30)")
		s.simple(ctx, "", "SELECT count(*) FROM accounts")
	},
}
