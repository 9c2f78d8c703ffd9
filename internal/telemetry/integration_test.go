package telemetry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/internal/engine"
	"github.com/rehearse-dev/rehearse/internal/slo"
	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

const nodeYAML = `name: telemetry-node
workload:
  name: banking
  customers: 500
load:
  sessions: 50
  rate: 100
  duration: 12s
  pool_size: 4
  workers: 8
target:
  kind: local
  fsync: false
telemetry:
  sample_interval: 1s
`

const clusterYAML = `name: telemetry-cluster
workload:
  name: banking
  customers: 500
load:
  sessions: 50
  rate: 150
  duration: 16s
  pool_size: 4
  workers: 8
target:
  kind: local
  dns_ttl: 1s              # the clients follow the redirect within a second
cutover:
  enabled: true
  warmup: 3s
  dns_propagation: 0s
  soak: 3s
telemetry:
  sample_interval: 500ms
slo:
  database:
    - {metric: cpu, node: writer, phase: after, stat: p95, max: 100}
    - {metric: replica_lag_s, node: rollback_target, phase: after, stat: max, max: 60}
`

// open parses yaml, applies change and opens a rehearsal over it, closed when the
// test ends (also when it fails).
func open(t *testing.T, yaml string, change func(*scenarios.Scenario)) (*engine.Rehearsal, *scenarios.Scenario, string) {
	t.Helper()
	testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
	sc, err := scenarios.Parse("telemetry.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	change(sc)
	if errs := sc.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	log := &testutil.SyncBuffer{}
	reh, err := engine.Open(t.Context(), sc, engine.Config{Target: engine.TargetConfig{Dir: dir, Log: log}, Version: "test"})
	if err != nil {
		t.Fatalf("open: %v\n%s", err, log)
	}
	t.Cleanup(func() { reh.Close(context.Background(), false) })
	return reh, sc, dir
}

// startPrometheus runs a Prometheus server that scrapes target every second, and
// returns its HTTP API's address. It is stopped when the test ends.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin := testutil.RequireTool(t, "prometheus", "Debian package prometheus")
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: rehearse\n    static_configs:\n      - targets: [%q]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	web := testutil.FreeAddr(t, "127.0.0.1")
	log := &testutil.SyncBuffer{}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+web, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log)
		}
	})
	testutil.Eventually(t, 30*time.Second, "Prometheus to be ready", func() bool {
		resp, err := http.Get("http://" + web + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return web
}

// query runs an instant PromQL query and returns the label sets of its result.
func query(t *testing.T, api, q string) []map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + api + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Status != "success" {
		t.Fatalf("query %s: status %s", q, body.Status)
	}
	out := make([]map[string]string, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		out = append(out, r.Metric)
	}
	return out
}

// A real Prometheus scrapes a short run: its query API answers
// rehearse_operations_total with the run's operations as labels.
func TestPrometheusScrapesARun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and Prometheus")
	}
	addr := testutil.FreeAddr(t, "127.0.0.1")
	reh, sc, dir := open(t, nodeYAML, func(sc *scenarios.Scenario) { sc.Telemetry.MetricsAddr = addr })
	api := startPrometheus(t, addr)

	type stepped struct {
		out *engine.StepOutcome
		err error
	}
	done := make(chan stepped, 1)
	go func() {
		out, err := reh.Step(t.Context(), engine.StepSpec{Dir: dir})
		done <- stepped{out, err}
	}()
	var ops []string
	testutil.Eventually(t, 40*time.Second, "Prometheus to hold rehearse_operations_total for the run's operations", func() bool {
		ops = ops[:0]
		for _, m := range query(t, api, `sum by (op) (rehearse_operations_total{job="rehearse"})`) {
			ops = append(ops, m["op"])
		}
		return len(ops) >= 4
	})
	s := <-done
	if s.err != nil {
		t.Fatal(s.err)
	}
	var ran []string
	for _, o := range s.out.Result.Operations {
		if o.Count > 0 {
			ran = append(ran, o.Name)
		}
	}
	for _, op := range ops {
		if !slices.Contains(ran, op) {
			t.Errorf("Prometheus has op %q, which the run did not run (it ran %v)", op, ran)
		}
	}
	if got := query(t, api, `rehearse_run_info`); len(got) != 1 || got[0]["scenario"] != sc.Name || got[0]["workload"] != "banking" {
		t.Errorf("rehearse_run_info %v", got)
	}
	if got := query(t, api, `rehearse_database_connections{role="writer"}`); len(got) != 1 || got[0]["node"] != "node1" {
		t.Errorf("writer connections %v", got)
	}
	if db := s.out.Result.Database; db == nil || len(db.Series) == 0 {
		t.Errorf("no database series: %+v", db)
	}
	// Every query of the shipped dashboard is PromQL this Prometheus accepts.
	for _, q := range dashboardQueries(t) {
		q = strings.NewReplacer("$__rate_interval", "1m", "$job", ".*").Replace(q)
		query(t, api, q)
	}
}

// dashboardQueries returns every PromQL expression of the shipped Grafana
// dashboard.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "rehearse.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return out
}

// During a wet cutover on a real local cluster the database series follow the
// writer: the new writer's transactions rise after the switchover, the node events
// say when it became the writer, the old writer kept as a standby reports its lag,
// and the database SLOs resolve the roles.
func TestDatabaseSeriesDuringWetCutover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	reh, sc, dir := open(t, clusterYAML, func(sc *scenarios.Scenario) { sc.Mode = scenarios.ModeWet })
	out, err := reh.Step(t.Context(), engine.StepSpec{Cutover: true, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if out.CutoverErr != nil {
		t.Fatalf("cutover: %v", out.CutoverErr)
	}
	res := out.Result
	m, db := res.Migration, res.Database
	if db == nil || m == nil || m.WriterAfter == m.WriterBefore {
		t.Fatalf("database %+v, migration %+v", db, m)
	}
	if len(db.Missing) > 0 {
		t.Errorf("missing: %v", db.Missing)
	}
	var switched float64 = -1
	for _, s := range m.Steps {
		if s.Name == "switchover" {
			switched = s.EndS
		}
	}
	meanTPS := func(node string, from, to float64) (float64, int) {
		for _, s := range db.Series {
			if s.Node == node && s.Metric == "tps" {
				var sum float64
				n := 0
				for _, p := range s.Points {
					if p[0] >= from && p[0] < to {
						sum += p[1]
						n++
					}
				}
				if n == 0 {
					return 0, 0
				}
				return sum / float64(n), n
			}
		}
		return 0, 0
	}
	if os.Getenv("TELEMETRY_DEBUG") != "" {
		for _, s := range db.Series {
			if s.Metric == "tps" || s.Metric == "connections" {
				t.Logf("%s %s %v", s.Node, s.Metric, s.Points)
			}
		}
		for _, r := range res.Timeline {
			t.Logf("t=%v ops=%d errs=%v", r.TS, r.Ops, r.ErrorsByClass)
		}
		for _, s := range m.Steps {
			t.Logf("%s %s %v-%v", s.Name, s.Status, s.StartS, s.EndS)
		}
	}
	// The old writer, a standby after the switchover, still serves the reader
	// endpoint's reads: the new writer's own before and after are compared.
	before, _ := meanTPS(m.WriterAfter, 0, switched)
	after, n := meanTPS(m.WriterAfter, switched+1, res.DurationS+1)
	if n < 3 || after < 20 || after < 3*before {
		t.Errorf("the new writer %s: %.1f tx/s before the switchover at %.1f s, %.1f after (%d samples)", m.WriterAfter, before, switched, after, n)
	}
	// It may have been the writer already when the sampler first saw it.
	became := slices.IndexFunc(db.Events, func(e result.DBEvent) bool {
		return e.Node == m.WriterAfter && (e.Event == "became writer" || e.Event == "appeared (writer)")
	})
	if became < 0 || db.Events[became].TS < switched-1 {
		t.Errorf("no event making %s the writer after the switchover at %.1f s: %v", m.WriterAfter, switched, db.Events)
	}
	lag := slices.IndexFunc(db.Series, func(s result.Series) bool { return s.Node == m.WriterBefore && s.Metric == "replica_lag_bytes" })
	if lag < 0 {
		t.Errorf("no replica lag series of the old writer %s kept as a standby", m.WriterBefore)
	}

	// A node the run never had: validation refuses it for a local target, so it
	// is added here, to show how the evaluation of a target whose names are known
	// only at run time (Aurora, a DSN) reports it.
	gates := sc.SLO
	gates.Database = append(slices.Clone(gates.Database), scenarios.DatabaseSLO{Metric: "tps", Node: "node7", Phase: "all", Stat: "max", Max: 1})
	v := slo.Evaluate(res, gates)
	checks := map[string]result.SLOCheck{}
	for _, c := range v.Checks {
		if strings.HasPrefix(c.Name, "database ") {
			checks[c.Name] = c
		}
	}
	for name, want := range map[string]struct {
		passed bool
		reason string
	}{
		"database cpu p95 writer (" + m.WriterAfter + ") after (percent)":                     {true, ""},
		"database replica_lag_s max rollback_target (" + m.WriterBefore + ") after (seconds)": {true, ""},
		"database tps max node7 all (tx/s)":                                                   {false, "unknown node node7: the nodes were " + m.WriterBefore + " (writer before, rollback target)"},
	} {
		c, ok := checks[name]
		if !ok {
			t.Errorf("no check %q in %v", name, checks)
			continue
		}
		if c.Passed != want.passed || !strings.HasPrefix(c.Reason, want.reason) {
			t.Errorf("check %q: passed %v, reason %q; want %v, %q", name, c.Passed, c.Reason, want.passed, want.reason)
		}
	}
}
