package telemetry

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/result"
)

// dashboardFile is the Grafana dashboard shipped for these metrics.
var dashboardFile = filepath.Join("..", "..", "deploy", "grafana", "rehearse.json")

// dashboardQueries returns every PromQL expression of the dashboard.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return out
}

// Every metric the dashboard queries is one the run exports.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	m := NewMetrics(RunInfo{Scenario: "s"})
	rec := &fakeRecorder{sum: loadgen.Summary{
		Operations: []result.Operation{{Name: "transfer", Phases: map[string]result.Phase{"before": {Count: 1}}}},
		Errors:     []result.ErrorClass{{Class: "read_only", Phases: map[string]int64{"after": 1}}},
		Timeline:   []result.TimelineRow{{Ops: 1}},
	}}
	w := m.AttachLoad(rec, func() time.Duration { return time.Second }, nil)
	defer m.Close()
	if _, err := w.Write([]byte("1s  1 ops/s  sessions 1 (busy 1)\n")); err != nil {
		t.Fatal(err)
	}
	h := hdr.New(1000, int64(time.Hour), 3)
	_ = h.RecordValue(1e6)
	m.Interval("transfer", h)
	m.Step("switchover", "ok")
	m.Fault("kill")
	m.Guardrail("lag", "pause")
	for metric := range dbGauges {
		m.Database(metric, "node1", RoleWriter, 1)
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, mf := range mfs {
		exported[mf.GetName()] = true
	}
	names := regexp.MustCompile(`\brehearse_[a-z0-9_]+`)
	queries := dashboardQueries(t)
	if len(queries) < 20 {
		t.Fatalf("only %d queries in the dashboard", len(queries))
	}
	for _, q := range queries {
		for _, n := range names.FindAllString(q, -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")
			if !exported[base] {
				t.Errorf("the dashboard queries %s, which the run does not export (%s)", n, q)
			}
		}
	}
}
