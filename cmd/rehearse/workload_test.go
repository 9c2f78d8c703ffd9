package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
			map[string]string{"a.sql": ok}, true, []string{"broken", "nosuchcol"}},
		{"invariant with no single value", "  name: script\n  scripts:\n    - {file: a.sql}\n  invariants:\n    - {name: many, sql: \"SELECT relname FROM pg_class\", expect: unchanged}\n",
			map[string]string{"a.sql": ok}, true, []string{"many", "one row"}},
		{"acknowledged table that does not exist", "  name: script\n  scripts:\n    - {file: a.sql}\n  acknowledged: {table: cli_no_orders, column: request_id}\n",
			map[string]string{"a.sql": "INSERT INTO cli_no_orders (request_id) VALUES (:txid);\n"}, true, []string{"cli_no_orders"}},
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
