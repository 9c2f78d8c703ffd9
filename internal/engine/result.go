package engine

import (
	"math"
	"time"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
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
