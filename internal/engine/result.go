package engine

import (
	"fmt"
	"math"
	"time"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workload/replay"
)

// buildResult assembles a step's result from what the load and the integrity check
// recorded. The SLO verdict is left to the caller.
func (r *Rehearsal) buildResult(sc *scenarios.Scenario, spec StepSpec, stats loadgen.Stats, start time.Time, sum loadgen.Summary, workers int, target float64, integ result.Integrity) *result.Result {
	mode := scenarios.ModeWet
	if spec.Dry || !spec.Cutover {
		mode = scenarios.ModeDry
	}
	res := &result.Result{
		Schema:      result.SchemaV1,
		Mode:        string(mode),
		Interrupted: stats.Interrupted,
		Scenario:    result.ScenarioInfo{Name: sc.Name, File: sc.File, SHA256: sc.SHA256},
		Target: result.TargetInfo{
			Kind: string(r.tgt.Kind()), EndpointMode: string(r.tgt.EndpointMode()), Versions: r.versions,
			Workload: sc.Workload.Name,
		},
		StartedAt:  start.UTC(),
		EndedAt:    start.Add(stats.Elapsed).UTC(),
		DurationS:  Round3(stats.Elapsed.Seconds()),
		Totals:     sum.Totals,
		Operations: sum.Operations,
		Errors:     sum.Errors,
		Timeline:   sum.Timeline,
		Load: result.LoadInfo{
			Model:            sc.Load.Model,
			Sessions:         sc.Load.Sessions,
			TargetRate:       Round3(target),
			ScheduleLagP99Ms: sum.LagP99Ms,
			ScheduleLagMaxMs: sum.LagMaxMs,
			PoolSize:         poolSize(sc),
			Workers:          workers,
			Arrivals:         stats.Arrivals,
		},
		Availability: sum.Availability,
		PhaseWindows: sum.PhaseWindows,
		Integrity:    integ,
		Client:       clientInfo(sc),
		Version:      r.cfg.Version,
	}
	if sc.Load.Model == "closed" {
		res.Load.Sessions = sc.Load.Connections
	}
	if s := stats.Elapsed.Seconds(); s > 0 {
		res.Load.AchievedRate = Round3(float64(stats.Arrivals) / s)
	}
	res.Notes = append(res.Notes, sc.Notes...)
	if rp, ok := r.wl.(*replay.Workload); ok {
		dropSessionEnds(res)
		captured := rp.CapturedErrors()
		for i := range res.Operations {
			res.Operations[i].CapturedErrors = captured[res.Operations[i].Name]
		}
		sum := rp.Summary()
		res.Notes = append(res.Notes, fmt.Sprintf("Replay of %s: %d statements from %d sessions over %s at speed %g; each operation is a captured statement fingerprint, and captured_errors counts the statements the capture itself recorded failing.",
			sc.Workload.Capture, sum.Statements, sum.Sessions, rp.Duration().Round(time.Millisecond), sc.Workload.Speed))
	}
	if res.Operations == nil {
		res.Operations = []result.Operation{}
	}
	if res.Errors == nil {
		res.Errors = []result.ErrorClass{}
	}
	return res
}

// Round3 rounds to three decimals, as results record rates and seconds.
func Round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// clientInfo records the client behaviour the step used.
func clientInfo(sc *scenarios.Scenario) *result.Client {
	c := sc.Client
	ms := func(d scenarios.Duration) float64 { return Round3(float64(d.D()) / float64(time.Millisecond)) }
	return &result.Client{
		Preset: c.Preset, AppInstances: instances(sc), PoolSize: poolSize(sc),
		ConnectTimeoutMs: ms(c.ConnectTimeout), MaxLifetimeS: Round3(c.MaxLifetime.D().Seconds()),
		ValidateOnBorrow: c.ValidateOnBorrow, DNSCacheTTL: c.DNSCacheTTL, TCPUserTimeoutMs: ms(c.TCPUserTimeout),
		Failover: c.Failover,
		Retry: result.ClientRetry{MaxAttempts: c.Retry.MaxAttempts, BackoffMs: ms(c.Retry.Backoff), MaxBackoffMs: ms(c.Retry.MaxBackoff),
			On: append([]string{}, c.Retry.On...)},
	}
}

// dropSessionEnds removes a replay's "(session end)" operations from the result:
// they hand back the connection of a session that ended holding one, and are not
// statements of the capture, which the result counts.
func dropSessionEnds(res *result.Result) {
	for i, o := range res.Operations {
		if o.Name != replay.OpSessionEnd {
			continue
		}
		t := &res.Totals
		t.Transactions -= o.Count
		t.Succeeded -= o.Count - o.Errors
		t.Failed -= o.Errors
		t.Attempts -= o.Count + o.Attempts.Retried
		t.FailedAttempts -= o.Attempts.Failed
		res.Load.Arrivals -= o.Count
		for j := range res.Timeline {
			row := &res.Timeline[j]
			n := row.PerOp[o.Name]
			row.Ops -= n
			delete(row.PerOp, o.Name)
		}
		res.Operations = append(res.Operations[:i], res.Operations[i+1:]...)
		return
	}
}
