package report

import (
	"bytes"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/internal/slo"
	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// golden compares got with testdata/name (go test ./report -update rewrites it).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testutil.Golden(t, filepath.Join("testdata", name), got)
}

// sample reads a fixture from testdata; under -update it first regenerates the
// fixture from its generator, so goldens always derive from the checked-in file.
func sample(t testing.TB, name string) *result.Result {
	t.Helper()
	path := filepath.Join("testdata", name)
	// A fixture without a generator is a recorded run's result (sample-cycles.json:
	// scenarios/smoke.yaml, wet, proxy, cutover.cycles 5, with a fault and
	// guardrails added), kept as it was.
	if gen := map[string]func() *result.Result{"sample-wet.json": sampleWet, "sample-dry.json": sampleDry}[name]; testutil.Updating() && gen != nil {
		if err := result.WriteFileAtomic(path, func(w io.Writer) error { return result.Encode(w, gen()) }); err != nil {
			t.Fatal(err)
		}
	}
	res, err := result.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// sampleSLO is the SLO section the sample runs are judged by.
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

// sampleOp is one banking operation of the samples: its mix weight, kind and
// healthy latency.
type sampleOp struct {
	name   string
	kind   string
	weight float64
	p50    float64
}

var sampleOps = []sampleOp{
	{"login", "write", 0.05, 3.1},
	{"balance", "read", 0.30, 0.9},
	{"statement", "read", 0.15, 2.4},
	{"transfer", "write", 0.15, 3.8},
	{"deposit", "write", 0.08, 2.9},
	{"logout", "write", 0.05, 1.6},
	{"dashboard", "read", 0.17, 1.8},
	{"background_job", "write", 0.05, 6.2},
}

var sampleSteps = []string{"preflight", "create_replica", "catch_up", "forward_writes", "switchover", "redirect", "validate", "keep_rollback_target", "decommission"}

func r2(v float64) float64 { return math.Round(v*100) / 100 }

// sampleBase fills what the wet and dry samples share.
func sampleBase(mode string) *result.Result {
	start := time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC)
	return &result.Result{
		Schema:    result.SchemaV1,
		Mode:      mode,
		Scenario:  result.ScenarioInfo{Name: "smoke", File: "scenarios/smoke.yaml", SHA256: "5f1c0d5e8a2b7c3d9e4f6a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abc"},
		Target:    result.TargetInfo{Kind: "local", EndpointMode: "dns", Workload: "banking", Versions: map[string]string{"postgres": "15.8", "pgx": "v5.12.0", "go": "go1.26.8"}},
		StartedAt: start,
		EndedAt:   start.Add(40 * time.Second),
		DurationS: 40,
		Version:   "v0.1.0-dev",
		Client: &result.Client{Preset: "hikari", AppInstances: 8, PoolSize: 16, ConnectTimeoutMs: 30000, MaxLifetimeS: 1800,
			ValidateOnBorrow: true, DNSCacheTTL: "30s", Failover: "none",
			Retry: result.ClientRetry{MaxAttempts: 3, BackoffMs: 100, MaxBackoffMs: 2000, On: []string{"connection", "admin_shutdown"}}},
	}
}

// sampleTimeline simulates 40 s at 400 actions/s. fail(t, kind) gives the failed
// fraction of that kind in second t; lat(t) multiplies p50/p99/max.
func sampleTimeline(res *result.Result, rng *rand.Rand, steps []result.Step, fail func(t int, kind string) float64, spike func(t int) (p99, max float64)) {
	phaseOf := func(t float64) string {
		if len(steps) < 6 || t < steps[1].StartS {
			return result.PhaseBefore
		}
		if t < steps[5].EndS {
			return result.PhaseDuring
		}
		return result.PhaseAfter
	}
	type acc struct{ count, errors, failedAttempts, retried int64 }
	perOp := map[string]map[string]*acc{}
	for _, o := range sampleOps {
		perOp[o.name] = map[string]*acc{result.PhaseBefore: {}, result.PhaseDuring: {}, result.PhaseAfter: {}}
	}
	var tx, failed, retries, failedAttempts int64
	for t := 0; t < 40; t++ {
		row := result.TimelineRow{TS: float64(t), PerOp: map[string]int64{}}
		var errs, attempts int64
		for _, o := range sampleOps {
			n := int64(math.Round(400 * o.weight * (0.9 + 0.2*rng.Float64())))
			e := int64(math.Round(float64(n) * fail(t, o.kind)))
			// Half as many again failed an attempt that a retry made good.
			r := e / 2
			row.PerOp[o.name] = n - e
			row.Ops += n - e
			errs += e
			attempts += e + r
			a := perOp[o.name][phaseOf(float64(t)+0.5)]
			a.count += n
			a.errors += e
			a.failedAttempts += e + r
			a.retried += r
			tx += n
			retries += r
		}
		if errs > 0 {
			row.Errors = errs
			row.FailedAttempts = attempts
			shut := int64(0)
			if t >= 16 {
				shut = attempts * 2 / 5
			}
			row.ErrorsByClass = map[string]int64{"connection_reset": attempts - shut}
			if shut > 0 {
				row.ErrorsByClass["admin_shutdown"] = shut
			}
		}
		p99m, maxm := spike(t)
		row.P50Ms = r2(1.9 + 0.4*rng.Float64())
		row.P99Ms = r2((11 + 4*rng.Float64()) * p99m)
		row.MaxMs = r2((24 + 10*rng.Float64()) * maxm)
		if row.Ops == 0 {
			row.P50Ms, row.P99Ms, row.MaxMs = 0, 0, 0
		}
		failed += errs
		failedAttempts += attempts
		res.Timeline = append(res.Timeline, row)
	}
	for i, o := range sampleOps {
		op := result.Operation{Name: o.name, Kind: o.kind, Phases: map[string]result.Phase{}}
		worst := 1.0
		for _, ph := range []string{result.PhaseBefore, result.PhaseDuring, result.PhaseAfter} {
			a := perOp[o.name][ph]
			if a.count == 0 {
				continue
			}
			m := 1.0
			if ph == result.PhaseDuring {
				p99m, _ := spike(16)
				m = p99m
			}
			worst = math.Max(worst, m)
			l := result.Latency{P50: r2(o.p50 * (1 + 0.05*float64(i%3))), P90: r2(o.p50 * 2.6), P99: r2(o.p50 * 4.2 * m), P999: r2(o.p50 * 7.5 * m), Max: r2(o.p50 * 11 * m * 1.3)}
			if ph == result.PhaseAfter {
				l.P50, l.P99 = r2(l.P50*1.04), r2(l.P99*1.08)
			}
			op.Phases[ph] = result.Phase{Count: a.count, Errors: a.errors, FailedAttempts: a.failedAttempts, LatencyMs: l}
			op.Count += a.count
			op.Errors += a.errors
			op.Attempts.Failed += a.failedAttempts
			op.Attempts.Retried += a.retried
			if a.retried > 0 {
				op.Attempts.Max = 3
			}
		}
		op.LatencyMs = result.Latency{P50: r2(o.p50 * 1.02), P90: r2(o.p50 * 2.7), P99: r2(o.p50 * 4.6 * math.Sqrt(worst)), P999: r2(o.p50 * 7.5 * worst), Max: r2(o.p50 * 11 * worst * 1.3)}
		op.ServiceMs = result.Service{P50: r2(o.p50 * 0.92), P99: r2(o.p50 * 3.9), Max: r2(o.p50 * 9)}
		res.Operations = append(res.Operations, op)
	}
	res.Totals = result.Totals{Transactions: tx, Failed: failed, Ambiguous: 0, Succeeded: tx - failed, Retries: retries, Attempts: tx + retries, FailedAttempts: failedAttempts}
	res.Load = result.LoadInfo{Model: "open", Sessions: 2000, TargetRate: 400, AchievedRate: r2(float64(tx) / 40), ScheduleLagP99Ms: 0.84, ScheduleLagMaxMs: 3.9, PoolSize: 32, Workers: 64, Arrivals: tx}
}

// sampleWet is a smoke wet run: 40 s, 8 banking operations, the full 9-step
// cutover with a write outage around the switchover.
func sampleWet() *result.Result {
	res := sampleBase("wet")
	rng := rand.New(rand.NewPCG(1, 2))
	bounds := [][2]float64{{5.0, 5.2}, {5.2, 11.8}, {11.8, 14.9}, {14.9, 15.3}, {15.3, 17.4}, {17.4, 19.6}, {19.6, 22.0}, {22.0, 27.5}, {32.5, 34.0}}
	var steps []result.Step
	details := map[string]map[string]any{
		"preflight":      {"writer": "pg-primary", "checksums": true},
		"create_replica": {"replica": "pg-replica-1", "slot": "rehearse_replica_1"},
		"catch_up":       {"samples": 3, "lag_bytes": 0},
		"switchover":     {"new_writer": "pg-replica-1"},
		"redirect":       {"mode": "dns", "stale_window_ms": 2000},
	}
	for i, n := range sampleSteps {
		steps = append(steps, result.Step{Name: n, Status: "ok", StartS: bounds[i][0], EndS: bounds[i][1], Detail: details[n]})
	}
	res.Migration = &result.Migration{Plan: sampleSteps, Outcome: "completed", Steps: steps, WriterBefore: "pg-primary", WriterAfter: "pg-replica-1", LagAtPromotion: result.LagAtPromotion{Bytes: 0, Ms: 0.4}}
	fail := func(t int, kind string) float64 {
		switch {
		case (t == 16 || t == 17) && kind == "write":
			return 1
		case t == 16 && kind == "read":
			return 0.4
		case t == 15 && kind == "write":
			return 0.3
		case t == 18:
			return 0.05
		}
		return 0
	}
	spike := func(t int) (float64, float64) {
		switch {
		case t >= 15 && t <= 17:
			return 95, 70
		case t == 18 || t == 19:
			return 5, 6
		case t >= 5 && t <= 11:
			return 1.5, 1.4
		}
		return 1, 1
	}
	sampleTimeline(res, rng, steps, fail, spike)
	res.Errors = []result.ErrorClass{
		{Class: "connection_reset", SQLState: "08006", FirstS: 15.31, LastS: 18.92, Example: "FATAL: terminating connection due to administrator command (SQLSTATE 08006): unexpected EOF", Phases: map[string]int64{result.PhaseDuring: 0}},
		{Class: "admin_shutdown", SQLState: "57P01", FirstS: 16.02, LastS: 17.38, Example: "FATAL: terminating connection due to administrator command (SQLSTATE 57P01)", Phases: map[string]int64{result.PhaseDuring: 0}},
	}
	for _, r := range res.Timeline {
		for i := range res.Errors {
			res.Errors[i].Count += r.ErrorsByClass[res.Errors[i].Class]
			res.Errors[i].Phases[result.PhaseDuring] += r.ErrorsByClass[res.Errors[i].Class]
		}
	}
	res.Availability = result.Availability{
		WriteUnavailableMaxMs: 1412.5,
		ReadUnavailableMaxMs:  388.2,
		PerPhase: map[string]result.PhaseWindows{
			result.PhaseBefore: {}, result.PhaseDuring: {WriteMaxMs: 1412.5, ReadMaxMs: 388.2}, result.PhaseAfter: {},
		},
		Windows: []result.Window{
			{Kind: "write", StartS: 15.94, EndS: 17.35, Ms: 1412.5, Attempts: 412, Phase: result.PhaseDuring},
			{Kind: "read", StartS: 16.21, EndS: 16.6, Ms: 388.2, Attempts: 157, Phase: result.PhaseDuring},
		},
	}
	res.Integrity = result.Integrity{Checked: true, BalanceConserved: true, Ambiguous: 2, AmbiguousCommitted: 1, AcknowledgedWrites: 6121,
		Details: []string{"sum of balances 4000000000 = opening 4000000000", "2 ambiguous commits resolved by idempotency key: 1 committed, 1 not"}}
	res.Totals.Ambiguous = 2
	res.Totals.Succeeded -= 2
	res.Notes = []string{"dns endpoint mode: new connections reached the old writer for up to 2 s after the switchover"}
	res.SLO = slo.Evaluate(res, sampleSLO())
	return res
}

// sampleDry is the dry run of the same scenario: the steps only checked and
// planned, no outage, no errors.
func sampleDry() *result.Result {
	res := sampleBase("dry")
	rng := rand.New(rand.NewPCG(3, 4))
	var steps []result.Step
	at := 5.0
	for i, n := range sampleSteps {
		d := 0.05 + 0.03*float64(i%4)
		steps = append(steps, result.Step{Name: n, Status: "planned", StartS: r2(at), EndS: r2(at + d), Detail: map[string]any{"would": "run " + n}})
		at += d
	}
	res.Migration = &result.Migration{Plan: sampleSteps, Outcome: "dry", Steps: steps, WriterBefore: "pg-primary", WriterAfter: "pg-primary"}
	sampleTimeline(res, rng, steps, func(int, string) float64 { return 0 }, func(int) (float64, float64) { return 1, 1 })
	res.Availability = result.Availability{PerPhase: map[string]result.PhaseWindows{result.PhaseBefore: {}, result.PhaseDuring: {}, result.PhaseAfter: {}}}
	res.Integrity = result.Integrity{Checked: true, BalanceConserved: true, AcknowledgedWrites: 6210}
	res.SLO = slo.Evaluate(res, sampleSLO())
	return res
}

// hourResult is a 1-hour run at 2,000 actions/s with 10 operations and a cutover
// in the middle: the scale the renderers must handle in well under 2 s.
func hourResult() *result.Result {
	res := sampleBase("wet")
	res.DurationS = 3600
	res.EndedAt = res.StartedAt.Add(time.Hour)
	rng := rand.New(rand.NewPCG(5, 6))
	names := []string{"login", "balance", "statement", "transfer", "deposit", "logout", "dashboard", "background_job", "search", "update_profile"}
	var steps []result.Step
	at := 1800.0
	for _, n := range sampleSteps {
		steps = append(steps, result.Step{Name: n, Status: "ok", StartS: at, EndS: at + 20})
		at += 25
	}
	res.Migration = &result.Migration{Plan: sampleSteps, Outcome: "completed", Steps: steps}
	for t := 0; t < 3600; t++ {
		row := result.TimelineRow{TS: float64(t), PerOp: map[string]int64{}, P50Ms: 2 + rng.Float64(), P99Ms: 12 + 8*rng.Float64(), MaxMs: 30 + 40*rng.Float64()}
		for _, n := range names {
			v := int64(200 * (0.9 + 0.2*rng.Float64()))
			row.PerOp[n] = v
			row.Ops += v
		}
		if t > 1900 && t < 1904 {
			row.ErrorsByClass = map[string]int64{"connection_reset": 300, "admin_shutdown": 120}
			row.Errors = 420
			row.P99Ms, row.MaxMs = 1500, 2400
		}
		res.Timeline = append(res.Timeline, row)
	}
	for _, n := range names {
		l := result.Latency{P50: 2, P90: 6, P99: 14, P999: 40, Max: 2400}
		res.Operations = append(res.Operations, result.Operation{Name: n, Kind: "read", Count: 720000, LatencyMs: l,
			Phases: map[string]result.Phase{result.PhaseBefore: {Count: 360000, LatencyMs: l}, result.PhaseDuring: {Count: 20000, LatencyMs: l}, result.PhaseAfter: {Count: 340000, LatencyMs: l}}})
	}
	res.Totals = result.Totals{Transactions: 7200000, Succeeded: 7198740, Failed: 1260}
	res.Load = result.LoadInfo{Model: "open", TargetRate: 2000, AchievedRate: 1999.6}
	res.SLO = slo.Evaluate(res, sampleSLO())
	return res
}

func TestSampleFixturesMatchGenerators(t *testing.T) {
	for name, gen := range map[string]func() *result.Result{"sample-wet.json": sampleWet, "sample-dry.json": sampleDry} {
		t.Run(name, func(t *testing.T) {
			var want bytes.Buffer
			if err := result.Encode(&want, gen()); err != nil {
				t.Fatal(err)
			}
			sample(t, name) // regenerates under -update
			got, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("testdata/%s is stale; run go test ./report -update", name)
			}
		})
	}
}
