package replay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzCSVLog feeds arbitrary bytes to both passes over a capture: the first must
// accept them or reject them with ErrInvalid, never panic or hang; what it accepts,
// the second must schedule whole and in order, as the first counted it.
func FuzzCSVLog(f *testing.F) {
	f.Add([]byte(csvlogOf(26,
		logLine{at: "10:00:00.000", session: "a", msg: "duration: 0.500 ms  statement: BEGIN; SELECT 1"},
		logLine{at: "10:00:00.001", session: "a", msg: "duration: 0.200 ms  execute S_1: SELECT $1", detail: "parameters: $1 = 'x'"},
		logLine{at: "10:00:00.002", session: "a", sev: "ERROR", state: "22012", msg: "division by zero", query: "SELECT 1/$1", context: "unnamed portal with parameters: $1 = '0'"},
		logLine{at: "10:00:00.003", session: "b", msg: "statement: SET search_path = x"},
		logLine{at: "10:00:00.004", session: "a", msg: "disconnection: session time: 0:00:00.004 user=app database=shop host=h port=1"},
	)))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		cfg := Config{Capture: "fuzz.csv"}
		w, err := load(ctx, cfg, 1, bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		s, err := w.newSchedule(ctx, bytes.NewReader(data), int64(len(data)), io.NopCloser(nil))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		q := w.active.Load()
		var n int64
		last := time.Duration(0)
		for {
			sess, due, ok := s.Next()
			if !ok {
				break
			}
			n++
			if sess < 0 || int(sess) >= w.Sessions() {
				t.Fatalf("arrival of session %d, but there are %d", sess, w.Sessions())
			}
			if due < last {
				t.Fatalf("arrival due at %v after one due at %v", due, last)
			}
			last = due
			st := q.pop(sess)
			if st == nil || int(st.op) >= len(w.Ops()) {
				t.Fatalf("arrival %d: statement %v", n, st)
			}
			q.done(sess, st)
		}
		if err := s.Err(); err != nil {
			t.Fatalf("the second pass failed where the first did not: %v", err)
		}
		if want := w.Statements() + w.Summary().SessionEnds; n != want {
			t.Fatalf("%d arrivals, the first pass counted %d", n, want)
		}
	})
}

// FuzzFingerprint feeds arbitrary text to the SQL lexer: it must return the same
// analysis and fingerprint every time, bounded in length, never panic or hang.
func FuzzFingerprint(f *testing.F) {
	f.Add("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'it''s' FOR UPDATE")
	f.Fuzz(func(t *testing.T, sql string) {
		a1, fp1 := analyze(sql, nil)
		a2, fp2 := analyze(sql, make([]byte, 0, 7))
		if a1 != a2 || !bytes.Equal(fp1, fp2) {
			t.Fatalf("two analyses of %q differ: %+v %q, %+v %q", sql, a1, fp1, a2, fp2)
		}
		if len(fp1) > maxFingerprint+len(" …") {
			t.Fatalf("fingerprint of %d bytes", len(fp1))
		}
		if name := opName(string(fp1)); len(name) > 200 || utf8.ValidString(string(fp1)) && !utf8.ValidString(name) {
			t.Fatalf("op name %q", name)
		}
		if a1.stmts < 0 || a1.params < 0 {
			t.Fatalf("analysis %+v", a1)
		}
	})
}
