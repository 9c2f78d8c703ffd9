package replay

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// logLine is one csvlog record in a test capture.
type logLine struct {
	at      string // the time of day, "10:00:00.000"; the date is fixed
	session string
	user    string // default "app"
	db      string // default "shop"
	app     string // default "web"
	sev     string // default LOG
	state   string
	msg     string
	detail  string
	context string
	query   string
	backend string // default "client backend"
}

// csvlogOf writes lines as PostgreSQL does, with cols columns per record.
func csvlogOf(cols int, lines ...logLine) string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	for _, l := range lines {
		f := make([]string, cols)
		f[colLogTime] = "2026-03-02 " + l.at + " UTC"
		f[colUserName] = or(l.user, "app")
		f[colDatabaseName] = or(l.db, "shop")
		f[colProcessID] = "4242"
		f[colConnectionFrom] = "10.0.0.7:50000"
		f[colSessionID] = l.session
		f[colSessionLineNum] = "1"
		f[colCommandTag] = "SELECT"
		f[colSessionStartTime] = "2026-03-02 10:00:00 UTC"
		f[colVirtualTransactionID] = "3/1"
		f[colTransactionID] = "0"
		f[colErrorSeverity] = or(l.sev, "LOG")
		f[colSQLStateCode] = or(l.state, "00000")
		f[colMessage] = l.msg
		f[colDetail] = l.detail
		f[colContext] = l.context
		f[colQuery] = l.query
		f[colApplicationName] = or(l.app, "web")
		if cols > colBackendType {
			f[colBackendType] = or(l.backend, "client backend")
		}
		if l.session == "" {
			f[colUserName], f[colDatabaseName], f[colApplicationName] = "", "", ""
		}
		_ = w.Write(f)
	}
	w.Flush()
	return b.String()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// writeCapture writes content to a capture file in a fresh directory.
func writeCapture(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "capture.csv")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// arrival is one entry of a drained schedule.
type arrival struct {
	session int32
	due     time.Duration
	st      *stmt
	op      string
}

// drain opens a schedule and takes every arrival with its statement, as the load
// generator and its workers would, without running them.
func drain(t testing.TB, w *Workload) []arrival {
	t.Helper()
	a, err := w.Arrivals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	q := w.active.Load()
	var out []arrival
	for {
		s, due, ok := a.Next()
		if !ok {
			break
		}
		st := q.pop(s)
		if st == nil {
			t.Fatalf("arrival of session %d has no statement", s)
		}
		q.done(s, st)
		out = append(out, arrival{session: s, due: due, st: st, op: w.ops[st.op].Name})
	}
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// openLines opens a capture of lines (26 columns).
func openLines(t testing.TB, cfg Config, lines ...logLine) (*Workload, error) {
	t.Helper()
	cfg.Capture = writeCapture(t, csvlogOf(26, lines...))
	return Open(context.Background(), cfg)
}
