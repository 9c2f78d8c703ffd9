package slo

import (
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// cutoverResult is a wet run's result: node1 writes until the switchover at 10 s
// (during from 5 s, after from 12 s), node2 (created at 5 s) writes after it, and
// node1 stays as the rollback target.
func cutoverResult() *result.Result {
	series := func(node, metric string, pts ...[2]float64) result.Series {
		return result.Series{Node: node, Metric: metric, Unit: scenarios.DatabaseMetrics[metric], Points: pts}
	}
	return &result.Result{
		Operations: []result.Operation{{Name: "transfer", Count: 10, Phases: map[string]result.Phase{"before": {Count: 4}, "during": {Count: 3}, "after": {Count: 3}}}},
		Migration: &result.Migration{
			Outcome: "completed", WriterBefore: "node1", WriterAfter: "node2",
			Steps: []result.Step{
				{Name: "preflight", Status: "ok", StartS: 5, EndS: 5},
				{Name: "create_replica", Status: "ok", StartS: 5, EndS: 8, Detail: map[string]any{"replica": "node2"}},
				{Name: "switchover", Status: "ok", StartS: 9, EndS: 10},
				{Name: "redirect", Status: "ok", StartS: 10, EndS: 12},
				{Name: "validate", Status: "ok", StartS: 12, EndS: 12},
				{Name: "keep_rollback_target", Status: "ok", StartS: 12, EndS: 13},
			},
		},
		Database: &result.Database{
			Series: []result.Series{
				series("node1", "cpu", [2]float64{1, 30}, [2]float64{4, 40}, [2]float64{6, 50}, [2]float64{11, 5}, [2]float64{14, 6}),
				series("node2", "cpu", [2]float64{6, 2}, [2]float64{9, 3}, [2]float64{11, 70}, [2]float64{13, 90}, [2]float64{14, 60}, [2]float64{15, 85}),
				series("node1", "replica_lag_s", [2]float64{13, 0.5}, [2]float64{14, 7}),
				series("node2", "replica_lag_s", [2]float64{6, 1}, [2]float64{9, 0.2}),
			},
			Events: []result.DBEvent{
				{TS: 0, Node: "node1", Event: "present at the start (writer)"},
				{TS: 6, Node: "node2", Event: "appeared (reader)"},
				{TS: 10, Node: "node1", Event: "became reader"},
				{TS: 10, Node: "node2", Event: "became writer"},
			},
		},
	}
}

func TestDatabaseChecks(t *testing.T) {
	noCutover := cutoverResult()
	noCutover.Migration = nil
	noDB := cutoverResult()
	noDB.Database = nil
	denied := cutoverResult()
	denied.Database.Series = denied.Database.Series[:2]
	denied.Database.Missing = []string{"cloudwatch:GetMetricData was denied: no CloudWatch series"}
	tests := []struct {
		name   string
		res    *result.Result
		slo    scenarios.DatabaseSLO
		check  string
		value  float64
		passed bool
		reason string
	}{
		{"the writer after the cutover is the new one", cutoverResult(), scenarios.DatabaseSLO{Metric: "cpu", Node: "writer", Phase: "after", Stat: "p95", Max: 80},
			"database cpu p95 writer (node2) after (percent)", 90, false, ""},
		{"the writer before it is the old one", cutoverResult(), scenarios.DatabaseSLO{Metric: "cpu", Node: "writer", Phase: "before", Stat: "max", Max: 80},
			"database cpu max writer (node1) before (percent)", 40, true, ""},
		{"over the run the writer is whoever wrote at each sample", cutoverResult(), scenarios.DatabaseSLO{Metric: "cpu", Node: "writer", Phase: "all", Stat: "min", Max: 80},
			"database cpu min writer (node1+node2) all (percent)", 30, true, ""},
		{"the rollback target is the old writer", cutoverResult(), scenarios.DatabaseSLO{Metric: "replica_lag_s", Node: "rollback_target", Phase: "after", Stat: "max", Max: 5},
			"database replica_lag_s max rollback_target (node1) after (seconds)", 7, false, ""},
		{"the replica is the node the cutover created", cutoverResult(), scenarios.DatabaseSLO{Metric: "replica_lag_s", Node: "replica", Phase: "during", Stat: "mean", Max: 5},
			"database replica_lag_s mean replica (node2) during (seconds)", 0.6, true, ""},
		{"a reader is the worst reader", cutoverResult(), scenarios.DatabaseSLO{Metric: "cpu", Node: "reader", Phase: "after", Stat: "max", Max: 50},
			"database cpu max reader (node1) after (percent)", 6, true, ""},
		{"a node by name", cutoverResult(), scenarios.DatabaseSLO{Metric: "cpu", Node: "node2", Phase: "all", Stat: "p50", Max: 80},
			"database cpu p50 node2 all (percent)", 60, true, ""},
		{"an unknown node lists the nodes", cutoverResult(), scenarios.DatabaseSLO{Metric: "cpu", Node: "node9", Phase: "all", Stat: "max", Max: 80},
			"database cpu max node9 all (percent)", 0, false, "unknown node node9: the nodes were node1 (writer before, rollback target), node2 (writer after, replica)"},
		{"a node without the metric", cutoverResult(), scenarios.DatabaseSLO{Metric: "tps", Node: "writer", Phase: "after", Stat: "max", Max: 80},
			"database tps max writer (node2) after (tx/s)", 0, false, "node2 has no tps series"},
		{"a missing permission is named", denied, scenarios.DatabaseSLO{Metric: "replica_lag_s", Node: "rollback_target", Phase: "after", Stat: "max", Max: 5},
			"database replica_lag_s max rollback_target (node1) after (seconds)", 0, false, "node1 has no replica_lag_s series (cloudwatch:GetMetricData was denied"},
		{"no replica without a cutover", noCutover, scenarios.DatabaseSLO{Metric: "cpu", Node: "replica", Phase: "all", Stat: "max", Max: 80},
			"database cpu max replica all (percent)", 0, false, "no replica: the cutover created none"},
		{"a phase that did not occur", noCutover, scenarios.DatabaseSLO{Metric: "cpu", Node: "writer", Phase: "after", Stat: "max", Max: 80},
			"database cpu max writer after (percent)", 0, true, "not applicable: the run had no after phase"},
		{"no database numbers", noDB, scenarios.DatabaseSLO{Metric: "cpu", Node: "writer", Phase: "after", Stat: "max", Max: 80},
			"database cpu max writer after (percent)", 0, false, "no database series were recorded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Evaluate(tt.res, scenarios.SLO{Database: []scenarios.DatabaseSLO{tt.slo}})
			var c *result.SLOCheck
			for i := range v.Checks {
				if strings.HasPrefix(v.Checks[i].Name, "database ") {
					c = &v.Checks[i]
				}
			}
			if c == nil {
				t.Fatalf("no database check in %+v", v.Checks)
			}
			if c.Name != tt.check || c.Passed != tt.passed || !strings.HasPrefix(c.Reason, tt.reason) || (tt.reason == "" && c.Reason != "") {
				t.Errorf("check %q passed %v reason %q; want %q passed %v reason %q", c.Name, c.Passed, c.Reason, tt.check, tt.passed, tt.reason)
			}
			if d := c.Value - tt.value; d > 1e-9 || d < -1e-9 {
				t.Errorf("value %v, want %v", c.Value, tt.value)
			}
			if !tt.passed && v.Passed {
				t.Error("the verdict passed with a failed database check")
			}
		})
	}
}

func TestStatistic(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for stat, want := range map[string]float64{"min": 1, "max": 10, "mean": 5.5, "p50": 5, "p95": 10, "p99": 10} {
		if got := statistic(v, stat); got != want {
			t.Errorf("%s = %v, want %v", stat, got, want)
		}
	}
}
