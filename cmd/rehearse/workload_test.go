package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/result"
)

// scriptScenario writes a script-workload scenario and its files into a new
// directory and returns the scenario's path. files maps names to contents; the
// scenario's workload section is given whole.
func scriptScenario(t *testing.T, workload string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sc := "name: custom\nworkload:\n" + workload + "load:\n  sessions: 20\n  rate: 20\n  duration: 2s\n  pool_size: 2\n"
	p := filepath.Join(dir, "custom.yaml")
	if err := os.WriteFile(p, []byte(sc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every bad input of the script workload is refused with exit 2, before the load
// starts, with file:line and what to do.
func TestScriptWorkloadBadInput(t *testing.T) {
	dsn := sharedDSN(t)
	ok := "SELECT 1;\n"
	tests := []struct {
		name     string
		workload string
		files    map[string]string
		needsDB  bool
		want     []string
	}{
		{"script syntax error", "  name: script\n  scripts:\n    - {file: a.sql}\n",
			map[string]string{"a.sql": "\\set x (1 +\nSELECT :x;\n"}, false, []string{"a.sql:1:"}},
		{"undefined variable", "  name: script\n  scripts:\n    - {file: a.sql}\n",
			map[string]string{"a.sql": "SELECT :nosuch;\n"}, false, []string{"a.sql:1:", "nosuch"}},
		{"bad set expression", "  name: script\n  scripts:\n    - {file: a.sql}\n",
			map[string]string{"a.sql": "\\set x frobnicate(1)\nSELECT :x;\n"}, false, []string{"a.sql:1:", "frobnicate"}},
		{"unsupported meta-command", "  name: script\n  scripts:\n    - {file: a.sql}\n",
			map[string]string{"a.sql": "\\shell echo hi\nSELECT 1;\n"}, false, []string{"a.sql:1:", `\shell is not supported`}},
		{"zero weight", "  name: script\n  scripts:\n    - {file: a.sql, weight: 0}\n",
			map[string]string{"a.sql": ok}, false, []string{"workload.scripts[0].weight: must be a positive weight"}},
		{"negative weight", "  name: script\n  scripts:\n    - {file: a.sql, weight: -3}\n",
			map[string]string{"a.sql": ok}, false, []string{"workload.scripts[0].weight: must be a positive weight"}},
		{"missing script file", "  name: script\n  scripts:\n    - {file: nosuch.sql}\n",
			nil, false, []string{"nosuch.sql"}},
		{"empty script file", "  name: script\n  scripts:\n    - {file: a.sql}\n",
			map[string]string{"a.sql": ""}, false, []string{"a.sql", "empty"}},
		{"setup that fails", "  name: script\n  setup: schema.sql\n  scripts:\n    - {file: a.sql}\n",
			map[string]string{"a.sql": ok, "schema.sql": "CREATE TABLE IF NOT EXISTS cli_setup_ok (x int);\nSELECT * FROM cli_no_such_table;\n"}, true,
			[]string{"schema.sql:2", "cli_no_such_table"}},
		{"invariant that fails", "  name: script\n  scripts:\n    - {file: a.sql}\n  invariants:\n    - {name: broken, sql: \"SELECT nosuchcol FROM pg_class\", expect: unchanged}\n",
			map[string]string{"a.sql": ok}, true, []string{"custom.yaml:7:", "workload.invariants[0].sql", "broken", "nosuchcol"}},
		{"invariant with no single value", "  name: script\n  scripts:\n    - {file: a.sql}\n  invariants:\n    - {name: many, sql: \"SELECT relname FROM pg_class\", expect: unchanged}\n",
			map[string]string{"a.sql": ok}, true, []string{"custom.yaml:7:", "workload.invariants[0].sql", "many", "one row"}},
		{"acknowledged table that does not exist", "  name: script\n  scripts:\n    - {file: a.sql}\n  acknowledged: {table: cli_no_orders, column: request_id}\n",
			map[string]string{"a.sql": "INSERT INTO cli_no_orders (request_id) VALUES (:txid);\n"}, true,
			[]string{"custom.yaml:6:", "workload.acknowledged.table", "cli_no_orders"}},
		{"acknowledged column that does not exist", "  name: script\n  setup: schema.sql\n  scripts:\n    - {file: a.sql}\n  acknowledged: {table: cli_ack_orders, column: request_id}\n",
			map[string]string{"a.sql": "INSERT INTO cli_ack_orders (id) VALUES (1);\nSELECT :txid;\n", "schema.sql": "CREATE TABLE IF NOT EXISTS cli_ack_orders (id int);\n"}, true,
			[]string{"custom.yaml:7:", "workload.acknowledged.column", "has no column request_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := scriptScenario(t, tt.workload, tt.files)
			out := filepath.Join(t.TempDir(), "out")
			r := cli(t, t.Context(), "run", sc, "--dsn", dsn, "--out", out, "--quiet")
			if r.code != exitInput {
				t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", r.code, r.out, r.err)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.err, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.err)
				}
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("the output directory was left behind for bad input: %v", err)
			}
			if !tt.needsDB {
				// The same problem is found without a database by scenario validate.
				v := cli(t, t.Context(), "scenario", "validate", sc)
				if v.code != exitInput || !strings.Contains(v.err, tt.want[0]) {
					t.Errorf("scenario validate: exit %d, stderr %q", v.code, v.err)
				}
			}
		})
	}
}

// replayScenario writes a replay scenario over capture (a path) with the replay
// test capture's schema as its setup.
func replayScenario(t *testing.T, capture, filter string) string {
	t.Helper()
	schema, err := filepath.Abs("../../workload/replay/testdata/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "replay.yaml", "name: replay\nworkload:\n  name: replay\n  capture: "+capture+"\n  setup: "+schema+
		"\n  setup_check: \"SELECT 1 FROM pg_tables WHERE tablename = 'orders'\"\n"+filter+"load:\n  duration: 60s\ntarget:\n  fsync: false\n")
}

// A replay of the test capture runs every statement the capture holds, on the
// embedded target after its setup, and tells the capture's own errors apart.
func TestReplayOfTheTestCapture(t *testing.T) {
	capture, err := filepath.Abs("../../workload/replay/testdata/capture.csv")
	if err != nil {
		t.Fatal(err)
	}
	// The capture's session mix (its statements are counted in capture.json).
	var exp struct {
		Statements int64 `json:"statements"`
	}
	b, err := os.ReadFile("../../workload/replay/testdata/capture.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	sc := replayScenario(t, capture, "  filter: {database: shop, application: shopapp}\n")
	out := filepath.Join(t.TempDir(), "o")
	r := cli(t, t.Context(), "run", sc, "--out", out, "--quiet")
	if r.code != 0 && r.code != exitSLO {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	res := readResult(t, out)
	if res.Totals.Transactions != exp.Statements {
		t.Errorf("the replay ran %d statements; the capture holds %d", res.Totals.Transactions, exp.Statements)
	}
	var captured int64
	for _, o := range res.Operations {
		captured += o.CapturedErrors
		if o.Errors < o.CapturedErrors {
			t.Errorf("%s: %d failed in the replay, %d in the capture", o.Name, o.Errors, o.CapturedErrors)
		}
	}
	if captured == 0 || res.Integrity.LostWriteCheck != result.LostWriteCheckNone {
		t.Errorf("captured errors %d, integrity %+v", captured, res.Integrity)
	}
	md := readFileString(t, filepath.Join(out, "report.md"))
	if !strings.Contains(md, "## Captured statements") {
		t.Error("report.md has no captured statements section")
	}
}

// A replay's bad input exits 2 before anything starts, saying what to do.
func TestReplayBadInput(t *testing.T) {
	capture, err := filepath.Abs("../../workload/replay/testdata/capture.csv")
	if err != nil {
		t.Fatal(err)
	}
	plain := writeFile(t, "postgresql.log", "2026-11-30 10:00:00.000 UTC [123] LOG:  statement: SELECT 1\n")
	tests := []struct {
		name, capture, filter string
		want                  []string
	}{
		{"not a csvlog", plain, "", []string{"postgresql.log", "log_destination = 'csvlog'", "log_min_duration_statement"}},
		{"missing capture", filepath.Join(t.TempDir(), "nosuch.csv"), "", []string{"nosuch.csv"}},
		{"no statements after the filter", capture, "  filter: {database: nosuchdb}\n", []string{"nosuchdb", "shop"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := replayScenario(t, tt.capture, tt.filter)
			out := filepath.Join(t.TempDir(), "o")
			r := cli(t, t.Context(), "run", sc, "--out", out, "--quiet")
			if r.code != exitInput {
				t.Fatalf("exit %d, want 2\n%s", r.code, r.err)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.err, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.err)
				}
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("output left behind: %v", err)
			}
		})
	}
}

// On the embedded target too, an invariant the database refuses is exit 2 naming
// the scenario's line and field, and the run leaves no output directory behind:
// not even the log of the server it started to find out.
func TestBadInvariantOnTheEmbeddedTarget(t *testing.T) {
	sc := scriptScenario(t, "  name: script\n  scripts:\n    - {file: a.sql}\n  invariants:\n    - {name: broken, sql: \"SELECT nosuchcol FROM pg_class\", expect: unchanged}\n",
		map[string]string{"a.sql": "SELECT 1;\n"})
	out := filepath.Join(t.TempDir(), "out")
	r := cli(t, t.Context(), "run", sc, "--out", out, "--quiet")
	if r.code != exitInput || !strings.Contains(r.err, "custom.yaml:7:") || !strings.Contains(r.err, "workload.invariants[0].sql") {
		t.Fatalf("exit %d, want 2 naming custom.yaml:7 and the field\nstderr: %s", r.code, r.err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the output directory was left behind for bad input: %v", err)
	}
}
