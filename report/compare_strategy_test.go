package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/result"
)

// blueGreenSample is the wet sample as a blue/green run would record it: its
// migration's strategy, a shorter write stall, the switchover's detail.
func blueGreenSample(t *testing.T) *result.Result {
	t.Helper()
	r := sample(t, "sample-wet.json")
	m := r.Migration
	m.Strategy = "blue_green"
	m.LagAtPromotion = result.LagAtPromotion{Bytes: 18400}
	for i := range m.Steps {
		if m.Steps[i].Name == "switchover" {
			m.Steps[i].Detail = map[string]any{"stall_ms": 125.0, "duration_ms": 160.0, "timeout_s": 300.0, "sequences_synced": 2.0}
		}
	}
	r.Availability.WriteUnavailableMaxMs = 129
	pp := r.Availability.PerPhase[result.PhaseDuring]
	pp.WriteMaxMs = 129
	r.Availability.PerPhase[result.PhaseDuring] = pp
	// The during phase's latency is the strategy's: not a regression.
	for _, o := range r.Operations {
		p := o.Phases[result.PhaseDuring]
		p.LatencyMs.P99 *= 3
		o.Phases[result.PhaseDuring] = p
	}
	return r
}

func TestCompareStrategies(t *testing.T) {
	base, cand := sample(t, "sample-wet.json"), blueGreenSample(t)
	c := Compare(base, cand, DefaultTolerance())
	sc := c.Strategies
	if sc == nil || sc.Base != "in_cluster" || sc.Candidate != "blue_green" || c.Title() != "Strategy comparison" {
		t.Fatalf("strategies %+v, title %q", sc, c.Title())
	}
	for _, r := range c.Regressions() {
		if strings.Contains(r, " during") || strings.Contains(r, "unavailability") || strings.Contains(r, " all") {
			t.Errorf("the strategies' difference flagged as a regression: %s", r)
		}
	}
	want := map[string][2]string{
		"during longest write stall":               {"1412 ms", "129 ms"},
		"cutover lag at switchover":                {"0 B", "18.0 KB"},
		"cutover writes blocked at the switchover": {"—", "125 ms"},
		"all failed operations":                    {"", ""},
	}
	seen := 0
	for _, r := range sc.Rows {
		w, ok := want[r.PhaseLabel()+" "+r.Metric]
		if !ok {
			continue
		}
		seen++
		if w[0] != "" && (r.BaseCell() != w[0] || r.CandidateCell() != w[1]) {
			t.Errorf("%s %s: %s | %s, want %s | %s", r.PhaseLabel(), r.Metric, r.BaseCell(), r.CandidateCell(), w[0], w[1])
		}
	}
	if seen != len(want) {
		t.Errorf("rows %+v lack some of %v", sc.Rows, want)
	}
	var md, html bytes.Buffer
	if err := c.Markdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := c.HTML(&html); err != nil {
		t.Fatal(err)
	}
	golden(t, "golden/compare-strategy.md", md.Bytes())
	for _, w := range []string{"<h1>Strategy comparison:", `id="strategies"`, "<th>strategy</th><td>in_cluster</td><td>blue_green</td>", "lag at switchover"} {
		if !strings.Contains(html.String(), w) {
			t.Errorf("the html lacks %q", w)
		}
	}
}

func TestCompareSameStrategyIsNoStrategyComparison(t *testing.T) {
	tests := []struct {
		name        string
		base, cand  func(*result.Result)
		strategies  bool
		strategyRow bool
	}{
		{"in_cluster both (one unrecorded)", func(r *result.Result) {}, func(r *result.Result) { r.Migration.Strategy = "in_cluster" }, false, false},
		{"blue_green both", func(r *result.Result) { r.Migration.Strategy = "blue_green" }, func(r *result.Result) { r.Migration.Strategy = "blue_green" }, false, true},
		{"no cutover in one", func(r *result.Result) { r.Migration = nil }, func(r *result.Result) { r.Migration.Strategy = "blue_green" }, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, cand := sample(t, "sample-wet.json"), sample(t, "sample-wet.json")
			tt.base(base)
			tt.cand(cand)
			c := Compare(base, cand, DefaultTolerance())
			if (c.Strategies != nil) != tt.strategies || c.Title() != "Comparison" {
				t.Errorf("strategies %+v, title %q", c.Strategies, c.Title())
			}
			row := false
			for _, r := range c.runRows() {
				row = row || r[0] == "strategy"
			}
			if row != tt.strategyRow {
				t.Errorf("strategy row %v, want %v", row, tt.strategyRow)
			}
		})
	}
}
