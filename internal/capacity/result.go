package capacity

import (
	"fmt"
	"math"
	"time"

	"github.com/rehearse-dev/rehearse/internal/engine"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// assemble builds the capacity result.
func (r *runner) assemble(sr searchResult, started time.Time) *result.CapacityResult {
	end := time.Now()
	k := result.Capacity{
		MaxSustainableRate: sr.sustainable,
		LimitFound:         sr.limitFound,
		PeakRate:           r.cfg.Peak,
		StoppedBecause:     sr.stopped,
		WithCutover:        r.cfg.WithCutover,
		HoldS:              r.cfg.Hold.Seconds(),
		WarmupS:            r.cfg.Warmup.Seconds(),
		LatencyLimits:      latencyLimits(r.sc.SLO, r.cfg.WithCutover),
		Steps:              sr.steps,
		FlatFactor:         FlatFactor,
	}
	if k.Steps == nil {
		k.Steps = []result.CapacityStep{}
	}
	k.KneeStep, k.P99Rise = curveKnee(k.Steps)
	if k.KneeStep >= 0 {
		rate := k.Steps[k.KneeStep].AchievedRate
		k.KneeRate = &rate
	}
	if k.PeakRate > 0 {
		k.Headroom = math.Round(k.MaxSustainableRate/k.PeakRate*1000) / 1000
		k.Passed = k.MaxSustainableRate >= k.PeakRate
	} else {
		k.Passed = k.MaxSustainableRate > 0
	}
	if sr.interrupted {
		k.Passed = false
	}
	versions := r.versions
	if versions == nil {
		versions = map[string]string{"rehearse": r.env.Engine.Version}
	}
	res := &result.CapacityResult{
		Schema:      result.SchemaCapacityV1,
		Interrupted: sr.interrupted,
		Scenario:    result.ScenarioInfo{Name: r.sc.Name, File: r.sc.File, SHA256: r.sc.SHA256},
		Target: result.TargetInfo{
			Kind: string(r.sc.Target.Kind), EndpointMode: string(r.sc.Target.Endpoint), Versions: versions,
			Workload: r.sc.Workload.Name,
		},
		StartedAt: started.UTC(),
		EndedAt:   end.UTC(),
		DurationS: engine.Round3(end.Sub(started).Seconds()),
		Capacity:  k,
		Version:   r.env.Engine.Version,
	}
	if r.sc.Target.DSN != "" {
		res.Target.Kind = string(scenarios.TargetDSN)
	}
	if !r.cfg.WithCutover {
		res.Target.EndpointMode = ""
		res.Notes = append(res.Notes, "Every step ran against one database, set up once: data written by earlier steps stays, as it would in production. The scenario's cutover was not run (use --with-cutover).")
	} else {
		res.Notes = append(res.Notes, "Every step started a fresh cluster, seeded the workload and ran the scenario's cutover for real: a cutover decommissions the old writer, so a cluster serves one step.")
	}
	if r.cfg.Peak <= 0 {
		res.Notes = append(res.Notes, "The scenario declares no peak rate, so no headroom was computed and the verdict passes when some rate was sustainable: set slo.peak_rate in the scenario, or --peak, to judge against today's peak.")
	}
	lag := fmt.Sprintf(", or its schedule lag p99 (over the whole step) exceeds %.0f ms", r.cfg.MaxLagMs)
	if r.cfg.WithCutover {
		lag = " (schedule lag is not a criterion with a cutover, whose switchover stalls operations by design)"
	}
	res.Notes = append(res.Notes, fmt.Sprintf("A step is saturated when the operations it completed fall below %.0f%% of the arrivals its schedule offered in the measured window%s. Sessions scale with the rate (%d sessions at %s/s). The knee is the point of maximum curvature of p99 latency against the target rate on log-log axes (Kneedle); none is named when p99 rose by less than %.0f× across the steps (a flat curve).",
		r.cfg.MinAchieved*100, lag, r.baseSessions, FmtRate(r.baseRate), FlatFactor))
	return res
}

// latencyLimits lists the scenario's latency SLOs that apply to the steps: without a
// cutover the whole step is the "before" phase.
func latencyLimits(s scenarios.SLO, withCutover bool) []result.LatencyLimit {
	out := []result.LatencyLimit{}
	for _, l := range s.Latency {
		ph := l.Phase
		if !withCutover && ph != "" && ph != "all" && ph != result.PhaseBefore {
			continue
		}
		pct := l.Percentile
		if pct == 0 {
			pct = 99
		}
		out = append(out, result.LatencyLimit{Op: l.Op, Phase: ph, Percentile: pct, MaxMs: float64(l.Max.D().Microseconds()) / 1000})
	}
	return out
}
