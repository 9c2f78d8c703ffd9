package replay

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// got is an arrival as the tests compare it.
type got struct {
	session int32
	due     time.Duration
	proto   proto
	text    string
	params  string // "a|<NULL>|"; "-" when there are none
	hold    bool
}

func (g got) String() string {
	return fmt.Sprintf("{s%d %v proto %d %q params %s hold %v}", g.session, g.due, g.proto, g.text, g.params, g.hold)
}

func gotOf(as []arrival) []got {
	var out []got
	for _, a := range as {
		out = append(out, got{a.session, a.due, a.st.proto, a.st.text, paramString(a.st.params), a.st.hold})
	}
	return out
}

func paramString(ps [][]byte) string {
	if ps == nil {
		return "-"
	}
	var parts []string
	for _, p := range ps {
		if p == nil {
			parts = append(parts, "<NULL>")
		} else {
			parts = append(parts, string(p))
		}
	}
	return strings.Join(parts, "|")
}

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

// Every message form a capture holds, each as the schedule replays it.
func TestMessageForms(t *testing.T) {
	tests := []struct {
		name  string
		lines []logLine
		want  []got
		// errs is the captured errors per operation.
		errs map[string]int64
	}{{
		// Offset 0 is the first replayed statement's start: its log time less its
		// duration.
		name: "log_min_duration_statement: a simple query starts its duration before its line",
		lines: []logLine{
			{at: "10:00:00.000", session: "a", msg: "duration: 0.500 ms  statement: SELECT 1"},
			{at: "10:00:01.000", session: "a", msg: "duration: 250.000 ms  statement: UPDATE t SET v = 2"},
		},
		want: []got{
			{0, 0, protoSimple, "SELECT 1", "-", false},
			{0, ms(750.5), protoSimple, "UPDATE t SET v = 2", "-", false},
		},
	}, {
		name: "extended protocol: unnamed and named statements with parameters: quotes, NULL, empty, newlines",
		lines: []logLine{
			{at: "10:00:00.000", session: "a", msg: "duration: 0.100 ms  parse <unnamed>: INSERT INTO t VALUES ($1, $2, $3, $4)"},
			{at: "10:00:00.001", session: "a", msg: "duration: 0.100 ms  bind <unnamed>: INSERT INTO t VALUES ($1, $2, $3, $4)",
				detail: "parameters: $1 = '1', $2 = 'it''s \"x\"', $3 = NULL, $4 = ''"},
			{at: "10:00:00.002", session: "a", msg: "duration: 0.200 ms  execute <unnamed>: INSERT INTO t VALUES ($1, $2, $3, $4)",
				detail: "parameters: $1 = '1', $2 = 'it''s \"x\"', $3 = NULL, $4 = ''"},
			{at: "10:00:00.010", session: "a", msg: "duration: 0.200 ms  execute S_1: SELECT v FROM t\nWHERE id = $1",
				detail: "parameters: $1 = 'two\nlines, $2 = ''x'''"},
		},
		want: []got{
			{0, 0, protoUnnamed, "INSERT INTO t VALUES ($1, $2, $3, $4)", `1|it's "x"|<NULL>|`, false},
			{0, ms(9.9), protoNamed, "SELECT v FROM t\nWHERE id = $1", "two\nlines, $2 = 'x'", false},
		},
	}, {
		name: "log_statement = 'all': statements logged when they start, durations and fetches skipped",
		lines: []logLine{
			{at: "10:00:00.000", session: "a", msg: "statement: BEGIN"},
			{at: "10:00:00.001", session: "a", msg: "duration: 0.010 ms"},
			{at: "10:00:00.002", session: "a", msg: "execute S_2/C_3: SELECT * FROM t WHERE k = $1", detail: "parameters: $1 = 'k'"},
			{at: "10:00:00.003", session: "a", msg: "execute fetch from S_2/C_3: SELECT * FROM t WHERE k = $1", detail: "parameters: $1 = 'k'"},
			{at: "10:00:00.004", session: "a", msg: "statement: COMMIT"},
		},
		want: []got{
			{0, 0, protoSimple, "BEGIN", "-", true},
			{0, ms(2), protoNamed, "SELECT * FROM t WHERE k = $1", "k", true},
			{0, ms(4), protoSimple, "COMMIT", "-", false},
		},
	}, {
		name: "log_statement: an ERROR right after a statement is its outcome",
		lines: []logLine{
			{at: "10:00:00.000", session: "a", msg: "statement: SELECT 1/0"},
			{at: "10:00:00.001", session: "a", sev: "ERROR", state: "22012", msg: "division by zero", query: "SELECT 1/0"},
			{at: "10:00:00.002", session: "a", msg: "statement: SELECT 2"},
		},
		want: []got{
			{0, 0, protoSimple, "SELECT 1/0", "-", false},
			{0, ms(2), protoSimple, "SELECT 2", "-", false},
		},
		errs: map[string]int64{"SELECT ? / ?": 1},
	}, {
		name: "log_min_duration_statement: a failed statement is only in its ERROR record",
		lines: []logLine{
			{at: "10:00:00.000", session: "a", msg: "duration: 0.010 ms  statement: BEGIN"},
			{at: "10:00:00.010", session: "a", msg: "duration: 0.050 ms  parse stmtcache_1: SELECT 1/$1::int"},
			{at: "10:00:00.011", session: "a", sev: "ERROR", state: "22012", msg: "division by zero",
				context: "unnamed portal with parameters: $1 = '0'", query: "SELECT 1/$1::int"},
			{at: "10:00:00.020", session: "a", sev: "ERROR", state: "22012", msg: "division by zero", query: "SELECT 2/$1::int"},
			{at: "10:00:00.030", session: "a", sev: "ERROR", state: "25P02", msg: "current transaction is aborted, commands ignored until end of transaction block", query: "SELECT 3"},
			{at: "10:00:00.040", session: "a", msg: "duration: 0.010 ms  statement: ROLLBACK"},
		},
		want: []got{
			{0, 0, protoSimple, "BEGIN", "-", true},
			{0, ms(9.96), protoUnnamed, "SELECT 1/$1::int", "0", true},
			{0, ms(20.01), protoStandIn, "SELECT 2/$1::int", "-", true},
			{0, ms(30.01), protoSimple, "SELECT 3", "-", true},
			{0, ms(40), protoSimple, "ROLLBACK", "-", false},
		},
		errs: map[string]int64{"SELECT ? / ?::INT": 2, "SELECT ?": 1},
	}, {
		name: "a statement that fails running is replayed with the parameters of its bind",
		lines: []logLine{
			{at: "10:00:00.000", session: "a", msg: "duration: 0.050 ms  parse S_1: INSERT INTO t VALUES ($1)"},
			{at: "10:00:00.001", session: "a", msg: "duration: 0.050 ms  bind S_1: INSERT INTO t VALUES ($1)", detail: "parameters: $1 = '7'"},
			{at: "10:00:00.002", session: "a", sev: "ERROR", state: "23505", msg: "duplicate key value violates unique constraint", query: "INSERT INTO t VALUES ($1)"},
			{at: "10:00:00.010", session: "a", msg: "duration: 0.050 ms  bind S_1: INSERT INTO t VALUES ($1)", detail: "parameters: $1 = '8'"},
			{at: "10:00:00.011", session: "a", msg: "duration: 0.050 ms  execute S_1: INSERT INTO t VALUES ($1)", detail: "parameters: $1 = '8'"},
			{at: "10:00:00.020", session: "a", msg: "duration: 0.050 ms  bind S_1: INSERT INTO t VALUES ($1)", detail: "parameters: $1 = '9'"},
			// Not the statement bound: its parameters are not those.
			{at: "10:00:00.021", session: "a", sev: "ERROR", state: "22012", msg: "division by zero", query: "SELECT 1/$1"},
		},
		want: []got{
			{0, 0, protoNamed, "INSERT INTO t VALUES ($1)", "7", false},
			{0, ms(10), protoNamed, "INSERT INTO t VALUES ($1)", "8", false},
			{0, ms(20), protoStandIn, "SELECT 1/$1", "-", false},
		},
		errs: map[string]int64{"INSERT INTO t VALUES (?)": 1, "SELECT ? / ?": 1},
	}, {
		name: "an ERROR logged without its statement is counted, not replayed",
		lines: []logLine{
			{at: "10:00:00.000", session: "a", msg: "duration: 0.010 ms  statement: SELECT 1"},
			{at: "10:00:00.001", session: "a", sev: "ERROR", state: "57014", msg: "canceling statement due to user request"},
		},
		want: []got{{0, 0, protoSimple, "SELECT 1", "-", false}},
	}, {
		name: "a session ending inside a transaction block closes its connection",
		lines: []logLine{
			{at: "10:00:00.000", session: "a", msg: "duration: 0.010 ms  statement: BEGIN"},
			{at: "10:00:00.001", session: "a", msg: "duration: 0.010 ms  statement: UPDATE t SET v = v + 1"},
			{at: "10:00:00.005", session: "a", msg: "disconnection: session time: 0:00:00.005 user=app database=shop host=10.0.0.7 port=50000"},
			{at: "10:00:00.006", session: "b", msg: "duration: 0.010 ms  statement: BEGIN"},
		},
		want: []got{
			{0, 0, protoSimple, "BEGIN", "-", true},
			{0, ms(1), protoSimple, "UPDATE t SET v = v + 1", "-", true},
			{0, ms(5.01), protoEnd, "", "-", false},
			{1, ms(6), protoSimple, "BEGIN", "-", true},
			// Session b is still in its block at the end of the log.
			{1, ms(6.01), protoEnd, "", "-", false},
		},
	}, {
		name: "session state keeps the connection until the session ends",
		lines: []logLine{
			{at: "10:00:00.000", session: "a", msg: "duration: 0.010 ms  statement: SET search_path = app, public"},
			{at: "10:00:00.001", session: "a", msg: "duration: 0.010 ms  statement: SELECT * FROM t"},
			{at: "10:00:00.002", session: "a", msg: "duration: 0.010 ms  statement: DISCARD ALL"},
			{at: "10:00:00.003", session: "a", msg: "duration: 0.010 ms  statement: SELECT 1"},
			{at: "10:00:00.004", session: "b", msg: "duration: 0.010 ms  statement: SELECT pg_advisory_lock(7)"},
			{at: "10:00:00.005", session: "b", msg: "disconnection: session time: 0:00:00.005 user=app database=shop host=10.0.0.7 port=50000"},
		},
		want: []got{
			{0, 0, protoSimple, "SET search_path = app, public", "-", true},
			{0, ms(1), protoSimple, "SELECT * FROM t", "-", true},
			{0, ms(2), protoSimple, "DISCARD ALL", "-", false},
			{0, ms(3), protoSimple, "SELECT 1", "-", false},
			{1, ms(4), protoSimple, "SELECT pg_advisory_lock(7)", "-", true},
			{1, ms(5.01), protoEnd, "", "-", false},
		},
	}, {
		name: "several statements in one simple query are one arrival",
		lines: []logLine{
			{at: "10:00:00.000", session: "a", msg: "duration: 1.000 ms  statement: BEGIN; INSERT INTO t VALUES (1); COMMIT;"},
			{at: "10:00:00.002", session: "a", msg: "duration: 1.000 ms  statement: BEGIN; INSERT INTO t VALUES (2)"},
			{at: "10:00:00.004", session: "a", msg: "duration: 1.000 ms  statement: COMMIT"},
		},
		want: []got{
			{0, 0, protoSimple, "BEGIN; INSERT INTO t VALUES (1); COMMIT;", "-", false},
			{0, ms(2), protoSimple, "BEGIN; INSERT INTO t VALUES (2)", "-", true},
			{0, ms(4), protoSimple, "COMMIT", "-", false},
		},
	}, {
		name: "COPY FROM STDIN and TO STDOUT",
		lines: []logLine{
			{at: "10:00:00.000", session: "a", msg: "duration: 1.000 ms  statement: COPY t FROM STDIN WITH (FORMAT csv)"},
			{at: "10:00:00.002", session: "a", msg: "duration: 1.000 ms  statement: copy (select 1) to stdout"},
		},
		want: []got{
			{0, 0, protoCopyIn, "COPY t FROM STDIN WITH (FORMAT csv)", "-", false},
			{0, ms(2), protoCopyOut, "copy (select 1) to stdout", "-", false},
		},
	}, {
		name: "only client backends replay; lines without a session are skipped",
		lines: []logLine{
			{at: "10:00:00.000", session: "", msg: "database system is ready to accept connections", backend: "postmaster"},
			{at: "10:00:00.001", session: "w", msg: "duration: 1.000 ms  statement: SELECT cron.job()", backend: "pg_cron scheduler"},
			{at: "10:00:00.002", session: "a", msg: "connection authorized: user=app database=shop application_name=web"},
			{at: "10:00:00.003", session: "a", msg: "duration: 1.000 ms  statement: SELECT 1"},
		},
		want: []got{{0, 0, protoSimple, "SELECT 1", "-", false}},
	}, {
		name: "a statement logged long after it started is read again when it is due",
		lines: []logLine{
			{at: "10:00:00.000", session: "b", msg: "duration: 0.001 ms  statement: SELECT 'b1'"},
			{at: "10:00:01.000", session: "b", msg: "duration: 0.001 ms  statement: SELECT 'b2'"},
			{at: "10:00:02.000", session: "b", msg: "duration: 0.001 ms  statement: SELECT 'b3'"},
			{at: "10:00:03.000", session: "b", msg: "duration: 0.001 ms  statement: SELECT 'b4'"},
			{at: "10:00:05.000", session: "a", msg: "duration: 4500.000 ms  statement: SELECT 'a1 (long)'"},
			{at: "10:00:05.100", session: "c", msg: "duration: 0.001 ms  statement: SELECT 'c1'"},
			{at: "10:00:09.000", session: "b", msg: "duration: 6000.000 ms  statement: SELECT 'b5 (long)'"},
			{at: "10:00:09.100", session: "a", msg: "duration: 0.001 ms  statement: SELECT 'a2'"},
		},
		want: []got{
			{0, 0, protoSimple, "SELECT 'b1'", "-", false},
			{1, ms(500.001), protoSimple, "SELECT 'a1 (long)'", "-", false},
			{0, ms(1000), protoSimple, "SELECT 'b2'", "-", false},
			{0, ms(2000), protoSimple, "SELECT 'b3'", "-", false},
			{0, ms(3000), protoSimple, "SELECT 'b4'", "-", false},
			{0, ms(3000.001), protoSimple, "SELECT 'b5 (long)'", "-", false},
			{2, ms(5100), protoSimple, "SELECT 'c1'", "-", false},
			{1, ms(9100), protoSimple, "SELECT 'a2'", "-", false},
		},
	}, {
		name: "statements are due in start order across sessions; within a session in log order",
		lines: []logLine{
			{at: "10:00:00.000", session: "a", msg: "duration: 0.001 ms  statement: SELECT 'a1'"},
			{at: "10:00:01.000", session: "b", msg: "duration: 900.000 ms  statement: SELECT 'b1'"}, // started at 0.100
			{at: "10:00:01.001", session: "a", msg: "duration: 0.500 ms  statement: SELECT 'a2'"},   // started at 1.0005
			{at: "10:00:01.001", session: "a", msg: "duration: 0.800 ms  statement: SELECT 'a3'"},   // 1.0002, but after a2
		},
		want: []got{
			{0, 0, protoSimple, "SELECT 'a1'", "-", false},
			{1, ms(100.001), protoSimple, "SELECT 'b1'", "-", false},
			{0, ms(1000.501), protoSimple, "SELECT 'a2'", "-", false},
			{0, ms(1000.501), protoSimple, "SELECT 'a3'", "-", false},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := openLines(t, Config{}, tc.lines...)
			if err != nil {
				t.Fatal(err)
			}
			g := gotOf(drain(t, w))
			if !reflect.DeepEqual(g, tc.want) {
				t.Errorf("replayed\n%v\nwant\n%v", g, tc.want)
			}
			if errs := w.CapturedErrors(); !reflect.DeepEqual(errs, orEmpty(tc.errs)) {
				t.Errorf("captured errors %v, want %v", errs, tc.errs)
			}
			var ends int64
			for _, a := range tc.want {
				if a.proto == protoEnd {
					ends++
				}
			}
			if n := w.Statements() + w.Summary().SessionEnds; n != int64(len(tc.want)) {
				t.Errorf("Statements %d + session ends %d, want %d arrivals", w.Statements(), w.Summary().SessionEnds, len(tc.want))
			}
			if w.Summary().SessionEnds != ends {
				t.Errorf("session ends %d, want %d", w.Summary().SessionEnds, ends)
			}
		})
	}
}

func orEmpty(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

// A record of 23 (PostgreSQL 9.0–12), 24 (13), 25 or 26 (14 and later) columns.
func TestColumnCounts(t *testing.T) {
	for cols := minColumns; cols <= maxColumns; cols++ {
		t.Run(fmt.Sprint(cols), func(t *testing.T) {
			path := writeCapture(t, csvlogOf(cols,
				logLine{at: "10:00:00.000", session: "a", msg: "duration: 0.010 ms  statement: SELECT 1"},
				logLine{at: "10:00:00.100", session: "a", msg: "duration: 0.010 ms  statement: SELECT 2"}))
			w, err := Open(context.Background(), Config{Capture: path})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(drain(t, w)); got != 2 || w.Statements() != 2 || w.Sessions() != 1 {
				t.Errorf("%d arrivals, %d statements, %d sessions; want 2, 2, 1", got, w.Statements(), w.Sessions())
			}
		})
	}
}

// PostgreSQL quotes every text field and doubles quotes inside; a message may span
// lines. This is a record as PostgreSQL 15 wrote it.
func TestQuotedMultilineRecord(t *testing.T) {
	capture := `2026-11-30 16:15:15.757 UTC,"postgres","postgres",30933,"127.0.0.1:58158",6b0da113.78d5,4,"SELECT",2026-11-30 16:15:15 UTC,3/0,0,LOG,00000,"duration: 1.160 ms  statement: insert into t values (1, 'it''s
multi, ""quoted""'); select 1; select 2",,,,,,,,,"psql","client backend",,0
2026-11-30 16:15:16.422 UTC,"postgres","postgres",30978,"127.0.0.1:58178",6b0da114.7902,5,"INSERT",2026-11-30 16:15:16 UTC,3/8,727,LOG,00000,"duration: 0.186 ms  execute stmtcache_b9: insert into t values ($1, $2)","parameters: $1 = '5', $2 = 'a''b""c'",,,,,,,,"expapp","client backend",,0
`
	w, err := Open(context.Background(), Config{Capture: writeCapture(t, capture)})
	if err != nil {
		t.Fatal(err)
	}
	g := gotOf(drain(t, w))
	want := []got{
		{0, 0, protoSimple, "insert into t values (1, 'it''s\nmulti, \"quoted\"'); select 1; select 2", "-", false},
		{1, ms(665.974), protoNamed, "insert into t values ($1, $2)", `5|a'b"c`, false},
	}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("replayed\n%v\nwant\n%v", g, want)
	}
}

func TestFilter(t *testing.T) {
	lines := []logLine{
		{at: "10:00:00.000", session: "a", db: "shop", user: "app", app: "web", msg: "duration: 0.010 ms  statement: SELECT 'shop app web'"},
		{at: "10:00:00.001", session: "b", db: "shop", user: "batch", app: "cron", msg: "duration: 0.010 ms  statement: SELECT 'shop batch cron'"},
		{at: "10:00:00.002", session: "c", db: "crm", user: "app", app: "web", msg: "duration: 0.010 ms  statement: SELECT 'crm app web'"},
		{at: "10:00:00.003", session: "a", db: "shop", user: "app", app: "web", sev: "ERROR", state: "42P01", msg: "relation does not exist", query: "SELECT * FROM nope"},
		{at: "10:00:00.004", session: "c", db: "crm", user: "app", app: "web", sev: "ERROR", state: "42P01", msg: "relation does not exist", query: "SELECT * FROM nada"},
	}
	tests := []struct {
		filter Filter
		want   []string
	}{
		{Filter{}, []string{"SELECT 'shop app web'", "SELECT 'shop batch cron'", "SELECT 'crm app web'", "SELECT * FROM nope", "SELECT * FROM nada"}},
		{Filter{Database: "shop"}, []string{"SELECT 'shop app web'", "SELECT 'shop batch cron'", "SELECT * FROM nope"}},
		{Filter{User: "app"}, []string{"SELECT 'shop app web'", "SELECT 'crm app web'", "SELECT * FROM nope", "SELECT * FROM nada"}},
		{Filter{Application: "cron"}, []string{"SELECT 'shop batch cron'"}},
		{Filter{Database: "shop", User: "app", Application: "web"}, []string{"SELECT 'shop app web'", "SELECT * FROM nope"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%+v", tc.filter), func(t *testing.T) {
			w, err := openLines(t, Config{Filter: tc.filter}, lines...)
			if err != nil {
				t.Fatal(err)
			}
			var texts []string
			sessions := map[int32]bool{}
			for _, a := range drain(t, w) {
				texts = append(texts, a.st.text)
				sessions[a.session] = true
			}
			if !reflect.DeepEqual(texts, tc.want) {
				t.Errorf("replayed %q, want %q", texts, tc.want)
			}
			if w.Sessions() != len(sessions) || w.Statements() != int64(len(tc.want)) {
				t.Errorf("Sessions %d Statements %d, want %d and %d", w.Sessions(), w.Statements(), len(sessions), len(tc.want))
			}
		})
	}
}

// The summary counts what the capture holds.
func TestSummary(t *testing.T) {
	w, err := openLines(t, Config{},
		logLine{at: "10:00:00.000", session: "a", msg: "connection authorized: user=app database=shop"},
		logLine{at: "10:00:00.100", session: "a", msg: "duration: 50.000 ms  statement: BEGIN"},
		logLine{at: "10:00:03.000", session: "a", msg: "duration: 2500.000 ms  execute S_1: SELECT $1", detail: "parameters: $1 = 'x'"},
		logLine{at: "10:00:03.000", session: "a", msg: "execute fetch from S_1/C_1: SELECT $1", detail: "parameters: $1 = 'x'"},
		logLine{at: "10:00:03.001", session: "a", sev: "ERROR", state: "22012", msg: "division by zero", query: "SELECT 1/$1::int"},
		logLine{at: "10:00:03.002", session: "b", sev: "ERROR", state: "57014", msg: "canceling statement due to user request"},
		logLine{at: "10:00:03.003", session: "b", msg: "duration: 0.100 ms  statement: COPY t FROM STDIN"},
	)
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{Records: 7, Statements: 4, Sessions: 2, Fingerprints: 4, Simple: 2, Extended: 2, FromErrors: 1, StandIns: 1,
		CopyIn: 1, CapturedErrors: 1, Unattributed: 1, SessionEnds: 1, Fetches: 1, Long: 1,
		Span: ms(2953), Longest: 2500 * time.Millisecond}
	if got := w.Summary(); got != want {
		t.Errorf("summary\n%+v\nwant\n%+v", got, want)
	}
}

// Speed divides the captured gaps; Duration is the span at that speed.
func TestSpeed(t *testing.T) {
	lines := []logLine{
		{at: "10:00:00.000", session: "a", msg: "statement: SELECT 1"},
		{at: "10:00:04.000", session: "b", msg: "statement: SELECT 2"},
	}
	for _, tc := range []struct {
		speed float64
		last  time.Duration
	}{{0, 4 * time.Second}, {1, 4 * time.Second}, {2, 2 * time.Second}, {0.5, 8 * time.Second}} {
		w, err := openLines(t, Config{Speed: tc.speed}, lines...)
		if err != nil {
			t.Fatal(err)
		}
		as := drain(t, w)
		if as[1].due != tc.last || w.Duration() != tc.last {
			t.Errorf("speed %g: last due %v, Duration %v, want %v", tc.speed, as[1].due, w.Duration(), tc.last)
		}
	}
}

// Every kind of bad input is an ErrInvalid naming the file and line, and saying
// how to fix it.
func TestBadInput(t *testing.T) {
	good := csvlogOf(26, logLine{at: "10:00:00.000", session: "a", msg: "statement: SELECT 1"})
	tests := []struct {
		name    string
		content *string // nil: no file
		cfg     Config
		want    []string // in the message
	}{
		{name: "missing file", want: []string{"capture.csv: the capture does not exist", "log_destination = 'csvlog'"}},
		{name: "empty file", content: ptr(""), want: []string{"capture.csv:1: the capture is empty", "log_min_duration_statement = 0"}},
		{name: "plain-text log", content: ptr("2026-03-02 10:00:00.000 UTC [4242] LOG:  statement: SELECT 1\n"),
			want: []string{"capture.csv:1: this is not a PostgreSQL csvlog", "1 comma-separated fields", "logging_collector = on",
				"aws rds download-db-log-file-portion", "--starting-token 0 --output text", "parameter group"}},
		{name: "plain-text log with quotes", content: ptr(`2026-03-02 10:00:00 UTC [1] LOG:  parameter "x" changed` + "\n"),
			want: []string{"capture.csv:1: this is not a PostgreSQL csvlog", "log_destination = 'csvlog'"}},
		{name: "header row", content: ptr("log_time,user_name,database_name,process_id,connection_from,session_id,session_line_num,command_tag,session_start_time,virtual_transaction_id,transaction_id,error_severity,sql_state_code,message,detail,hint,internal_query,internal_query_pos,context,query,query_pos,location,application_name,backend_type,leader_pid,query_id\n" + good),
			want: []string{"capture.csv:1: the file starts with a header row"}},
		{name: "too few columns later", content: ptr(good + "2026-03-02 10:00:01.000 UTC,a,b,c\n"),
			want: []string{"capture.csv:2: this record is not a csvlog record", "4 comma-separated fields"}},
		{name: "too many columns", content: ptr(strings.Repeat("x,", 30) + "x\n"),
			want: []string{"capture.csv:1: this is not a PostgreSQL csvlog", "31 comma-separated fields", "23 to 26"}},
		{name: "bad timestamp", content: ptr(strings.Replace(good, "2026-03-02 10:00:00.000 UTC", "yesterday", 1)),
			want: []string{"capture.csv:1: log_time \"yesterday\" is not a PostgreSQL timestamp"}},
		{name: "cut inside a quoted field", content: ptr(good + `2026-03-02 10:00:01.000 UTC,"app","shop",1,"h",a,2,"SELECT",2026-03-02 10:00:00 UTC,3/1,0,LOG,00000,"statement: SELECT 'unfinished`),
			want: []string{"capture.csv:2: this record is not a csvlog record", "extraneous or missing \" in quoted-field"}},
		{name: "no statements", content: ptr(csvlogOf(26, logLine{at: "10:00:00.000", session: "a", msg: "connection authorized: user=app database=shop"})),
			want: []string{"capture.csv: the capture holds no statement (1 log records)", "log_statement = 'all'"}},
		{name: "the filter matches nothing",
			content: ptr(csvlogOf(26,
				logLine{at: "10:00:00.000", session: "a", db: "shop", user: "app", app: "web", msg: "statement: SELECT 1"},
				logLine{at: "10:00:00.001", session: "a", db: "shop", user: "app", app: "web", msg: "statement: SELECT 2"},
				logLine{at: "10:00:00.002", session: "b", db: "crm", user: "ops", app: "psql", msg: "statement: SELECT 3"})),
			cfg: Config{Filter: Filter{Database: "shpo"}},
			want: []string{`capture.csv: the filter (database "shpo") matches none of the capture's 3 statements`,
				`databases "shop" (2), "crm" (1); users "app" (2), "ops" (1); applications "web" (2), "psql" (1)`}},
		{name: "parameters not logged", content: ptr(csvlogOf(26,
			logLine{at: "10:00:00.000", session: "a", msg: "duration: 0.100 ms  execute <unnamed>: SELECT $1"})),
			want: []string{"capture.csv:1: this statement takes 1 parameters but the log holds 0", "log_parameter_max_length = -1"}},
		{name: "parameters unreadable", content: ptr(csvlogOf(26,
			logLine{at: "10:00:00.000", session: "a", msg: "duration: 0.100 ms  execute <unnamed>: SELECT $1", detail: "parameters: $1 = 'unterminated"})),
			want: []string{"capture.csv:1: the parameters of this statement cannot be read"}},
		{name: "negative speed", content: ptr(good), cfg: Config{Speed: -1}, want: []string{"speed -1: must be a positive factor"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "capture.csv")
			if tc.content != nil {
				path = writeCapture(t, *tc.content)
			}
			cfg := tc.cfg
			cfg.Capture = path
			_, err := Open(context.Background(), cfg)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v, want ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not say %q", err, w)
				}
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestTimestamps(t *testing.T) {
	base := int64(1772445600) * 1e9 // 2026-03-02 10:00:00 UTC
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"2026-03-02 10:00:00.000 UTC", base, true},
		{"2026-03-02 10:00:00.123 UTC", base + 123e6, true},
		{"2026-03-02 10:00:00.123456 UTC", base + 123456e3, true},
		{"2026-03-02 10:00:00 UTC", base, true},
		{"2026-03-02 11:00:00.000 CET", base, true},
		{"2026-03-02 12:00:00.000 +02", base, true},
		{"2026-03-02 15:30:00.000 +05:30", base, true},
		{"2026-03-02 04:30:00.000 -0530", base, true},
		{"2026-03-02 05:00:00.000 EST", base, true},
		{"2026-03-02 10:00:00.000 XYZT", base, true}, // unknown: a constant offset
		{"2026-03-02 10:00:00.000", base, true},
		{"2026-03-02T10:00:00.000 UTC", 0, false},
		{"2026-13-02 10:00:00.000 UTC", 0, false},
		{"2026-03-02 10:00:00. UTC", 0, false},
		{"2026-03-02 10:00:00.000 +2", 0, false},
		{"2026-03-02 10:00:00.000 U1C", 0, false},
		{"2026-03-02 10:00", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		var z tzCache
		got, ok := z.parse(tc.in)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("parse(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseLogMessage(t *testing.T) {
	tests := []struct {
		in   string
		want logMsg
	}{
		{"duration: 0.123 ms  statement: SELECT 1", logMsg{kind: msgStatement, duration: 123000, text: "SELECT 1"}},
		{"duration: 12.5 ms  execute <unnamed>: SELECT $1", logMsg{kind: msgExecute, duration: 12500000, text: "SELECT $1"}},
		{"duration: 1 ms  execute S_1: SELECT 1", logMsg{kind: msgExecute, duration: 1000000, named: true, text: "SELECT 1"}},
		{"duration: 1.000 ms  execute <unnamed>/C_1: SELECT 1", logMsg{kind: msgExecute, duration: 1000000, text: "SELECT 1"}},
		{"duration: 0.010 ms  parse <unnamed>: SELECT 1", logMsg{kind: msgParseBind, duration: 10000, text: "SELECT 1"}},
		{"duration: 0.010 ms  bind S_1/C_1: SELECT 1", logMsg{kind: msgParseBind, duration: 10000, named: true, bind: true, text: "SELECT 1"}},
		{"duration: 0.010 ms  execute fetch from S_1/C_1: SELECT 1", logMsg{kind: msgFetch, duration: 10000}},
		{"duration: 0.010 ms  plan:\nQuery Text: SELECT 1", logMsg{kind: msgOther, duration: 10000}},
		{"duration: 0.010 ms", logMsg{kind: msgDuration, duration: 10000}},
		{"statement: SELECT 1; SELECT 2", logMsg{kind: msgStatement, duration: -1, text: "SELECT 1; SELECT 2"}},
		{"execute S_3: SELECT 1", logMsg{kind: msgExecute, duration: -1, named: true, text: "SELECT 1"}},
		{"execute fetch from S_3/C_4: SELECT 1", logMsg{kind: msgFetch, duration: -1}},
		{"disconnection: session time: 0:00:01.000 user=a database=b host=c port=1", logMsg{kind: msgDisconnect, duration: -1}},
		{"connection authorized: user=a database=b", logMsg{kind: msgOther, duration: -1}},
		{"duration: x ms  statement: SELECT 1", logMsg{kind: msgOther, duration: -1}},
		{"duration: 1.0 ms statement: SELECT 1", logMsg{kind: msgOther, duration: -1}},
		{"execute S_1 SELECT 1", logMsg{kind: msgOther, duration: -1}},
	}
	for _, tc := range tests {
		if got := parseLogMessage(tc.in); got != tc.want {
			t.Errorf("parseLogMessage(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestParseParams(t *testing.T) {
	tests := []struct {
		in   string
		want string // paramString, or "error"
		n    int    // bytes read
	}{
		{"$1 = '5'", "5", 8},
		{"$1 = '5', $2 = NULL, $3 = ''", "5|<NULL>|", 28},
		{"$1 = 'it''s', $2 = 'a, $3 = ''b'''", "it's|a, $3 = 'b'", 34},
		{"$1 = 'two\nlines'", "two\nlines", 16},
		{"$1 = '0'\nPL/pgSQL function f() line 3", "0", 8},
		{"$1 = 'x'...", "x", 8},
		{"$2 = '5'", "error", 0},
		{"$1 = '5', $3 = '6'", "error", 0},
		{"$1 = 5", "error", 0},
		{"$1 = 'open", "error", 0},
		{"$1 = NUL", "error", 0},
		{"$ = '1'", "error", 0},
		{"", "error", 0},
	}
	for _, tc := range tests {
		vals, n, err := parseParams(tc.in)
		got := paramString(vals)
		if err != nil {
			got = "error"
		}
		if got != tc.want || err == nil && n != tc.n {
			t.Errorf("parseParams(%q) = %q, %d, %v; want %q, %d", tc.in, got, n, err, tc.want, tc.n)
		}
	}
}
