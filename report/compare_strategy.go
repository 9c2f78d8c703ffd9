package report

import (
	"fmt"
	"math"

	"github.com/rehearse-dev/rehearse/result"
)

// Cutover strategies as results record them (migration.strategy); a result without
// one was in_cluster.
const (
	strategyInCluster = "in_cluster"
	strategyBlueGreen = "blue_green"
)

// unitBytes marks a byte count in a strategy comparison.
const unitBytes = "bytes"

// StrategyComparison sets side by side what users felt under two cutover strategies
// on the same scenario, phase by phase.
type StrategyComparison struct {
	// Base and Candidate are the two runs' strategies.
	Base, Candidate string
	// Rows are the metrics, by phase ("all" for the whole run, "" for the cutover's
	// own numbers).
	Rows []StrategyRow
}

// StrategyRow is one metric in one phase under both strategies.
type StrategyRow struct {
	Phase, Metric   string
	Base, Candidate float64
	Unit            string
	// Missing says a side lacks the metric.
	Missing string
}

// strategyOf is a result's cutover strategy ("" without a cutover).
func strategyOf(r *result.Result) string {
	switch {
	case r.Migration == nil:
		return ""
	case r.Migration.Strategy == "":
		return strategyInCluster
	}
	return r.Migration.Strategy
}

// compareStrategies is the strategy comparison of two results whose cutovers used
// different strategies, nil otherwise.
func compareStrategies(base, cand *result.Result) *StrategyComparison {
	bs, cs := strategyOf(base), strategyOf(cand)
	if bs == "" || cs == "" || bs == cs {
		return nil
	}
	sc := &StrategyComparison{Base: bs, Candidate: cs}
	for _, ph := range []string{result.PhaseBefore, result.PhaseDuring, result.PhaseAfter, phaseAll} {
		bf, ba, bp := phaseFailures(base, ph)
		cf, ca, cp := phaseFailures(cand, ph)
		sc.Rows = append(sc.Rows,
			StrategyRow{Phase: ph, Metric: "failed operations", Base: bf, Candidate: cf, Unit: result.UnitCount},
			StrategyRow{Phase: ph, Metric: "failed attempts", Base: ba, Candidate: ca, Unit: result.UnitCount},
			StrategyRow{Phase: ph, Metric: "longest write stall", Base: writeStall(base, ph), Candidate: writeStall(cand, ph), Unit: result.UnitMs},
			StrategyRow{Phase: ph, Metric: "p99 (worst operation)", Base: bp, Candidate: cp, Unit: result.UnitMs},
		)
	}
	bl, cl := base.Migration.LagAtPromotion, cand.Migration.LagAtPromotion
	sc.Rows = append(sc.Rows,
		StrategyRow{Metric: "lag at switchover", Base: float64(bl.Bytes), Candidate: float64(cl.Bytes), Unit: unitBytes},
		switchoverRow(base, cand, "writes blocked at the switchover", "stall_ms"),
		StrategyRow{Metric: "cutover (the during phase)", Base: duringSpan(base), Candidate: duringSpan(cand), Unit: result.UnitMs},
		StrategyRow{Metric: "lost acknowledged writes", Base: float64(base.Integrity.LostAcknowledgedWrites), Candidate: float64(cand.Integrity.LostAcknowledgedWrites), Unit: result.UnitCount},
	)
	return sc
}

// phaseFailures sums a phase's failed operations and failed attempts over every
// operation, and takes the worst operation's p99 (percentiles of different
// operations do not add up).
func phaseFailures(r *result.Result, ph string) (failed, attempts, p99 float64) {
	for _, o := range r.Operations {
		p := opPhase(o, ph)
		if ph == phaseAll {
			p.FailedAttempts = o.Attempts.Failed
		}
		failed += float64(p.Errors)
		attempts += float64(p.FailedAttempts)
		p99 = math.Max(p99, p.LatencyMs.P99)
	}
	return failed, attempts, p99
}

// writeStall is the longest write unavailability window in a phase.
func writeStall(r *result.Result, ph string) float64 {
	if ph == phaseAll {
		return r.Availability.WriteUnavailableMaxMs
	}
	return r.Availability.PerPhase[ph].WriteMaxMs
}

// switchoverRow compares a number of the switchover step's detail (key, in ms).
func switchoverRow(base, cand *result.Result, metric, key string) StrategyRow {
	row := StrategyRow{Metric: metric, Unit: result.UnitMs}
	var ok [2]bool
	row.Base, ok[0] = stepNumber(base, "switchover", key)
	row.Candidate, ok[1] = stepNumber(cand, "switchover", key)
	switch {
	case !ok[0] && !ok[1]:
		row.Missing = "not recorded"
	case !ok[0]:
		row.Missing = "not recorded in base"
	case !ok[1]:
		row.Missing = "not recorded in candidate"
	}
	return row
}

// stepNumber reads a number from a step's detail.
func stepNumber(r *result.Result, step, key string) (float64, bool) {
	for _, s := range r.Migration.Steps {
		if s.Name == step {
			if v, ok := s.Detail[key].(float64); ok {
				return v, true
			}
		}
	}
	return 0, false
}

// duringSpan is how long the during phase lasted: from the first step that changed
// the cluster to the end of the redirect (or of the plan).
func duringSpan(r *result.Result) float64 {
	var windows float64
	for _, w := range r.PhaseWindows {
		if w.Phase == result.PhaseDuring {
			windows += (w.EndS - w.StartS) * 1000
		}
	}
	if windows > 0 {
		return windows
	}
	var start, end float64 = -1, 0
	for _, s := range r.Migration.Steps {
		if s.Name == "preflight" || s.Status == "skipped" {
			continue
		}
		if start < 0 {
			start = s.StartS
		}
		end = s.EndS
		if s.Name == "redirect" {
			break
		}
	}
	if start < 0 {
		return 0
	}
	return (end - start) * 1000
}

// strategyCell formats one side of a strategy row.
func strategyCell(v float64, unit string) string {
	if unit == unitBytes {
		return fmtBytes(v)
	}
	return fmtValue(v, unit)
}

// strategyCells formats a row's two sides.
func (r StrategyRow) cells() (base, cand string) {
	if r.Missing == "not recorded" {
		return "—", "—"
	}
	base, cand = strategyCell(r.Base, r.Unit), strategyCell(r.Candidate, r.Unit)
	switch r.Missing {
	case "not recorded in base":
		base = "—"
	case "not recorded in candidate":
		cand = "—"
	}
	return base, cand
}

// PhaseLabel is the row's phase as the tables show it.
func (r StrategyRow) PhaseLabel() string {
	if r.Phase == "" {
		return "cutover"
	}
	return r.Phase
}

// BaseCell and CandidateCell are the row's formatted sides.
func (r StrategyRow) BaseCell() string { b, _ := r.cells(); return b }

// CandidateCell is the candidate's side, formatted.
func (r StrategyRow) CandidateCell() string { _, c := r.cells(); return c }

// strategyNote explains a strategy comparison.
func strategyNote(sc *StrategyComparison) string {
	return fmt.Sprintf("A strategy comparison: the base ran the %s cutover, the candidate %s. Differences during the cutover, over the whole run and in unavailability are the strategies', not regressions; before and after stay comparable.", sc.Base, sc.Candidate)
}
