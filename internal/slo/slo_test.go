package slo

import (
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// sample is the wet run the report package's renderers are tested with.
func sample(t *testing.T) *result.Result {
	t.Helper()
	res, err := result.ReadFile("../../report/testdata/sample-wet.json")
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// sampleSLO is the SLO section the sample runs are judged by (as in the report
// package's fixtures).
func sampleSLO() scenarios.SLO {
	errRate := 0.05
	ms := func(n int) scenarios.Duration { return scenarios.Duration(time.Duration(n) * time.Millisecond) }
	return scenarios.SLO{
		Latency: []scenarios.LatencySLO{
			{Op: "*", Phase: result.PhaseBefore, Percentile: 99, Max: ms(100)},
			{Op: "*", Phase: result.PhaseAfter, Percentile: 99, Max: ms(150)},
			{Op: "transfer", Phase: result.PhaseDuring, Percentile: 99, Max: ms(2500)},
			{Op: "balance", Phase: "all", Percentile: 99.9, Max: ms(2500)},
		},
		MaxErrorRate:        &errRate,
		MaxWriteUnavailable: ms(3000),
		MaxReadUnavailable:  ms(2000),
		MinAchievedRate:     0.95,
	}
}

func status(c result.SLOCheck) string {
	if c.Passed {
		return "pass"
	}
	return "FAIL"
}

// failed names the failed checks.
func failed(v result.SLOVerdict) []string {
	var out []string
	for _, c := range v.Checks {
		if !c.Passed {
			out = append(out, c.Name)
		}
	}
	return out
}

func TestEvaluate(t *testing.T) {
	ms := func(n int) scenarios.Duration { return scenarios.Duration(time.Duration(n) * time.Millisecond) }
	frac := func(f float64) *float64 { return &f }
	wet := sample(t)
	noIntegrity := sample(t)
	noIntegrity.Integrity = result.Integrity{}
	lost := sample(t)
	lost.Integrity.LostAcknowledgedWrites = 3
	noCheck := sample(t)
	noCheck.Integrity = result.Integrity{Checked: true, BalanceConserved: true, LostWriteCheck: result.LostWriteCheckNone}
	rareOp := sample(t)
	rareOp.Operations = append(rareOp.Operations, result.Operation{Name: "rare", Kind: "write", Phases: map[string]result.Phase{}})
	noCut := sample(t)
	for i := range noCut.Operations {
		delete(noCut.Operations[i].Phases, result.PhaseDuring)
	}
	tests := []struct {
		name   string
		res    *result.Result
		slo    scenarios.SLO
		passed bool
		want   map[string]string // check name → "pass", "FAIL", or a reason substring
	}{
		{"sample passes", wet, sampleSLO(), true, map[string]string{"p99 latency transfer during": "pass", "lost acknowledged writes": "pass", "error rate": "pass"}},
		{"impossible latency", wet, scenarios.SLO{Latency: []scenarios.LatencySLO{{Op: "transfer", Phase: result.PhaseDuring, Percentile: 99, Max: ms(1)}}}, false,
			map[string]string{"p99 latency transfer during": "FAIL"}},
		{"op did not run", wet, scenarios.SLO{Latency: []scenarios.LatencySLO{{Op: "wire", Max: ms(100)}}}, false,
			map[string]string{"p99 latency wire all": "operation wire did not run"}},
		{"star skips an op that did not run", rareOp, scenarios.SLO{Latency: []scenarios.LatencySLO{{Op: "*", Max: ms(100000)}}}, true,
			map[string]string{"p99 latency login all": "pass"}},
		{"named op that did not run", rareOp, scenarios.SLO{Latency: []scenarios.LatencySLO{{Op: "rare", Max: ms(100000)}}}, false,
			map[string]string{"p99 latency rare all": "operation rare did not run"}},
		{"phase did not occur", noCut, scenarios.SLO{Latency: []scenarios.LatencySLO{{Op: "balance", Phase: result.PhaseDuring, Max: ms(1)}}}, true,
			map[string]string{"p99 latency balance during": "not applicable"}},
		{"p95 uses p99", wet, scenarios.SLO{Latency: []scenarios.LatencySLO{{Op: "balance", Phase: result.PhaseBefore, Percentile: 95, Max: ms(1000)}}}, true,
			map[string]string{"p95 latency balance before (as p99)": "pass"}},
		{"p99.99 uses max", wet, scenarios.SLO{Latency: []scenarios.LatencySLO{{Op: "balance", Percentile: 99.99, Max: ms(1)}}}, false,
			map[string]string{"p99.99 latency balance all (as max)": "FAIL"}},
		{"error rate", wet, scenarios.SLO{MaxErrorRate: frac(0.001)}, false, map[string]string{"error rate": "FAIL"}},
		{"attempt error rate above what users saw", wet, scenarios.SLO{MaxErrorRate: frac(0.05), MaxAttemptErrorRate: frac(0.02)}, false,
			map[string]string{"error rate": "pass", "attempt error rate": "FAIL"}},
		{"attempt error rate within", wet, scenarios.SLO{MaxAttemptErrorRate: frac(0.5)}, true, map[string]string{"attempt error rate": "pass"}},
		{"an operation named and under a wildcard is checked once, with its own limit", wet, scenarios.SLO{Latency: []scenarios.LatencySLO{
			{Op: "*", Phase: result.PhaseDuring, Percentile: 99, Max: ms(1)}, {Op: "transfer", Phase: result.PhaseDuring, Percentile: 99, Max: ms(100000)}}}, false,
			map[string]string{"p99 latency transfer during": "pass", "p99 latency balance during": "FAIL"}},
		{"write unavailability", wet, scenarios.SLO{MaxWriteUnavailable: ms(500)}, false, map[string]string{"max write unavailability": "FAIL"}},
		{"read unavailability", wet, scenarios.SLO{MaxReadUnavailable: ms(500)}, true, map[string]string{"max read unavailability": "pass"}},
		{"integrity not checked", noIntegrity, scenarios.SLO{}, false, map[string]string{"lost acknowledged writes": "integrity not checked"}},
		{"lost writes", lost, scenarios.SLO{}, false, map[string]string{"lost acknowledged writes": "FAIL"}},
		{"no lost-write check", noCheck, scenarios.SLO{}, true, map[string]string{"lost acknowledged writes": "not applicable"}},
		{"lost writes tolerated", lost, scenarios.SLO{MaxLostWrites: 3}, true, map[string]string{"lost acknowledged writes": "pass"}},
		{"achieved rate", wet, scenarios.SLO{MinAchievedRate: 1.5}, false, map[string]string{"achieved rate / target": "FAIL"}},
		{"no operations", &result.Result{Integrity: result.Integrity{Checked: true}}, scenarios.SLO{Latency: []scenarios.LatencySLO{{Max: ms(5)}}}, false,
			map[string]string{"p99 latency * all": "no operations ran"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Evaluate(tt.res, tt.slo)
			if v.Passed != tt.passed {
				t.Errorf("passed = %v, want %v; reasons %q", v.Passed, tt.passed, failed(v))
			}
			for name, want := range tt.want {
				var found *result.SLOCheck
				for i := range v.Checks {
					if v.Checks[i].Name == name {
						found = &v.Checks[i]
					}
				}
				if found == nil {
					t.Errorf("no check named %q in %+v", name, v.Checks)
					continue
				}
				switch want {
				case "pass", "FAIL":
					if got := status(*found); got != want {
						t.Errorf("%s: %s, want %s (%+v)", name, got, want, *found)
					}
				default:
					if !strings.Contains(found.Reason, want) {
						t.Errorf("%s: reason %q, want it to contain %q", name, found.Reason, want)
					}
				}
			}
			if !v.Passed && len(failed(v)) == 0 {
				t.Error("failed verdict without reasons")
			}
		})
	}
}

func TestEachCheckOnce(t *testing.T) {
	ms := func(n int) scenarios.Duration { return scenarios.Duration(time.Duration(n) * time.Millisecond) }
	v := Evaluate(sample(t), scenarios.SLO{Latency: []scenarios.LatencySLO{
		{Op: "*", Phase: result.PhaseAfter, Percentile: 99, Max: ms(1000)},
		{Op: "transfer", Phase: result.PhaseAfter, Percentile: 99, Max: ms(2000)},
		{Op: "transfer", Phase: result.PhaseAfter, Percentile: 99.9, Max: ms(2000)},
	}})
	count := map[string]int{}
	for _, c := range v.Checks {
		count[c.Name]++
	}
	for name, n := range count {
		if n != 1 {
			t.Errorf("%s evaluated %d times", name, n)
		}
	}
	for _, c := range v.Checks {
		if c.Name == "p99 latency transfer after" && c.Limit != 2000 {
			t.Errorf("transfer after p99 checked against %v ms, want its own 2000 ms", c.Limit)
		}
	}
}

func TestRecoveryCheck(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	cases := []struct {
		name      string
		mig       *result.Migration
		limit     time.Duration
		wantCheck bool
		passed    bool
		reason    string
	}{
		{name: "no limit", mig: &result.Migration{RecoveryS: f(9), Recovered: true}},
		{name: "within", mig: &result.Migration{RecoveryS: f(4.5), Recovered: true}, limit: 5 * time.Second, wantCheck: true, passed: true},
		{name: "too slow", mig: &result.Migration{RecoveryS: f(7), Recovered: true}, limit: 5 * time.Second, wantCheck: true},
		{name: "never recovered", mig: &result.Migration{RecoveryS: f(2), Recovered: false}, limit: 5 * time.Second, wantCheck: true, reason: "not recovered"},
		{name: "not measured", mig: &result.Migration{}, limit: 5 * time.Second, wantCheck: true, passed: true, reason: "not applicable"},
		{name: "no cutover", limit: 5 * time.Second, wantCheck: true, passed: true, reason: "not applicable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := sample(t)
			res.Migration = tc.mig
			v := Evaluate(res, scenarios.SLO{MaxRecovery: scenarios.Duration(tc.limit)})
			var got *result.SLOCheck
			for i := range v.Checks {
				if v.Checks[i].Name == "slowest recovery" {
					got = &v.Checks[i]
				}
			}
			if (got != nil) != tc.wantCheck {
				t.Fatalf("check present = %v, want %v", got != nil, tc.wantCheck)
			}
			if got == nil {
				return
			}
			if got.Passed != tc.passed || got.Unit != result.UnitSeconds || !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("check = %+v, want passed %v with reason containing %q", *got, tc.passed, tc.reason)
			}
		})
	}
}

// A phase entered more than once is judged window by window, and the slowest
// disruption's recovery is the one gated.
func TestWindowedChecks(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	res := sample(t)
	lat := func(p99 float64) map[string]result.Phase {
		return map[string]result.Phase{"transfer": {Count: 10, LatencyMs: result.Latency{P99: p99}}}
	}
	res.PhaseWindows = []result.PhaseWindow{
		{Phase: result.PhaseBefore, Label: "before", Operations: lat(5)},
		{Phase: result.PhaseDuring, Label: "switchover (cycle 1)", Operations: lat(200), RecoveryS: f(3), Recovered: true},
		{Phase: result.PhaseAfter, Label: "after switchover (cycle 1)", Operations: lat(6)},
		{Phase: result.PhaseDuring, Label: "failback (cycle 2)", Operations: lat(900), RecoveryS: f(7.5), Recovered: true},
		{Phase: result.PhaseAfter, Label: "after failback (cycle 2)", Operations: lat(7)},
	}
	ms := func(n int) scenarios.Duration { return scenarios.Duration(time.Duration(n) * time.Millisecond) }
	v := Evaluate(res, scenarios.SLO{
		Latency:     []scenarios.LatencySLO{{Op: "transfer", Phase: result.PhaseDuring, Percentile: 99, Max: ms(500)}},
		MaxRecovery: scenarios.Duration(5 * time.Second),
	})
	got := map[string]bool{}
	for _, c := range v.Checks {
		got[c.Name] = c.Passed
	}
	want := map[string]bool{
		"p99 latency transfer during switchover (cycle 1)": true,
		"p99 latency transfer during failback (cycle 2)":   false,
		"slowest recovery": false,
	}
	for name, passed := range want {
		if p, ok := got[name]; !ok || p != passed {
			t.Errorf("check %q: present %v passed %v; want passed %v (checks %v)", name, ok, p, passed, got)
		}
	}
	if _, ok := got["p99 latency transfer during"]; ok {
		t.Error("the phase was also judged as a whole")
	}
}
