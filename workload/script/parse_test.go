package script

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/workload"
)

// writeFile writes a file under dir and returns its path.
func writeFile(t testing.TB, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// newScript builds a workload of one write script with the given text.
func newScript(t testing.TB, text string) (*Workload, error) {
	t.Helper()
	return New(Config{Scripts: []ScriptFile{{File: writeFile(t, t.TempDir(), "s.sql", text), Weight: 1}}})
}

// listing renders a compiled script, one instruction a line, for comparisons.
func listing(w *Workload, sc *script) string {
	var b strings.Builder
	for i, in := range sc.prog {
		fmt.Fprintf(&b, "%d L%d ", i, in.line)
		switch in.op {
		case opSQL:
			st := in.stmt
			mode := "prepared"
			if st.compound {
				mode = "compound"
			}
			fmt.Fprintf(&b, "%s %q", mode, st.sql)
			if st.compound {
				fmt.Fprintf(&b, " pieces=%q", st.pieces)
			}
			var params []string
			for _, p := range st.params {
				params = append(params, w.sym.names[p])
			}
			if len(params) > 0 {
				fmt.Fprintf(&b, " params=%s", strings.Join(params, ","))
			}
			switch st.result {
			case resultGset:
				fmt.Fprintf(&b, " gset=%q", st.prefix)
			case resultAset:
				fmt.Fprintf(&b, " aset=%q", st.prefix)
			}
			fmt.Fprintf(&b, " txn=%d", st.txn)
		case opSet:
			fmt.Fprintf(&b, "set %s", w.sym.names[in.slot])
		case opSleep:
			if in.slot >= 0 {
				fmt.Fprintf(&b, "sleep :%s %s", w.sym.names[in.slot], in.sleepUnit)
			} else {
				fmt.Fprintf(&b, "sleep %d %s", in.sleepN, in.sleepUnit)
			}
		case opBranch:
			fmt.Fprintf(&b, "branch else %d", in.target)
		case opJump:
			fmt.Fprintf(&b, "jump %d", in.target)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, script, want string
	}{
		{
			name: "pgbench tpcb-like",
			script: `\set aid random(1, 100000 * :scale)
\set bid random(1, 1 * :scale)
\set tid random(1, 10 * :scale)
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
`,
			want: `0 L1 set aid
1 L2 set bid
2 L3 set tid
3 L4 set delta
4 L5 prepared "BEGIN" txn=1
5 L6 prepared "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2" params=delta,aid txn=0
6 L7 prepared "SELECT abalance FROM pgbench_accounts WHERE aid = $1" params=aid txn=0
7 L8 prepared "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2" params=delta,tid txn=0
8 L9 prepared "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2" params=delta,bid txn=0
9 L10 prepared "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)" params=tid,bid,aid,delta txn=0
10 L11 prepared "END" txn=2
`,
		},
		{
			name: "semicolons that do not end a command",
			script: `SELECT 1; SELECT 2;
-- a comment; not a command
SELECT ';', $$;$$, $q$ :x; $q$, /* ; /* nested; */ */ 3 -- ;
  , (SELECT 4; ), "a;b" ;
SELECT E'it\'s; :x', 'a:b', "x:y", 1::int, x:::int, :'q', ARRAY[1,2][1:2], a$b;;;
CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END;
SELECT f()`,
			want: `0 L1 prepared "SELECT 1" txn=0
1 L1 prepared "SELECT 2" txn=0
2 L3 prepared "SELECT ';', $$;$$, $q$ :x; $q$, /* ; /* nested; */ */ 3 -- ;\n  , (SELECT 4; ), \"a;b\"" txn=0
3 L5 prepared "SELECT E'it\\'s; :x', 'a:b', \"x:y\", 1::int, x:::int, :'q', ARRAY[1,2][1:2], a$b" txn=0
4 L6 prepared "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END" txn=0
5 L7 prepared "SELECT f()" txn=0
`,
		},
		{
			name: "variables become one parameter per reference",
			script: `\set a 1
SELECT :a, :a + 1, :a::text, \:a, ':a' FROM t WHERE x = :a
  AND y = :a;`,
			want: `0 L1 set a
1 L2 prepared "SELECT $1, $2 + 1, $3::text, :a, ':a' FROM t WHERE x = $4\n  AND y = $5" params=a,a,a,a,a txn=0
`,
		},
		{
			name: "compound commands, gset and aset",
			script: `\set a 1
SELECT :a AS x \; SELECT 2 AS y \gset p_
SELECT 1 AS one
\gset
SELECT 1 AS i6 \; SELECT :a AS i7 \aset
UPDATE t SET v = v + 1 RETURNING v \gset`,
			want: `0 L1 set a
1 L2 compound "" pieces=["SELECT " " AS x ; SELECT 2 AS y"] params=a gset="p_" txn=0
2 L3 prepared "SELECT 1 AS one" gset="" txn=0
3 L5 compound "" pieces=["SELECT 1 AS i6 ; SELECT " " AS i7"] params=a aset="" txn=0
4 L6 prepared "UPDATE t SET v = v + 1 RETURNING v" gset="" txn=0
`,
		},
		{
			name: "sleep",
			script: `\set d 5
\sleep 10 ms
\sleep 10ms
\SLEEP 3
\sleep :d us
\sleep 2 S
\sleep -1`,
			want: `0 L1 set d
1 L2 sleep 10 1ms
2 L3 sleep 10 1ms
3 L4 sleep 3 1s
4 L5 sleep :d 1µs
5 L6 sleep 2 1s
6 L7 sleep -1 1s
`,
		},
		{
			name: "conditionals",
			script: `\if :client_id = 0
SELECT 1;
\elif :client_id = 1
  \if :scale > 1
  SELECT 2;
  \endif
\elif :client_id = 2
SELECT 3;
\else
SELECT 4;
\endif
\if true
SELECT 5;
\endif
END;`,
			want: `0 L1 branch else 3
1 L2 prepared "SELECT 1" txn=0
2 L3 jump 11
3 L3 branch else 7
4 L4 branch else 6
5 L5 prepared "SELECT 2" txn=0
6 L7 jump 11
7 L7 branch else 10
8 L8 prepared "SELECT 3" txn=0
9 L9 jump 11
10 L10 prepared "SELECT 4" txn=0
11 L12 branch else 13
12 L13 prepared "SELECT 5" txn=0
13 L15 prepared "END" txn=2
`,
		},
		{
			name:   "continuation lines and a final command without semicolon",
			script: "\\set x 1 + \\\n   2 \\\r\n * 3\nBEGIN; COMMIT; ROLLBACK; START TRANSACTION; ABORT\n",
			want: `0 L1 set x
1 L4 prepared "BEGIN" txn=1
2 L4 prepared "COMMIT" txn=2
3 L4 prepared "ROLLBACK" txn=3
4 L4 prepared "START TRANSACTION" txn=1
5 L4 prepared "ABORT" txn=3
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := newScript(t, tt.script)
			if err != nil {
				t.Fatal(err)
			}
			if got := listing(w, w.scripts[0]); got != tt.want {
				t.Errorf("listing:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestParseProblems checks that every problem in a script is reported at once,
// each with its line and what to do.
func TestParseProblems(t *testing.T) {
	script := `\shell echo hi
\setshell x echo 1
\startpipeline
\endpipeline
\foo bar
\set 1x 2
\set y 1 +
SELECT :undefined_var;
\if true
\else
\elif false
\endif
\endif
\sleep
\sleep 1 2 3
\sleep 5 minutes
\sleep abc
\set z noSuchFunc(1)
\set w ln(1, 2)
\else x
SELECT $1;
\set txid 1
SELECT :y + :z + :w;
\
\if 1
\set v random_gaussian(1, 10, 1.5)
\gset
SELECT 'unterminated
`
	_, err := newScript(t, script)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("New = %v, want ErrInvalid", err)
	}
	want := []string{
		`s.sql:1: \shell is not supported: rehearse does not run shell commands during a load`,
		`s.sql:2: \setshell is not supported: rehearse does not run shell commands during a load; compute the value with \set or with a query and \gset`,
		`s.sql:3: \startpipeline is not supported: each command is one round trip`,
		`s.sql:4: \endpipeline is not supported`,
		`s.sql:5: \foo is not supported: it is not a pgbench meta-command`,
		`s.sql:6: \set: invalid variable name "1x"`,
		`s.sql:7: \set y: syntax error: expected a value, a :variable, a function call or (, got the end of the expression (column 11)`,
		`s.sql:8: undefined variable :undefined_var: set it with \set (or a query ending in \gset) before this line`,
		`s.sql:11: \elif after \else (the \if at line 9): \else must be the last branch`,
		`s.sql:13: \endif without a matching \if`,
		`s.sql:14: \sleep: missing duration`,
		`s.sql:15: \sleep: too many arguments "1 2 3"`,
		`s.sql:16: \sleep: unknown time unit "minutes": use us, ms or s`,
		`s.sql:17: \sleep: invalid duration "abc"`,
		`s.sql:18: \set z: unknown function "noSuchFunc"`,
		`s.sql:19: \set w: ln takes 1 argument, got 2 (column 8)`,
		`s.sql:20: \else takes no argument, got "x"`,
		`s.sql:20: \else without a matching \if`,
		`s.sql:21: positional parameters such as $1 are not supported in scripts: use :variables`,
		`s.sql:22: \set txid: :txid is set by rehearse for every execution and cannot be set`,
		`s.sql:24: a lone backslash is not a meta-command`,
		`s.sql:25: \if without a matching \endif: add \endif after its last branch`,
		`s.sql:26: \set v: gaussian parameter must be at least 2.000000 (not 1.500000)`,
		`s.sql:27: \gset must follow an SQL command: end the query with \gset instead of its semicolon`,
		`s.sql:28: unterminated quoted string: close it with '`,
	}
	lines := strings.Split(err.Error(), "\n")
	for _, w := range want {
		if !strings.Contains(err.Error(), "/"+w) {
			t.Errorf("missing problem %q", w)
		}
	}
	if len(lines) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(lines), len(want), err)
	}
	// No spurious "undefined" for variables whose \set was wrong.
	if strings.Contains(err.Error(), "undefined variable :y") || strings.Contains(err.Error(), "undefined variable :z") {
		t.Errorf("a variable set by a faulty \\set is reported undefined:\n%s", err)
	}
}

func TestUndefinedVariables(t *testing.T) {
	tests := []struct {
		name, script string
		undefined    []string // "line:name"
		persistent   []string
	}{
		{
			name:   "built-ins are always defined",
			script: "SELECT :client_id, :session_id, :scale, :random_seed, :default_seed, :txid;",
		},
		{
			name:      "used before set",
			script:    "SELECT :a;\n\\set a 1\nSELECT :a;",
			undefined: []string{"1:a"},
		},
		{
			name:       "set on one branch only",
			script:     "\\if :client_id = 0\n\\set a 1\n\\else\nSELECT :a;\n\\endif\nSELECT :a;",
			undefined:  []string{"4:a"},
			persistent: []string{"a"},
		},
		{
			name:   "set on every branch",
			script: "\\if :client_id = 0\n\\set a 1\n\\elif :client_id = 1\n\\set a 2\n\\else\n\\set a 3\n\\endif\nSELECT :a;",
		},
		{
			name:       "set on some branches",
			script:     "\\if :client_id = 0\n\\set a 1\n\\elif :client_id = 1\n\\set a 2\n\\endif\nSELECT :a;",
			persistent: []string{"a"},
		},
		{
			name:   "gset sets its columns",
			script: "SELECT 1 AS a \\gset\nSELECT :a;\nSELECT 2 AS b \\gset p_\nSELECT :p_b;",
		},
		{
			name:      "a gset prefix applies",
			script:    "SELECT 2 AS b \\gset p_\nSELECT :b;",
			undefined: []string{"2:b"},
		},
		{
			name:       "aset may set nothing",
			script:     "SELECT 1 AS a WHERE false \\aset\nSELECT :a;",
			persistent: []string{"a"},
		},
		{
			name:      "in a sleep and a condition",
			script:    "\\sleep :s ms\n\\if :c\n\\endif",
			undefined: []string{"1:s", "2:c"},
		},
		{
			name:      "in its own definition",
			script:    "\\set n :n + 1",
			undefined: []string{"1:n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := newScript(t, tt.script)
			var got []string
			if err != nil {
				for _, l := range strings.Split(err.Error(), "\n") {
					var line int
					var name string
					if _, serr := fmt.Sscanf(l[strings.Index(l, "s.sql:")+6:], "%d: undefined variable :%s", &line, &name); serr != nil {
						t.Fatalf("unexpected problem %q", l)
					}
					got = append(got, fmt.Sprintf("%d:%s", line, strings.TrimSuffix(name, ":")))
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.undefined, " ") {
				t.Errorf("undefined %v, want %v", got, tt.undefined)
			}
			if err != nil {
				return
			}
			var persistent []string
			for _, s := range w.persistent {
				persistent = append(persistent, w.sym.names[s])
			}
			if strings.Join(persistent, " ") != strings.Join(tt.persistent, " ") {
				t.Errorf("persistent %v, want %v", persistent, tt.persistent)
			}
			if (w.store != nil) != (len(tt.persistent) > 0) {
				t.Errorf("session store allocated: %v", w.store != nil)
			}
		})
	}
}

func TestConfigProblems(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.sql", "SELECT 1;\n")
	empty := writeFile(t, dir, "empty.sql", "-- nothing here\n\n")
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"no scripts", Config{}, []string{"no scripts: give at least one script file"}},
		{"missing file", Config{Scripts: []ScriptFile{{File: filepath.Join(dir, "nope.sql"), Weight: 1}}},
			[]string{"nope.sql: cannot read the script: no such file or directory"}},
		{"empty file", Config{Scripts: []ScriptFile{{File: empty, Weight: 1}}},
			[]string{"empty.sql: the script is empty: write at least one SQL command"}},
		{"weights and kinds", Config{Scripts: []ScriptFile{{File: good, Weight: 0}, {File: good, Weight: -2, Kind: "update"}}},
			[]string{"good.sql: weight 0: must be a positive number", "good.sql: kind \"update\": use write or read", "good.sql: weight -2: must be a positive number"}},
		{"scale", Config{Scale: -1, Scripts: []ScriptFile{{File: good, Weight: 1}}}, []string{"scale -1: must be positive"}},
		{"acknowledged without txid", Config{Scripts: []ScriptFile{{File: good, Weight: 1}}, Acknowledged: &Acknowledged{Table: "t", Column: "c"}},
			[]string{"acknowledged: no write script uses :txid, so no write can be checked: store :txid in t.c in a write script"}},
		{"acknowledged incomplete", Config{Scripts: []ScriptFile{{File: good, Weight: 1}}, Acknowledged: &Acknowledged{Table: "t"}},
			[]string{"acknowledged: give both the table and the column"}},
		{"invariants", Config{Scripts: []ScriptFile{{File: good, Weight: 1}}, Invariants: []Invariant{
			{Name: "a", SQL: "SELECT 1", Expect: "unchanged"},
			{Name: "a", SQL: "SELECT 1", Expect: "0"},
			{Name: "", SQL: " ", Expect: "zero"},
		}}, []string{
			`invariant "a": the name is used twice`,
			"invariant 3: give it a name",
			"invariant 3: the SQL is empty",
			`invariant 3: expect "zero": use unchanged or a number, e.g. 0`,
		}},
		{"setup file", Config{Scripts: []ScriptFile{{File: good, Weight: 1}}, Setup: filepath.Join(dir, "setup.sql")},
			[]string{"setup.sql: cannot read the setup file"}},
		{"setup check alone", Config{Scripts: []ScriptFile{{File: good, Weight: 1}}, SetupCheck: "SELECT 1"},
			[]string{"setup_check is given without a setup file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("New = %v, want ErrInvalid", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("%d problems, want %d:\n%s", len(lines), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%s", w, err)
				}
			}
		})
	}
}

func TestSetupFileIsPlainSQL(t *testing.T) {
	dir := t.TempDir()
	setup := writeFile(t, dir, "setup.sql", "CREATE TABLE t (a int, b text DEFAULT 'x:y;z');\n\\copy t from 'f'\nINSERT INTO t VALUES (1, $$;$$);\n")
	good := writeFile(t, dir, "good.sql", "SELECT 1;\n")
	_, err := New(Config{Scripts: []ScriptFile{{File: good, Weight: 1}}, Setup: setup})
	if err == nil || !strings.Contains(err.Error(), `setup.sql:2: \copy: a setup file is plain SQL`) {
		t.Fatalf("New = %v", err)
	}
	stmts, problems := splitSetup("setup.sql", "CREATE TABLE t (a int, b text DEFAULT 'x:y;z');\n\n-- c\nINSERT INTO t VALUES (1, $$;$$), (:x, 2)")
	if len(problems) != 0 || len(stmts) != 2 || stmts[0].line != 1 || stmts[1].line != 4 ||
		stmts[1].sql != "INSERT INTO t VALUES (1, $$;$$), (:x, 2)" {
		t.Fatalf("splitSetup = %+v, %v", stmts, problems)
	}
}

func TestOpsAndSessions(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "order.sql", "SELECT 1;")
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	b := writeFile(t, sub, "order.sql", "SELECT 2;")
	c := writeFile(t, dir, "report.pgbench", "SELECT 3;")
	w, err := New(Config{Seed: 7, Scripts: []ScriptFile{{File: a, Weight: 3}, {File: b, Weight: 1, Kind: "write"}, {File: c, Weight: 6, Kind: "READ"}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, op := range w.Ops() {
		got = append(got, op.Name+"/"+op.Kind.String())
	}
	if strings.Join(got, " ") != "order/write order_2/write report/read" {
		t.Errorf("ops = %v", got)
	}
	if w.Name() != "script" {
		t.Errorf("Name = %q", w.Name())
	}
	// Draws follow the weights, and a session's draws depend only on the seed and
	// its index.
	counts := make([]int, 3)
	s := w.NewSession(12, nil)
	if s.Customer != 12 {
		t.Errorf("session 12 has Customer %d", s.Customer)
	}
	for range 100000 {
		counts[w.Next(&s, nil)]++
	}
	for i, want := range []float64{0.3, 0.1, 0.6} {
		if f := float64(counts[i]) / 100000; f < want-0.01 || f > want+0.01 {
			t.Errorf("script %d drawn %.3f of the time, want %.1f", i, f, want)
		}
	}
	s1, s2 := w.NewSession(5, nil), w.NewSession(5, nil)
	s3 := w.NewSession(6, nil)
	var d1, d2, d3 []int
	for range 20 {
		d1, d2, d3 = append(d1, w.Next(&s1, nil)), append(d2, w.Next(&s2, nil)), append(d3, w.Next(&s3, nil))
	}
	if fmt.Sprint(d1) != fmt.Sprint(d2) || fmt.Sprint(d1) == fmt.Sprint(d3) {
		t.Errorf("session draws: %v, %v, %v", d1, d2, d3)
	}
	var _ workload.Workload = w
}
