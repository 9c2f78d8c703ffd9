package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/result"
)

const blueGreenOK = "preflight=ok create_green=ok green_sync=ok switchover=ok redirect=ok validate=ok keep_old_blue=ok delete_deployment=ok"

// stepDetail returns a step's detail from a migration record.
func stepDetail(t *testing.T, m *result.Migration, name string) map[string]any {
	t.Helper()
	for _, s := range m.Steps {
		if s.Name == name {
			return s.Detail
		}
	}
	t.Fatalf("no step %s in %+v", name, m.Steps)
	return nil
}

// runFailing runs a scenario that must exit 1 (a cutover step failed) and returns
// its result and stderr.
func runFailing(t *testing.T, args ...string) (*result.Result, string, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "o")
	r := cli(t, t.Context(), append(append([]string{"run"}, args...), "--out", out, "--quiet")...)
	if r.code != exitRuntime {
		t.Fatalf("exit %d, want %d\n%s\n%s", r.code, exitRuntime, r.out, r.err)
	}
	return readResult(t, out), r.err, out
}

// noGreenLeft fails when a green node's data directory survived the run.
func noGreenLeft(t *testing.T, out string) {
	t.Helper()
	if ents, _ := filepath.Glob(filepath.Join(out, "pg", "*green*", "PG_VERSION")); len(ents) != 0 {
		t.Errorf("green's data directories left behind: %v", ents)
	}
}

// Blue/green input the target cannot run is refused before anything starts.
func TestBlueGreenBadInput(t *testing.T) {
	bg := "cutover:\n  enabled: true\n  strategy: blue_green\n"
	dsnScenario := writeFile(t, "dsn.yaml", "name: bg\ntarget:\n  dsn: postgres://postgres@"+closedPort(t)+"/rehearse?sslmode=disable\n"+bg)
	oldGreen := writeFile(t, "old.yaml", "name: bg\n"+bg+"  green:\n    engine_version: \"9.6\"\n")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"a DSN target", []string{"run", dsnScenario, "--mode", "dry"}, []string{"blue_green", "target.dsn", "rehearse does not manage"}},
		{"a DSN target, wet", []string{"run", dsnScenario, "--mode", "wet"}, []string{"target.dsn", "rehearse does not manage"}},
		{"a DSN target's plan", []string{"plan", dsnScenario}, []string{"blue_green", "target.dsn"}},
		{"a DSN target, validated", []string{"scenario", "validate", dsnScenario}, []string{"cutover.strategy: blue_green", "target.dsn", "rehearse does not manage"}},
		{"a green engine version older than blue's", []string{"run", oldGreen, "--mode", "wet"}, []string{"cutover.green.engine_version 9.6 is older than blue's"}},
		{"rollback", []string{"run", cutoverScenario(t, "  strategy: blue_green\n"), "--mode", "wet", "--rollback"}, []string{"--rollback", "no failback"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "o")
			args := tt.args
			if args[0] == "run" {
				args = append(args, "--out", out)
			}
			r := cli(t, t.Context(), args...)
			if r.code != exitInput {
				t.Fatalf("exit %d, want %d\n%s\n%s", r.code, exitInput, r.out, r.err)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.err, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.err)
				}
			}
			if _, err := os.Stat(filepath.Join(out, "result.json")); err == nil {
				t.Error("a refused run wrote a result")
			}
		})
	}
}

// The smoke load through the proxy endpoint, blue/green: the writer moves to the
// green cluster, the sequences follow, nothing acknowledged is lost; an in-cluster
// run of the same load compares with it as a strategy comparison.
func TestBlueGreenWetCutoverAndStrategyComparison(t *testing.T) {
	res, out := runCutoverOut(t, cutoverScenario(t, "  strategy: blue_green\n"), "--mode", "wet", "--endpoint", "proxy")
	m := res.Migration
	stepsOK(t, m, blueGreenOK)
	checkIntegrity(t, res)
	if m.Strategy != "blue_green" || m.WriterBefore != "node1" || !strings.HasPrefix(m.WriterAfter, "node1-green-") {
		t.Errorf("strategy %s, writer %s -> %s", m.Strategy, m.WriterBefore, m.WriterAfter)
	}
	sw := stepDetail(t, m, "switchover")
	if sw["sequences_synced"] != 2.0 || sw["within_timeout"] != true || sw["rolled_back"] != false {
		t.Errorf("switchover detail: %v", sw)
	}
	if seqs, _ := sw["sequences"].([]any); len(seqs) != 2 || !strings.Contains(seqs[0].(string), "ledger_entries_id_seq") {
		t.Errorf("sequences synced: %v", sw["sequences"])
	}
	noGreenLeft(t, out)

	base := runCutover(t, cutoverScenario(t, ""), "--mode", "wet", "--endpoint", "proxy")
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	for p, r := range map[string]*result.Result{a: base, b: res} {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := result.Encode(f, r); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	html := filepath.Join(dir, "compare.html")
	r := cli(t, t.Context(), "report", "compare", a, b, "-o", html)
	if r.code != exitOK && r.code != exitSLO {
		t.Fatalf("compare exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	for _, w := range []string{"# Strategy comparison: cut (wet, in_cluster) → cut (wet, blue_green)", "## What users felt: in_cluster → blue_green", "| during | longest write stall |", "| cutover | lag at switchover |"} {
		if !strings.Contains(r.out, w) {
			t.Errorf("compare markdown lacks %q:\n%s", w, r.out)
		}
	}
	page, err := os.ReadFile(html)
	if err != nil || !strings.Contains(string(page), `id="strategies"`) {
		t.Errorf("compare html has no strategy table (%v)", err)
	}
}

// ordersScenario is the orders script workload (serial keys) under a blue/green
// cutover, with extra files and cutover settings.
func ordersScenario(t *testing.T, extraScripts, cutover string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	abs, err := filepath.Abs("../../scenarios/custom/orders")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sc := `name: orders
workload:
  name: script
  setup: ` + abs + `/schema.sql
  setup_check: "SELECT 1 FROM pg_tables WHERE tablename = 'orders'"
  scripts:
    - {file: ` + abs + `/place_order.sql, weight: 60, kind: write}
    - {file: ` + abs + `/lookup.sql, weight: 40, kind: read}
` + extraScripts + `  invariants:
    - {name: stock conserved, sql: "SELECT (SELECT sum(qty) FROM stock) + (SELECT coalesce(sum(qty), 0) FROM orders)", expect: unchanged}
  acknowledged: {table: orders, column: request_id}
load:
  sessions: 200
  rate: 150
  duration: 8s
  pool_size: 8
target:
  fsync: false
  dns_ttl: 1s
cutover:
  enabled: true
  strategy: blue_green
  warmup: 3s
  soak: 1s
  dns_propagation: 500ms
` + cutover
	p := filepath.Join(dir, "orders.yaml")
	if err := os.WriteFile(p, []byte(sc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Orders keyed by a sequence, through the dns endpoints: inserts after the
// switchover do not collide with blue's keys, because green's sequences were set
// past blue's.
func TestBlueGreenSerialKeysContinueOnGreen(t *testing.T) {
	res := runCutover(t, ordersScenario(t, "", "", nil), "--mode", "wet")
	m := res.Migration
	stepsOK(t, m, blueGreenOK)
	if in := res.Integrity; !in.Checked || in.LostAcknowledgedWrites != 0 {
		t.Errorf("integrity %+v", in)
	}
	for _, e := range res.Errors {
		if e.SQLState == "23505" {
			t.Errorf("inserts collided with blue's keys on green: %+v", e)
		}
	}
	var after int64
	for _, op := range res.Operations {
		if op.Name == "place_order" {
			after = op.Phases[result.PhaseAfter].Count - op.Phases[result.PhaseAfter].Errors
		}
	}
	if after == 0 {
		t.Error("no order was placed on green after the switchover")
	}
	if seqs, _ := stepDetail(t, m, "switchover")["sequences"].([]any); len(seqs) != 1 || !strings.HasPrefix(seqs[0].(string), "public.orders_id_seq") {
		t.Errorf("sequences synced: %v", seqs)
	}
}

// A table without a primary key blocks a blue/green deployment: the wet run stops
// at the preflight, before anything is created, naming the table; a dry run lists
// it as a blocking finding.
func TestBlueGreenTableWithoutPrimaryKey(t *testing.T) {
	extra := "    - {file: audit.sql, weight: 10, kind: write}\n"
	files := map[string]string{"audit.sql": "INSERT INTO audit (what) VALUES ('order');\n"}
	sc := ordersScenario(t, extra, "", files)
	// The audit table has no primary key (the setup file creates it too).
	body, _ := os.ReadFile(sc)
	setup := filepath.Join(filepath.Dir(sc), "schema.sql")
	abs, _ := filepath.Abs("../../scenarios/custom/orders/schema.sql")
	orig, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(setup, append(orig, []byte("\nCREATE TABLE audit (at timestamptz NOT NULL DEFAULT now(), what text);\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sc, []byte(strings.Replace(string(body), abs, setup, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"wet", "dry"} {
		t.Run(mode, func(t *testing.T) {
			res, stderr, out := runFailing(t, sc, "--mode", mode)
			m := res.Migration
			if !strings.Contains(stderr, "public.audit") {
				t.Errorf("stderr does not name the table:\n%s", stderr)
			}
			if got := m.Steps[0].Detail["tables have a primary key or replica identity"]; !strings.HasPrefix(got.(string), "blocking: without one: public.audit") {
				t.Errorf("preflight finding %q", got)
			}
			if m.Steps[0].Status != "failed" || m.Steps[1].Name != "create_green" || m.Steps[1].Status != "skipped" {
				t.Errorf("steps %+v", m.Steps)
			}
			noGreenLeft(t, out)
		})
	}
}

// DDL on blue while green syncs: the switchover refuses, naming the DDL, and the
// undo removes green; blue goes on taking writes and nothing is lost.
func TestBlueGreenDDLOnBlueRefusesTheSwitchover(t *testing.T) {
	extra := "    - {file: note.sql, weight: 2, kind: write}\n"
	files := map[string]string{"note.sql": "COMMENT ON TABLE stock IS 'restocked';\n"}
	res, stderr, out := runFailing(t, ordersScenario(t, extra, "", files), "--mode", "wet")
	m := res.Migration
	stepsOK(t, m, "preflight=ok create_green=rolled_back green_sync=ok switchover=failed redirect=skipped validate=skipped keep_old_blue=skipped delete_deployment=skipped undo_create_green=rolled_back")
	ddl, _ := stepDetail(t, m, "switchover")["blocked_ddl"].([]any)
	if len(ddl) == 0 || !strings.Contains(ddl[0].(string), "COMMENT public.stock") {
		t.Errorf("the record does not say which DDL: %v", ddl)
	}
	if !strings.Contains(stderr, "DDL ran on blue since green was created") {
		t.Errorf("stderr: %s", stderr)
	}
	if m.WriterAfter != "node1" || res.Integrity.LostAcknowledgedWrites != 0 {
		t.Errorf("writer after %s, integrity %+v", m.WriterAfter, res.Integrity)
	}
	noGreenLeft(t, out)
}

// A switchover timeout too small to finish in: the switchover rolls back, blue
// takes writes again, green is removed, and no acknowledged write is lost.
func TestBlueGreenSwitchoverTimeoutRollsBack(t *testing.T) {
	res, stderr, out := runFailing(t, cutoverScenario(t, "  strategy: blue_green\n  switchover_timeout: 1ms\n"), "--mode", "wet", "--endpoint", "proxy")
	m := res.Migration
	stepsOK(t, m, "preflight=ok create_green=rolled_back green_sync=ok switchover=failed redirect=skipped validate=skipped keep_old_blue=skipped delete_deployment=skipped undo_create_green=rolled_back")
	if sw := stepDetail(t, m, "switchover"); sw["rolled_back"] != true || sw["switched"] != false {
		t.Errorf("switchover detail %v", sw)
	}
	if !strings.Contains(stderr, "the switchover timed out") || !strings.Contains(stderr, "rolled back") {
		t.Errorf("stderr: %s", stderr)
	}
	if m.WriterAfter != "node1" {
		t.Errorf("the writer is %s, want blue's node1", m.WriterAfter)
	}
	checkIntegrity(t, res)
	noGreenLeft(t, out)
}
