package replay

import (
	"strings"
	"testing"
)

func TestFingerprint(t *testing.T) {
	tests := []struct{ in, want string }{
		{"select * from t where id = 1", "SELECT * FROM t WHERE id = ?"},
		{"SELECT  *\n\tFROM   T\nWHERE ID=$1;", "SELECT * FROM t WHERE id = ?"},
		{"select a from t where b = 'x' and c = E'it\\'s' and d = $$q$$ and e = $tag$a$b$tag$ and f = 1.5e3",
			"SELECT a FROM t WHERE b = ? AND c = ? AND d = ? AND e = ? AND f = ?"},
		{"select 'it''s', -- a comment\n x /* a /* nested */ comment */ from t", "SELECT ?, x FROM t"},
		{"select * from t where id in (1, 2, 3)", "SELECT * FROM t WHERE id IN (...)"},
		{"select * from t where id in ($1,$2)", "SELECT * FROM t WHERE id IN (...)"},
		{"select * from t where id not in (-1, +2)", "SELECT * FROM t WHERE id NOT IN (...)"},
		{"select * from t where id in (select id from u)", "SELECT * FROM t WHERE id IN (SELECT id FROM u)"},
		{"select * from t where id = any(array[1,2,3])", "SELECT * FROM t WHERE id = ANY (ARRAY[...])"},
		{"select * from t where id = any('{1,2,3}'::int[])", "SELECT * FROM t WHERE id = ANY (?::INT[])"},
		{"insert into t (a, b) values (1, 'x'), (2, 'y'), (3, 'z')", "INSERT INTO t(a, b) VALUES (?, ?), ..."},
		{"insert into t values (1, 'x'), (2, default)", "INSERT INTO t VALUES (?, ?), (?, DEFAULT)"},
		{"insert into t values ($1, $2) on conflict (a) do update set b = excluded.b",
			"INSERT INTO t VALUES (?, ?) ON CONFLICT (a) DO UPDATE SET b = excluded.b"},
		{"select x - 1, x-1, x - -1, -1, f(-1)", "SELECT x - ?, x - ?, x - ?, ?, f(?)"},
		{"update t set v=v-1 where k=-5", "UPDATE t SET v = v - ? WHERE k = ?"},
		{`select "Mixed Case", "a""b" from "T"`, `SELECT "Mixed Case", "a""b" FROM "T"`},
		{"select pg_catalog.nextval('s')", "SELECT pg_catalog.nextval(?)"},
		{"select now()::date, x::text, B'101', X'ff', U&'d\\0061t', 0x1F, 1_000", "SELECT now()::DATE, x::TEXT, ?, ?, ?, ?, ?"},
		{"BEGIN; select 1; COMMIT;", "BEGIN; SELECT ?; COMMIT"},
		{"select a->>'k', b @> '{}', c ~* 'x'", "SELECT a ->> ?, b @> ?, c ~* ?"},
		{"", ""},
		{"-- only a comment", ""},
		{"select 'unterminated", "SELECT ?"},
		{"select /* unterminated", "SELECT"},
	}
	for _, tc := range tests {
		if got := fingerprintOf(tc.in); got != tc.want {
			t.Errorf("fingerprint(%q)\n = %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// Statements that differ only in their constants share a fingerprint.
func TestFingerprintSameStatement(t *testing.T) {
	groups := [][]string{
		{"SELECT * FROM t WHERE id = 1", "select * from t where id = 42", "SELECT * FROM t WHERE id = $1", "select * from T where ID = -7"},
		{"SELECT * FROM t WHERE k IN (1)", "SELECT * FROM t WHERE k IN (1,2,3,4,5)", "select * from t where k in ($1, $2)"},
		{"INSERT INTO t VALUES (1, 'a'), (0, '')", "INSERT INTO t VALUES (2, 'b'), (3, 'c'), (4, 'd')"},
	}
	for _, g := range groups {
		want := fingerprintOf(g[0])
		for _, s := range g[1:] {
			if got := fingerprintOf(s); got != want {
				t.Errorf("fingerprint(%q) = %q, want %q as for %q", s, got, want, g[0])
			}
		}
	}
}

func TestFingerprintBounded(t *testing.T) {
	long := "SELECT " + strings.Repeat("a + ", 10000) + "1"
	fp := fingerprintOf(long)
	if len(fp) > maxFingerprint+10 || !strings.HasSuffix(fp, " …") {
		t.Errorf("fingerprint of %d bytes is %d bytes long, ending %q", len(long), len(fp), fp[len(fp)-10:])
	}
	if name := opName(fp); len(name) > 200 || !strings.Contains(name, " … #") {
		t.Errorf("op name %q", name)
	}
	if opName("SELECT ?") != "SELECT ?" {
		t.Error("a short fingerprint is its own name")
	}
}

func TestClassify(t *testing.T) {
	const (
		r = false // read
		w = true  // write
	)
	tests := []struct {
		sql   string
		write bool
	}{
		{"SELECT * FROM t", r},
		{"(SELECT 1) UNION (SELECT 2)", r},
		{"WITH x AS (SELECT 1) SELECT * FROM x", r},
		{"VALUES (1), (2)", r},
		{"TABLE t", r},
		{"SHOW search_path", r},
		{"EXPLAIN SELECT * FROM t", r},
		{"EXPLAIN UPDATE t SET v = 1", r},
		{"EXPLAIN ANALYZE SELECT * FROM t", r},
		{"EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t", w},
		{"select * from t for update", w},
		{"select * from t for no key update of t skip locked", w},
		{"select * from t for share", w},
		{"select * from t for key share", w},
		{"select * from t where x in (select y from u for update)", w},
		{"select nextval('s')", w},
		{"SELECT setval('s', 5)", w},
		{"select pg_advisory_xact_lock(1)", w},
		{"select pg_try_advisory_lock(1, 2)", w},
		{"select lo_create(0)", w},
		{"select lo_unlink(42)", w},
		{"select txid_current()", w},
		{"select pg_notify('c', 'x')", w},
		{"select * into new_t from t", w},
		{"with x as (delete from t returning *) select * from x", w},
		{"with x as (update t set v = 1 returning *) select * from x", w},
		{"with x as (insert into t values (1) returning *) select * from x", w},
		{"select 'for update', '-- nextval(' from t /* for update */", r},
		{"select nextval from t", r},
		{"INSERT INTO t VALUES (1)", w},
		{"UPDATE t SET v = 1", w},
		{"DELETE FROM t", w},
		{"MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE", w},
		{"BEGIN", w},
		{"SET x = 1", w},
		{"CREATE TABLE x (a int)", w},
		{"SELECT 1; SELECT 2", r},
		{"SELECT 1; UPDATE t SET v = 1", w},
		{"", w},
	}
	for _, tc := range tests {
		a, _ := analyze(tc.sql, nil)
		if a.write != tc.write {
			t.Errorf("%q: write %v, want %v", tc.sql, a.write, tc.write)
		}
	}
}

func TestTransactionEffects(t *testing.T) {
	tests := []struct {
		sql     string
		block   int8
		commits bool
		begin   bool
		rb      bool
	}{
		{"BEGIN", blockOpen, false, true, false},
		{"begin isolation level serializable", blockOpen, false, true, false},
		{"START TRANSACTION READ ONLY", blockOpen, false, true, false},
		{"COMMIT", blockClose, true, false, false},
		{"commit work", blockClose, true, false, false},
		{"END", blockClose, true, false, false},
		{"COMMIT AND CHAIN", blockNone, true, false, false},
		{"COMMIT AND NO CHAIN", blockClose, true, false, false},
		{"ROLLBACK", blockClose, false, false, true},
		{"ABORT", blockClose, false, false, true},
		{"ROLLBACK AND CHAIN", blockNone, false, false, false},
		{"ROLLBACK TO SAVEPOINT s", blockNone, false, false, false},
		{"ROLLBACK TO s", blockNone, false, false, false},
		{"ROLLBACK WORK TO SAVEPOINT s", blockNone, false, false, false},
		{"SAVEPOINT s", blockNone, false, false, false},
		{"RELEASE SAVEPOINT s", blockNone, false, false, false},
		{"PREPARE TRANSACTION 'x'", blockClose, true, false, false},
		{"COMMIT PREPARED 'x'", blockNone, true, false, false},
		{"ROLLBACK PREPARED 'x'", blockNone, false, false, false},
		{"BEGIN; UPDATE t SET v = 1; COMMIT", blockClose, true, false, false},
		{"BEGIN; UPDATE t SET v = 1", blockOpen, false, false, false},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", blockNone, false, false, false},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END", blockNone, false, false, false},
		{"CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END; COMMIT", blockClose, true, false, false},
		{"DO $$BEGIN COMMIT; END$$", blockNone, false, false, false},
	}
	for _, tc := range tests {
		a, _ := analyze(tc.sql, nil)
		if a.block != tc.block || a.commits != tc.commits || a.beginOnly != tc.begin || a.rollbackOnly != tc.rb {
			t.Errorf("%q: block %d commits %v begin %v rollback %v; want %d %v %v %v",
				tc.sql, a.block, a.commits, a.beginOnly, a.rollbackOnly, tc.block, tc.commits, tc.begin, tc.rb)
		}
	}
}

func TestSessionState(t *testing.T) {
	tests := []struct {
		sql     string
		pin     int8
		dropsPS bool
	}{
		{"SET search_path = app", pinSet, false},
		{"SET SESSION search_path TO app", pinSet, false},
		{"set schema 'app'", pinSet, false},
		{"SET ROLE reporting", pinSet, false},
		{"SET SESSION AUTHORIZATION bob", pinSet, false},
		{"SET LOCAL search_path = app", pinNone, false},
		{"SET statement_timeout = 5000", pinNone, false},
		{"PREPARE q(int) AS SELECT $1", pinSet, false},
		{"CREATE TEMP TABLE x (a int)", pinSet, false},
		{"create local temporary table x (a int)", pinSet, false},
		{"CREATE TABLE x (a int)", pinNone, false},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", pinSet, false},
		{"DECLARE c CURSOR FOR SELECT 1", pinNone, false},
		{"LISTEN jobs", pinSet, false},
		{"SELECT pg_advisory_lock(1)", pinSet, false},
		{"SELECT pg_advisory_xact_lock(1)", pinNone, false},
		{"DISCARD ALL", pinClear, true},
		{"DISCARD PLANS", pinNone, false},
		{"DEALLOCATE ALL", pinNone, true},
		{"DEALLOCATE PREPARE ALL", pinNone, true},
		{"DEALLOCATE q", pinNone, false},
	}
	for _, tc := range tests {
		a, _ := analyze(tc.sql, nil)
		if a.pin != tc.pin || a.dropsPrepared != tc.dropsPS {
			t.Errorf("%q: pin %d drops prepared %v, want %d %v", tc.sql, a.pin, a.dropsPrepared, tc.pin, tc.dropsPS)
		}
	}
}

func TestCopyAndParams(t *testing.T) {
	tests := []struct {
		sql             string
		copyIn, copyOut bool
		params          int
	}{
		{"COPY t FROM STDIN", true, false, 0},
		{"copy t (a, b) from stdin with (format csv)", true, false, 0},
		{"COPY t FROM '/tmp/x'", false, false, 0},
		{"COPY (SELECT 1) TO STDOUT", false, true, 0},
		{"COPY t FROM STDIN; SELECT 1", false, false, 0},
		{"SELECT $1, $12, '$3', $$ $4 $$", false, false, 12},
	}
	for _, tc := range tests {
		a, _ := analyze(tc.sql, nil)
		if a.copyIn != tc.copyIn || a.copyOut != tc.copyOut || a.params != tc.params {
			t.Errorf("%q: copy in %v out %v params %d, want %v %v %d", tc.sql, a.copyIn, a.copyOut, a.params, tc.copyIn, tc.copyOut, tc.params)
		}
	}
}
