package engine

import (
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workload/banking"
)

const smallYAML = `name: engine-small
workload:
  name: banking
  customers: 500
load:
  model: open
  sessions: 20
  rate: 50
  duration: 3s
  pool_size: 2
  workers: 2
  grace: 5s
target:
  kind: local
  fsync: false
`

func smallScenario(t *testing.T) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Parse("small.yaml", []byte(smallYAML))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// A step holds its own rate even when the scenario ramps: the ramp's stages must not
// replace the step's rate, or every capacity step would replay the same ramp.
func TestStepScenarioDropsTheRamp(t *testing.T) {
	sc := smallScenario(t)
	sc.Load.Stages = []scenarios.Stage{{Duration: scenarios.Duration(time.Minute), Rate: 4000}}
	r := &Rehearsal{sc: sc}
	tests := []struct {
		name     string
		spec     StepSpec
		rate     float64
		stages   int
		sessions int
		duration time.Duration
	}{
		{"the scenario's own schedule", StepSpec{}, 50, 1, 20, 3 * time.Second},
		{"a rate held", StepSpec{Rate: 300, Sessions: 120, Duration: 10 * time.Second}, 300, 0, 120, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := r.stepScenario(tt.spec)
			if st.Load.Rate != tt.rate || len(st.Load.Stages) != tt.stages || st.Load.Sessions != tt.sessions || st.Load.Duration.D() != tt.duration {
				t.Fatalf("step scenario load = %+v", st.Load)
			}
			p, prof := Schedule(st)
			if tt.stages == 0 {
				if r := prof.Rate(5 * time.Second); r != tt.rate {
					t.Errorf("the step's schedule runs at %v/s at 5 s, want %v/s", r, tt.rate)
				}
				// The schedule has no end: the load generator stops itself.
				if r := prof.Rate(time.Hour); r != tt.rate {
					t.Errorf("the schedule runs at %v/s after an hour, want %v/s", r, tt.rate)
				}
			}
			if _, ok := p.Next(-1); !ok {
				t.Error("the step's schedule has no arrivals")
			}
		})
	}
	if len(sc.Load.Stages) != 1 {
		t.Error("stepScenario changed the scenario it was given")
	}
}

// The scenario's default banking mix and the workload's own default are one mix.
func TestDefaultMixesAgree(t *testing.T) {
	if a, b := scenarios.DefaultMix(), banking.DefaultMix(); !maps.Equal(a, b) {
		t.Errorf("scenario default mix %v, banking default mix %v", a, b)
	}
}

// Open once, step twice at different rates (what a capacity search does), on a real
// embedded PostgreSQL: each step is its own result, and the retained intervals
// answer the step's latency after its warm-up.
func TestOpenStepStepClose(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	dir := t.TempDir()
	sc := smallScenario(t)
	reh, err := Open(t.Context(), sc, Config{Target: TargetConfig{Dir: dir}, ActiveSessions: 40, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer reh.Close(t.Context(), false)
	if reh.Target().Kind() != scenarios.TargetLocal || reh.Target().Provider() != nil || reh.Target().EndpointMode() != scenarios.EndpointDirect {
		t.Errorf("a scenario without a cutover got target %s (endpoint %s)", reh.Target().Kind(), reh.Target().EndpointMode())
	}
	for i, rate := range []float64{40, 80} {
		stepDir := filepath.Join(dir, "step", string(rune('a'+i)))
		if err := os.MkdirAll(stepDir, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := reh.Step(t.Context(), StepSpec{Rate: rate, Sessions: 40, Duration: 3 * time.Second, Dir: stepDir, Retain: loadgen.RetainAll})
		if err != nil {
			t.Fatal(err)
		}
		res := out.Result
		if res.Interrupted || out.Elapsed != 3*time.Second || res.Load.TargetRate != rate || res.Mode != "dry" {
			t.Errorf("step %v/s: interrupted %v elapsed %v target %v mode %s", rate, res.Interrupted, out.Elapsed, res.Load.TargetRate, res.Mode)
		}
		if !res.Integrity.Checked || res.Integrity.LostAcknowledgedWrites != 0 || out.VerifyErr != nil {
			t.Errorf("step %v/s integrity %+v (%v)", rate, res.Integrity, out.VerifyErr)
		}
		w, err := out.Window(time.Second, loadgen.RetainAll)
		if err != nil {
			t.Fatal(err)
		}
		if w.Count == 0 || w.Count > res.Totals.Succeeded || w.All.P99 <= 0 {
			t.Errorf("step %v/s window %+v of %d succeeded", rate, w, res.Totals.Succeeded)
		}
		if err := FinishHlog(out.Hlog, stepDir); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(filepath.Join(stepDir, HlogFile)); err != nil || st.Size() == 0 {
			t.Errorf("step %v/s latency log: %v", rate, err)
		}
	}
}
