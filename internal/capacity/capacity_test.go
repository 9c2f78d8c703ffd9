package capacity

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/internal/engine"
	"github.com/rehearse-dev/rehearse/report"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// fakeDB is a database whose behaviour at each rate the test decides.
type fakeDB struct {
	breachAt   float64 // SLO breached at and above this rate (0: never)
	saturateAt float64 // achieved rate capped here (0: never)
	lagAt      float64 // schedule lag grows at and above this rate (0: never)
	failAt     float64 // runtime error at this rate
	cancelAt   float64 // the run is interrupted at this rate
	cancel     context.CancelFunc
	ran        []float64
}

func (f *fakeDB) step(ctx context.Context, _ int, _ string, rate float64) (result.CapacityStep, error) {
	f.ran = append(f.ran, rate)
	st := result.CapacityStep{TargetRate: rate, AchievedRate: rate, OfferedRate: rate, Transactions: int64(rate * 10), P50Ms: 1, P99Ms: 2 + rate/1000, P999Ms: 5, ScheduleLagP99Ms: 1}
	st.SLO = result.SLOVerdict{Passed: true, Checks: []result.SLOCheck{{Name: "p99 latency * all", Limit: 100, Value: st.P99Ms, Passed: true, Unit: result.UnitMs}}}
	if f.breachAt > 0 && rate >= f.breachAt {
		st.P99Ms = 500
		st.SLO = result.SLOVerdict{Passed: false, Checks: []result.SLOCheck{{Name: "p99 latency * all", Limit: 100, Value: 500, Unit: result.UnitMs}}}
	}
	if f.saturateAt > 0 && rate > f.saturateAt {
		st.AchievedRate = f.saturateAt
	}
	if f.lagAt > 0 && rate >= f.lagAt {
		st.ScheduleLagP99Ms = 400
	}
	if f.failAt > 0 && rate == f.failAt {
		return st, errors.New("connection refused")
	}
	if f.cancelAt > 0 && rate == f.cancelAt {
		f.cancel()
		return st, engine.ErrInterrupted
	}
	return st, nil
}

func TestSearchStops(t *testing.T) {
	ladder := []float64{100, 200, 300, 400, 500, 600}
	sat := saturation{maxLagMs: 50, minAchieved: 0.97, window: 13 * time.Second}
	tests := []struct {
		name        string
		db          fakeDB
		refine      int
		wantRan     []float64
		sustainable float64
		lastVerdict string
		stopped     string
		interrupted bool
		err         bool
	}{
		{name: "first breach ends the climb", db: fakeDB{breachAt: 400}, wantRan: []float64{100, 200, 300, 400},
			sustainable: 300, lastVerdict: result.StepBreach, stopped: "step 4 (400/s) breached an SLO: p99 latency * all: 500 ms, above the limit of 100 ms"},
		{name: "achieved rate falls behind", db: fakeDB{saturateAt: 250}, wantRan: []float64{100, 200, 300},
			sustainable: 200, lastVerdict: result.StepSaturated, stopped: "step 3 (300/s) saturated the database: achieved 250.0/s of the 300.0/s offered"},
		{name: "schedule lag grows", db: fakeDB{lagAt: 500}, wantRan: []float64{100, 200, 300, 400, 500},
			sustainable: 400, lastVerdict: result.StepSaturated, stopped: "schedule lag p99 400.0 ms, above 50 ms"},
		{name: "breach wins over saturation", db: fakeDB{breachAt: 200, lagAt: 200}, wantRan: []float64{100, 200},
			sustainable: 100, lastVerdict: result.StepBreach, stopped: "breached an SLO"},
		{name: "every step within the SLOs", db: fakeDB{}, wantRan: ladder,
			sustainable: 600, lastVerdict: result.StepOK, stopped: "reached the highest rate asked for (600/s)"},
		{name: "the first step already breaches", db: fakeDB{breachAt: 1}, wantRan: []float64{100},
			sustainable: 0, lastVerdict: result.StepBreach, stopped: "step 1 (100/s) breached"},
		{name: "refine bisects between good and bad", db: fakeDB{breachAt: 370}, refine: 3, wantRan: []float64{100, 200, 300, 400, 350, 375, 363},
			sustainable: 363, lastVerdict: result.StepOK, stopped: "refined between 300/s and 400/s in 3 step(s)"},
		{name: "runtime failure stops", db: fakeDB{failAt: 300}, wantRan: []float64{100, 200, 300},
			sustainable: 200, lastVerdict: result.StepFailed, stopped: "step 3 (300/s) failed: connection refused", err: true},
		{name: "interrupt stops", db: fakeDB{cancelAt: 200}, wantRan: []float64{100, 200},
			sustainable: 100, lastVerdict: result.StepInterrupted, stopped: "was interrupted", interrupted: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			db := tc.db
			db.cancel = cancel
			var seen int
			sr := search(ctx, ladder, true, tc.refine, sat, db.step, func(i, total int, s result.CapacityStep) {
				if i != seen || total != len(ladder) {
					t.Errorf("onStep(%d, %d), want (%d, %d)", i, total, seen, len(ladder))
				}
				seen++
			})
			if !slices.Equal(db.ran, tc.wantRan) {
				t.Errorf("ran %v, want %v", db.ran, tc.wantRan)
			}
			if sr.sustainable != tc.sustainable {
				t.Errorf("sustainable = %v, want %v", sr.sustainable, tc.sustainable)
			}
			if got := sr.steps[len(sr.steps)-1].Verdict; got != tc.lastVerdict {
				t.Errorf("last verdict = %q, want %q", got, tc.lastVerdict)
			}
			if !strings.Contains(sr.stopped, tc.stopped) {
				t.Errorf("stopped = %q, want it to contain %q", sr.stopped, tc.stopped)
			}
			if sr.interrupted != tc.interrupted || (sr.err != nil) != tc.err {
				t.Errorf("interrupted %v err %v, want %v %v", sr.interrupted, sr.err, tc.interrupted, tc.err)
			}
			if len(sr.steps) != len(db.ran) || seen != len(db.ran) {
				t.Errorf("%d steps recorded, %d reported, %d ran", len(sr.steps), seen, len(db.ran))
			}
			ladderSteps := 0
			for _, s := range sr.steps {
				if s.Phase == "ladder" {
					ladderSteps++
				}
			}
			for i, s := range sr.steps[:ladderSteps-1] {
				if !s.OK() {
					t.Errorf("ladder step %d is %s but the climb went on", i, s.Verdict)
				}
			}
		})
	}
}

func TestSaturationFloorAllowsPoissonNoise(t *testing.T) {
	sat := saturation{maxLagMs: 50, minAchieved: 0.97, window: 13 * time.Second}
	tests := []struct {
		name             string
		target, achieved float64
		offered          float64
		want             string
	}{
		{"small sample within 3 sigma of the target", 100, 93, 0, result.StepOK},
		{"large sample far below the target", 5000, 4700, 0, result.StepSaturated},
		{"offered rate known: compared exactly", 100, 96.5, 96.5, result.StepOK},
		{"offered rate known: behind it", 100, 90, 96.5, result.StepSaturated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := result.CapacityStep{TargetRate: tc.target, AchievedRate: tc.achieved, OfferedRate: tc.offered, SLO: result.SLOVerdict{Passed: true}}
			judge(&st, sat)
			if st.Verdict != tc.want {
				t.Errorf("verdict %q (%v), want %q", st.Verdict, st.Reasons, tc.want)
			}
		})
	}
}

func TestKnee(t *testing.T) {
	xs := []float64{100, 200, 300, 400, 500, 600, 700, 800}
	tests := []struct {
		name string
		xs   []float64
		ys   []float64
		want int
	}{
		{"hockey stick", xs, []float64{2, 2, 2.1, 2.2, 2.4, 3, 40, 900}, 5},
		{"gradual exponential", xs, []float64{1, 1.2, 1.5, 2, 3, 5, 9, 17}, 3},
		// A smoke run on a ×1.5 ladder: noise, then the rise between 759 and 1,139/s.
		{"noisy dip before the rise", []float64{100, 150, 225, 338, 506, 759, 1139, 1709, 2563},
			[]float64{4.8, 5.9, 6.8, 6.9, 4.3, 9.2, 52, 40.7, 100.8}, 5},
		{"only the last point blows up", xs[:4], []float64{3, 3, 3, 3000}, 2},
		{"power law has no knee", xs, []float64{1, 2, 3, 4, 5, 6, 7, 8}, -1},
		{"flat has no knee", xs, []float64{3, 3, 3, 3, 3, 3, 3, 3}, -1},
		{"two points have no knee", xs[:2], []float64{1, 100}, -1},
		{"concave has no knee", xs[:4], []float64{1, 50, 60, 62}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := knee(tc.xs, tc.ys); got != tc.want {
				t.Errorf("knee = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestCapacityKneeOrdersByRate(t *testing.T) {
	// A refinement step ran last but sits between two ladder steps.
	steps := []result.CapacityStep{
		{TargetRate: 100, P99Ms: 2, Transactions: 1},
		{TargetRate: 200, P99Ms: 2, Transactions: 1},
		{TargetRate: 400, P99Ms: 800, Transactions: 1, Verdict: result.StepBreach},
		{TargetRate: 300, P99Ms: 3, Transactions: 1},
	}
	if got, _ := curveKnee(steps); got != 3 {
		t.Errorf("knee step = %d, want 3 (300/s)", got)
	}
}

// A flat curve has no knee: what Kneedle would find there is noise. Measured on
// smoke.yaml: p99 2.3 ms at every step, and a "knee" at 146/s was reported.
func TestFlatCurveHasNoKnee(t *testing.T) {
	ladder := func(p99s ...float64) []result.CapacityStep {
		var out []result.CapacityStep
		r := 100.0
		for _, p := range p99s {
			out = append(out, result.CapacityStep{TargetRate: r, AchievedRate: r, P99Ms: p, Transactions: 100, Verdict: result.StepOK})
			r *= 1.5
		}
		return out
	}
	tests := []struct {
		name  string
		steps []result.CapacityStep
		knee  int
		rise  float64
	}{
		{"flat with noise", ladder(2.3, 2.1, 2.9, 2.2, 2.4, 2.3, 2.5, 2.3), -1, 1.38},
		{"rises less than 2×", ladder(2, 2.1, 2.2, 2.4, 2.8, 3.1, 3.5, 3.9), -1, 1.95},
		{"a real knee", ladder(2, 2.1, 2.2, 2.4, 2.8, 9, 60, 900), 4, 450},
		{"nothing measured", nil, -1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, rise := curveKnee(tc.steps)
			if k != tc.knee || rise != tc.rise {
				t.Errorf("knee %d rise %v, want %d %v", k, rise, tc.knee, tc.rise)
			}
			c := &runner{sc: smallScenario(t), cfg: Config{Hold: 15 * time.Second, Warmup: 2 * time.Second, MinAchieved: 0.97}, baseRate: 50, baseSessions: 20}
			res := c.assemble(searchResult{steps: tc.steps, sustainable: 100, limitFound: true}, time.Now())
			if (res.Capacity.KneeRate == nil) != (tc.knee < 0) || res.Capacity.KneeStep != tc.knee || res.Capacity.FlatFactor != FlatFactor {
				t.Errorf("result knee rate %v step %d flat factor %v", res.Capacity.KneeRate, res.Capacity.KneeStep, res.Capacity.FlatFactor)
			}
		})
	}
}

// Whether the search found the limit: only a step that breached or saturated says
// so. A ladder that ran out (the highest rate asked for, or the safety bound) found a
// lower bound, and says which.
func TestSearchSaysWhetherItFoundTheLimit(t *testing.T) {
	sat := saturation{maxLagMs: 50, minAchieved: 0.97, window: 13 * time.Second}
	tests := []struct {
		name    string
		db      fakeDB
		bounded bool
		found   bool
		stopped string
	}{
		{"breach", fakeDB{breachAt: 300}, false, true, "breached an SLO"},
		{"saturation", fakeDB{saturateAt: 250}, true, true, "saturated the database"},
		{"the highest rate asked for passed", fakeDB{}, true, false, "reached the highest rate asked for (600/s) with every step within the SLOs: the limit is at least 600/s"},
		{"the safety bound passed", fakeDB{}, false, false, "reached the safety bound (600/s, 6 steps) with every step within the SLOs: the limit is at least 600/s and was not found"},
		{"a failed step is no limit", fakeDB{failAt: 300}, false, false, "failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.db
			sr := search(t.Context(), []float64{100, 200, 300, 400, 500, 600}, tc.bounded, 0, sat, db.step, nil)
			if sr.limitFound != tc.found || !strings.Contains(sr.stopped, tc.stopped) {
				t.Errorf("limit found %v, stopped %q; want %v, %q", sr.limitFound, sr.stopped, tc.found, tc.stopped)
			}
		})
	}
}

func TestHeadroom(t *testing.T) {
	tests := []struct {
		name        string
		peak        float64
		sustainable float64
		interrupted bool
		headroom    float64
		passed      bool
		verdict     string
	}{
		{"above the peak", 2000, 3400, false, 1.7, true, "PASS: sustainable 3,400/s ≥ peak 2,000/s (headroom 1.7×)"},
		{"at the peak", 2000, 2000, false, 1, true, "PASS: sustainable 2,000/s ≥ peak 2,000/s (headroom 1.0×)"},
		{"below the peak", 2000, 1500, false, 0.75, false, "FAIL: sustainable 1,500/s < peak 2,000/s (headroom 0.75×)"},
		{"no peak, something sustainable", 0, 1500, false, 0, true, "PASS: sustainable 1,500/s (no peak rate declared"},
		{"no peak, nothing sustainable", 0, 0, false, 0, false, "FAIL: no step met the SLOs"},
		{"interrupted", 2000, 3400, true, 1.7, false, "FAIL: sustainable 3,400/s ≥ peak 2,000/s (headroom 1.7×) — interrupted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &runner{sc: smallScenario(t), cfg: Config{Peak: tc.peak, Hold: 15 * time.Second, Warmup: 2 * time.Second, MinAchieved: 0.97, MaxLagMs: 50},
				baseRate: 50, baseSessions: 20, versions: map[string]string{}}
			res := c.assemble(searchResult{sustainable: tc.sustainable, limitFound: true, interrupted: tc.interrupted}, time.Now())
			k := res.Capacity
			if k.Headroom != tc.headroom || k.Passed != tc.passed {
				t.Errorf("headroom %v passed %v, want %v %v", k.Headroom, k.Passed, tc.headroom, tc.passed)
			}
			if v := report.CapacityVerdict(res); !strings.HasPrefix(v, tc.verdict) {
				t.Errorf("verdict %q, want prefix %q", v, tc.verdict)
			}
			if res.Schema != result.SchemaCapacityV1 || k.KneeStep != -1 {
				t.Errorf("schema %q knee %d", res.Schema, k.KneeStep)
			}
		})
	}
}

func TestParseRateStep(t *testing.T) {
	tests := []struct {
		in   string
		want RateStep
		err  bool
	}{
		{"250", RateStep{Add: 250}, false},
		{"x1.5", RateStep{Factor: 1.5}, false},
		{" X2 ", RateStep{Factor: 2}, false},
		{"x1", RateStep{}, true},
		{"x0.5", RateStep{}, true},
		{"-5", RateStep{}, true},
		{"0", RateStep{}, true},
		{"fast", RateStep{}, true},
		{"x", RateStep{}, true},
	}
	for _, tc := range tests {
		got, err := ParseRateStep(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseRateStep(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.err)
		}
		var fe scenarios.FieldError
		if err != nil && (!errors.Is(err, scenarios.ErrInvalid) || !errors.As(err, &fe) || fe.Field != "capacity.step") {
			t.Errorf("ParseRateStep(%q) error is not a capacity.step field error: %v", tc.in, err)
		}
	}
}

func TestCapacityDefaultsAndLadder(t *testing.T) {
	sc := smallScenario(t) // rate 50
	tests := []struct {
		name     string
		cfg      Config
		peak     float64
		rates    []float64
		problems int
	}{
		{"defaults: 25% of the rate, ×1.5, up to the safety bound", Config{}, 0,
			[]float64{12.5, 18.8, 28, 42, 63, 95, 142, 214, 320, 481, 721, 1081, 1622, 2433, 3649, 5474, 8211, 12316, 18474, 27710, 41566, 62349, 93523, 140284, 210426, 315640, 473459, 710189}, 0},
		{"a peak does not cap the climb", Config{From: 100, Step: RateStep{Factor: 10}}, 100, []float64{100, 1000, 10000, 100000, 1000000}, 0},
		{"an additive climb without a top stops after MaxSteps", Config{From: 100, Step: RateStep{Add: 100}}, 0, nil, 0},
		{"explicit ladder", Config{From: 100, To: 300, Step: RateStep{Add: 100}}, 0, []float64{100, 200, 300}, 0},
		{"the highest rate asked for is tried", Config{From: 100, To: 600}, 0, []float64{100, 150, 225, 338, 506, 600}, 0},
		{"to below from", Config{From: 100, To: 50}, 0, nil, 1},
		{"hold not whole seconds, warm-up too long", Config{Hold: 2500 * time.Millisecond, Warmup: 2 * time.Second}, 0, nil, 2},
		{"too many steps", Config{From: 1, To: 10000, Step: RateStep{Add: 1}}, 0, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := sc.Clone()
			s.SLO.PeakRate = tc.peak
			cfg, problems := tc.cfg.WithDefaults(s)
			if len(problems) != tc.problems {
				t.Fatalf("problems %q, want %d", problems, tc.problems)
			}
			switch rates := cfg.Rates(); {
			case tc.problems > 0:
			case tc.rates == nil:
				if len(rates) != MaxSteps || rates[0] != cfg.From {
					t.Errorf("%d rates from %v, want %d from %v", len(rates), rates[0], MaxSteps, cfg.From)
				}
			case !slices.Equal(rates, tc.rates):
				t.Errorf("rates %v, want %v", rates, tc.rates)
			}
		})
	}
}

func TestOfferedRateReplaysTheSchedule(t *testing.T) {
	sc := smallScenario(t)
	sc.Load.Rate = 100
	sc.Load.Duration = scenarios.Duration(15 * time.Second)
	// Seed 1's Poisson schedule offers 1,255 arrivals in [2s, 15s) at 100/s.
	if got := offeredRate(sc, 2*time.Second, 15*time.Second); got < 96 || got > 97 {
		t.Errorf("offered %v/s, want about 96.5/s", got)
	}
	sc.Load.Arrival = "constant"
	if got := offeredRate(sc, 2*time.Second, 15*time.Second); got != 100 {
		t.Errorf("constant offered %v/s, want 100/s", got)
	}
}

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
