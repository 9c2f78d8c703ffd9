package replay

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rehearse-dev/rehearse/workload"
	"github.com/rehearse-dev/rehearse/workload/internal/pgtest"
)

// stmtOf is a statement as the parser would make it of text.
func stmtOf(pr proto, text string, params ...string) *stmt {
	a, _ := analyze(text, nil)
	st := &stmt{proto: pr, text: text, a: a}
	for _, p := range params {
		if p == "NULL" {
			st.params = append(st.params, nil)
		} else {
			st.params = append(st.params, []byte(p))
		}
	}
	return st
}

func TestExecute(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	var s workload.Session
	run := func(st *stmt) error {
		t.Helper()
		return execute(ctx, conn, &s, st)
	}
	prepared := func() int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'rehearse_replay_%'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("a named statement is prepared once per connection, with text parameters and NULL", func(t *testing.T) {
		for i, v := range []string{"a'b", "NULL"} {
			if err := run(stmtOf(protoNamed, "INSERT INTO t VALUES ($1, $2)", string(rune('1'+i)), v)); err != nil {
				t.Fatal(err)
			}
		}
		if n := prepared(); n != 1 {
			t.Errorf("%d statements prepared, want 1", n)
		}
		var v *string
		if err := conn.QueryRow(ctx, "SELECT v FROM t WHERE id = 2").Scan(&v); err != nil || v != nil {
			t.Errorf("NULL parameter stored as %v (%v)", v, err)
		}
	})
	t.Run("DISCARD ALL in the capture drops the replay's statements too", func(t *testing.T) {
		if err := run(stmtOf(protoSimple, "DISCARD ALL")); err != nil {
			t.Fatal(err)
		}
		if err := run(stmtOf(protoNamed, "SELECT $1::int", "5")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("statements dropped behind the replay's back are prepared again", func(t *testing.T) {
		if _, err := conn.Exec(ctx, "DEALLOCATE ALL"); err != nil {
			t.Fatal(err)
		}
		if err := run(stmtOf(protoNamed, "SELECT $1::int", "6")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unnamed statement", func(t *testing.T) {
		if err := run(stmtOf(protoUnnamed, "UPDATE t SET v = $1 WHERE id = $2", "x", "1")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("several statements in one simple query", func(t *testing.T) {
		if err := run(stmtOf(protoSimple, "INSERT INTO t VALUES (10, 'a'); SELECT * FROM t; UPDATE t SET v = 'b' WHERE id = 10")); err != nil {
			t.Fatal(err)
		}
		var pgErr *pgconn.PgError
		if err := run(stmtOf(protoSimple, "SELECT 1; SELECT 1/0")); !errors.As(err, &pgErr) || pgErr.Code != "22012" {
			t.Errorf("error %v, want 22012", err)
		}
	})
	t.Run("COPY FROM STDIN copies no rows; COPY TO STDOUT reads them all", func(t *testing.T) {
		if err := run(stmtOf(protoCopyIn, "COPY t FROM STDIN")); err != nil {
			t.Fatal(err)
		}
		if err := run(stmtOf(protoCopyOut, "COPY t TO STDOUT")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a statement of a lost transaction block is not sent", func(t *testing.T) {
		st := stmtOf(protoSimple, "UPDATE t SET v = 'lost' WHERE id = 1")
		st.inBlock = true
		var pgErr *pgconn.PgError
		if err := run(st); !errors.As(err, &pgErr) || pgErr.Code != "25P02" {
			t.Fatalf("error %v, want 25P02", err)
		}
		var v string
		if err := conn.QueryRow(ctx, "SELECT v FROM t WHERE id = 1").Scan(&v); err != nil || v != "x" {
			t.Errorf("v = %q (%v): the statement ran", v, err)
		}
		// The block's end is sent whatever: on an idle connection it warns.
		end := stmtOf(protoSimple, "COMMIT")
		end.inBlock = true
		if err := run(end); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a statement the capture shows failing without its parameters fails again, unsent", func(t *testing.T) {
		st := stmtOf(protoStandIn, "INSERT INTO t VALUES ($1, $2)")
		st.sqlState = "23505"
		var pgErr *pgconn.PgError
		if err := run(st); !errors.As(err, &pgErr) || pgErr.Code != "23505" {
			t.Fatalf("error %v, want 23505", err)
		}
	})
	t.Run("a session's end closes the connection it holds", func(t *testing.T) {
		s.Pinned = 0
		if err := run(&stmt{proto: protoEnd}); err != nil || conn.IsClosed() {
			t.Fatalf("without a held connection: %v, closed %v", err, conn.IsClosed())
		}
		s.Pinned, s.Hold = 1, true
		if err := run(&stmt{proto: protoEnd}); err != nil || !conn.IsClosed() || s.Hold {
			t.Fatalf("with a held connection: %v, closed %v, hold %v", err, conn.IsClosed(), s.Hold)
		}
	})
}

// A broken connection makes an outcome unknown only for a statement that could
// commit.
func TestMayCommit(t *testing.T) {
	tests := []struct {
		sql    string
		status byte
		want   bool
	}{
		{"UPDATE t SET v = 1", 'I', true},
		{"SELECT 1", 'I', false},
		{"SELECT nextval('s')", 'I', true},
		{"BEGIN", 'I', false},
		{"ROLLBACK", 'I', false},
		{"UPDATE t SET v = 1", 'T', false},
		{"COMMIT", 'T', true},
		{"END", 'T', true},
		{"PREPARE TRANSACTION 'x'", 'T', true},
		{"ROLLBACK", 'T', false},
		{"BEGIN; UPDATE t SET v = 1; COMMIT", 'I', true},
		{"SELECT 1; SELECT 2", 'I', false},
	}
	for _, tc := range tests {
		if got := mayCommit(stmtOf(protoSimple, tc.sql), tc.status); got != tc.want {
			t.Errorf("mayCommit(%q, %c) = %v, want %v", tc.sql, tc.status, got, tc.want)
		}
	}
}

// A statement cut off in flight (here by its deadline, which closes the
// connection) has an unknown outcome if it could commit, and failed otherwise.
func TestAmbiguous(t *testing.T) {
	srv := pgtest.Start(t)
	for _, tc := range []struct {
		sql       string
		ambiguous bool
	}{
		{"CREATE TABLE slow AS SELECT pg_sleep(30)::text AS slept", true},
		{"SELECT pg_sleep(30)", false},
	} {
		conn, err := pgx.Connect(t.Context(), srv.DSN)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		var s workload.Session
		err = execute(ctx, conn, &s, stmtOf(protoSimple, tc.sql))
		cancel()
		if err == nil || errors.Is(err, workload.ErrAmbiguous) != tc.ambiguous {
			t.Errorf("%s: error %v, want ambiguous %v", tc.sql, err, tc.ambiguous)
		}
		conn.Close(t.Context())
	}
}
