package rehearse

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

const smallYAML = `name: capacity-small
workload:
  name: banking
  customers: 500
load:
  model: open
  sessions: 20
  rate: 50
  pool_size: 1
  workers: 1
  op_timeout: 30s
  grace: 10s
target:
  kind: local
  fsync: false
slo:
  latency:
    - {op: "*", percentile: 99, max: 200ms}
  max_error_rate: 0.01
`

func smallScenario(t *testing.T) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Parse("small.yaml", []byte(smallYAML))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// One connection and one worker cannot keep up with thousands of banking actions
// a second, so the climb 50 → 500 → 5,000 → 50,000/s must stop at 5,000/s at the
// latest: 50,000/s never runs. Real embedded PostgreSQL, fsync off.
func TestCapacityStopsAtFirstBreach(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	out := filepath.Join(t.TempDir(), "cap")
	cfg := CapacityConfig{From: 50, To: 50000, Step: RateStep{Factor: 10}, Hold: 3 * time.Second, Warmup: time.Second, Peak: 100}
	var progress strings.Builder
	res, err := Capacity(t.Context(), smallScenario(t), cfg, WithOut(out), WithProgress(&progress))
	t.Logf("progress:\n%s", progress.String())
	if res == nil {
		t.Fatalf("no result: %v", err)
	}
	k := res.Capacity
	if len(k.Steps) < 2 || len(k.Steps) > 3 {
		t.Fatalf("%d steps ran, want 2 or 3 (stop at 500/s or 5,000/s): %+v", len(k.Steps), k.Steps)
	}
	if !k.Steps[0].OK() {
		t.Fatalf("50/s on one connection should be sustainable: %s %v", k.Steps[0].Verdict, k.Steps[0].Reasons)
	}
	last := k.Steps[len(k.Steps)-1]
	if last.OK() || (last.Verdict != result.StepBreach && last.Verdict != result.StepSaturated) {
		t.Errorf("last step %v/s is %s, want breach or saturated", last.TargetRate, last.Verdict)
	}
	for _, s := range k.Steps[:len(k.Steps)-1] {
		if !s.OK() {
			t.Errorf("step %v/s is %s but the climb went on", s.TargetRate, s.Verdict)
		}
	}
	if k.MaxSustainableRate != k.Steps[len(k.Steps)-2].TargetRate {
		t.Errorf("max sustainable %v, want the last good step's %v", k.MaxSustainableRate, k.Steps[len(k.Steps)-2].TargetRate)
	}
	if k.MaxSustainableRate >= 100 && (err != nil || !k.Passed) {
		t.Errorf("sustainable %v ≥ peak 100 but err %v passed %v", k.MaxSustainableRate, err, k.Passed)
	}
	if k.MaxSustainableRate < 100 && !errors.Is(err, ErrBelowPeak) {
		t.Errorf("sustainable %v < peak 100 but err %v", k.MaxSustainableRate, err)
	}
	if s := k.Steps[0]; s.Transactions == 0 || s.P99Ms <= 0 || s.AchievedRate <= 0 || s.OfferedRate <= 0 || !s.SLO.Passed || len(s.SLO.Checks) == 0 {
		t.Errorf("first step not measured: %+v", s)
	}
	for _, name := range []string{ResultFile, MarkdownFile, HTMLFile, filepath.Join(k.Steps[0].Dir, HlogFile)} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Error(err)
		}
	}
	back, err := result.ReadCapacityFile(filepath.Join(out, ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	if back.Capacity.MaxSustainableRate != k.MaxSustainableRate || len(back.Capacity.Steps) != len(k.Steps) {
		t.Errorf("result.json does not round-trip: %+v", back.Capacity)
	}
	if _, err := os.Stat(filepath.Join(out, "pg", "node1")); !os.IsNotExist(err) {
		t.Errorf("the embedded server's data was left behind: %v", err)
	}
}

func TestCapacityRejectsBadInput(t *testing.T) {
	sc := smallScenario(t)
	tests := []struct {
		name string
		cfg  CapacityConfig
		want string
	}{
		{"cutover without a cutover section", CapacityConfig{WithCutover: true}, "capacity.with_cutover: runs the scenario's cutover in every step, but cutover.enabled is false"},
		{"to below from", CapacityConfig{From: 10, To: 5}, "capacity.to: must be at least capacity.from 10 (got 5)"},
		{"a scenario problem and a search problem together", CapacityConfig{Hold: time.Second}, "capacity.hold: must be whole seconds, at least 3s (got 1s)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x")
			_, err := Capacity(t.Context(), sc, tc.cfg, WithOut(out), WithEndpoint("smoke-signals"))
			if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "target.endpoint") {
				t.Errorf("err = %v, want ErrInvalidInput containing %q and the target.endpoint problem", err, tc.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("output directory created for bad input")
			}
		})
	}
}

// Options Capacity sets itself per step are refused, not silently ignored.
func TestCapacityRejectsOptionsItDoesNotHonour(t *testing.T) {
	for _, opt := range []struct {
		name string
		o    Option
	}{{"WithMode", WithMode("wet")}, {"WithDuration", WithDuration(time.Minute)}, {"WithRate", WithRate(100)}, {"WithSessions", WithSessions(10)}} {
		t.Run(opt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x")
			_, err := Capacity(t.Context(), smallScenario(t), CapacityConfig{}, WithOut(out), opt.o)
			if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), opt.name) {
				t.Errorf("err = %v, want ErrInvalidInput naming %s", err, opt.name)
			}
		})
	}
}
