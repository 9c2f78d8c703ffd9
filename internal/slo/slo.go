// Package slo judges a run's result against a scenario's SLOs. It reads only the
// result and the scenario's slo section, so any result can be re-judged.
package slo

import (
	"fmt"
	"strconv"

	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// phaseAll is the LatencySLO phase that means the whole run.
const phaseAll = "all"

// Evaluate judges res against slo and returns the verdict; the caller stores it in
// res.SLO. Checks are named for people: "p99 latency transfer during", "error rate",
// "attempt error rate", "max write unavailability", "max read unavailability",
// "lost acknowledged writes",
// "achieved rate / target", and per slo.database limit "database cpu p95 writer
// (node2) after (percent)" (see databaseChecks).
//
// Latency percentiles are read from the summaries a Result carries (p50, p90, p99,
// p99.9, max). A percentile without its own summary is checked against the next
// higher one — p95 against p99, p99.99 against max — so a substitute can only be
// stricter, never more lenient; the check's name says which summary was used.
//
// Nothing passes silently: a latency limit for an operation that did not run, or did
// not run in the phase asked for, fails with a Reason. A limit for a phase that did
// not occur in the run at all (no cutover, so no "during") passes with a Reason
// saying it was not applicable. Lost acknowledged writes are always checked; when
// integrity was not checked that check fails ("integrity not checked").
func Evaluate(res *result.Result, slo scenarios.SLO) result.SLOVerdict {
	var checks []result.SLOCheck
	explicit := explicitLatency(slo.Latency)
	seen := map[string]bool{}
	for _, l := range slo.Latency {
		for _, c := range latencyChecks(res, l) {
			// An operation a scenario names has its own limit: the wildcard's for the
			// same phase and percentile does not apply to it, and a check is evaluated
			// once however many entries name it.
			if isWildcard(l.Op) && c.Op != "" && explicit[latencyKey{c.Op, c.Phase, c.Percentile}] {
				continue
			}
			if seen[c.Name] {
				continue
			}
			seen[c.Name] = true
			checks = append(checks, c)
		}
	}
	if slo.MaxErrorRate != nil {
		c := result.SLOCheck{Name: "error rate", Limit: *slo.MaxErrorRate, Unit: result.UnitFraction}
		if res.Totals.Transactions == 0 {
			c.Reason = "no transactions ran"
		} else {
			c.Value = float64(res.Totals.Failed) / float64(res.Totals.Transactions)
			c.Passed = c.Value <= c.Limit
		}
		checks = append(checks, c)
	}
	if slo.MaxAttemptErrorRate != nil {
		c := attemptCheck(res, *slo.MaxAttemptErrorRate)
		checks = append(checks, c)
	}
	if d := slo.MaxWriteUnavailable.D(); d > 0 {
		v := res.Availability.WriteUnavailableMaxMs
		lim := float64(d.Microseconds()) / 1000
		checks = append(checks, result.SLOCheck{Name: "max write unavailability", Limit: lim, Value: v, Passed: v <= lim, Unit: result.UnitMs})
	}
	if a := abortOf(res); a != nil {
		checks = append(checks, result.SLOCheck{Name: "cutover guardrail", Limit: a.limit, Value: a.Value, Unit: a.Unit, Passed: false,
			Reason: fmt.Sprintf("aborted the cutover at %.1f s during %s: %s", a.AtS, a.During, a.Condition)})
	}
	if d := slo.MaxRecovery.D(); d > 0 {
		lim := d.Seconds()
		c := result.SLOCheck{Name: "slowest recovery", Limit: lim, Unit: result.UnitSeconds}
		switch v, ok, what := slowestRecovery(res); {
		case what == "":
			c.Passed = true
			c.Reason = "not applicable: no disruption's recovery was measured"
		default:
			c.Value = v
			c.Passed = ok && v <= lim
			switch {
			case !ok:
				c.Reason = fmt.Sprintf("%s: not recovered by the run's end (%.1f s after it)", what, v)
			case !c.Passed:
				c.Reason = what
			}
		}
		checks = append(checks, c)
	}
	if d := slo.MaxReadUnavailable.D(); d > 0 {
		v := res.Availability.ReadUnavailableMaxMs
		lim := float64(d.Microseconds()) / 1000
		checks = append(checks, result.SLOCheck{Name: "max read unavailability", Limit: lim, Value: v, Passed: v <= lim, Unit: result.UnitMs})
	}
	lost := result.SLOCheck{Name: "lost acknowledged writes", Limit: float64(slo.MaxLostWrites), Unit: result.UnitCount}
	switch {
	case res.Integrity.LostWriteCheck == result.LostWriteCheckNone:
		lost.Passed = true
		lost.Reason = "not applicable: the workload cannot tell its acknowledged writes apart (no lost-write check)"
	case res.Integrity.Checked:
		lost.Value = float64(res.Integrity.LostAcknowledgedWrites)
		lost.Passed = res.Integrity.LostAcknowledgedWrites <= slo.MaxLostWrites
	default:
		lost.Reason = "integrity not checked"
	}
	checks = append(checks, lost)
	if slo.MinAchievedRate > 0 {
		c := result.SLOCheck{Name: "achieved rate / target", Limit: slo.MinAchievedRate, Unit: result.UnitRatio}
		if res.Load.TargetRate <= 0 {
			c.Reason = "no target rate (closed load model)"
		} else {
			c.Value = res.Load.AchievedRate / res.Load.TargetRate
			c.Passed = c.Value >= c.Limit
		}
		checks = append(checks, c)
	}
	checks = append(checks, databaseChecks(res, slo.Database)...)
	v := result.SLOVerdict{Passed: true, Checks: checks}
	for _, c := range checks {
		if !c.Passed {
			v.Passed = false
		}
	}
	return v
}

// latencyChecks expands one latency limit into a check per operation.
func latencyChecks(res *result.Result, l scenarios.LatencySLO) []result.SLOCheck {
	op, phase, pct := l.Op, l.Phase, l.Percentile
	if op == "" {
		op = "*"
	}
	if phase == "" {
		phase = phaseAll
	}
	if pct == 0 {
		pct = 99
	}
	field, used := percentileField(pct)
	name := func(opName string) string {
		n := fmt.Sprintf("p%s latency %s %s", fmtPct(pct), opName, phase)
		if used != pct {
			n += " (as " + fieldName(used) + ")"
		}
		return n
	}
	lim := float64(l.Max.D().Microseconds()) / 1000
	var ops []result.Operation
	if op == "*" {
		// "*" means every operation that ran: a rare operation that happened not to
		// run (a background job in a short run) is not a breach. A named one is.
		for _, o := range res.Operations {
			if o.Count > 0 && (phase == phaseAll || o.Phases[phase].Count > 0) {
				ops = append(ops, o)
			}
		}
		if len(ops) == 0 {
			if phase != phaseAll && !phaseOccurred(res, phase) && len(res.Operations) > 0 && res.Totals.Transactions > 0 {
				return []result.SLOCheck{{Name: name("*"), Limit: lim, Unit: result.UnitMs, Passed: true, Reason: "not applicable: the run had no " + phase + " phase"}}
			}
			return []result.SLOCheck{{Name: name("*"), Limit: lim, Unit: result.UnitMs, Reason: "no operations ran"}}
		}
	} else {
		found := false
		for _, o := range res.Operations {
			if o.Name == op {
				ops, found = []result.Operation{o}, true
				break
			}
		}
		if !found {
			return []result.SLOCheck{{Name: name(op), Limit: lim, Unit: result.UnitMs, Reason: "operation " + op + " did not run"}}
		}
	}
	out := make([]result.SLOCheck, 0, len(ops))
	windows := windowsOf(res, phase)
	for _, o := range ops {
		// A phase the run entered more than once (a cycle's failback, a fault) is
		// judged window by window: each disruption on its own.
		if len(windows) > 1 {
			var per []result.SLOCheck
			for _, w := range windows {
				p := w.Operations[o.Name]
				if p.Count == 0 {
					continue
				}
				c := result.SLOCheck{Name: windowName(pct, used, o.Name, w), Limit: lim, Unit: result.UnitMs, Op: o.Name, Phase: phase, Percentile: pct}
				c.Value = field(p.LatencyMs)
				c.Passed = c.Value <= lim
				per = append(per, c)
			}
			if len(per) > 0 {
				out = append(out, per...)
				continue
			}
		}
		c := result.SLOCheck{Name: name(o.Name), Limit: lim, Unit: result.UnitMs, Op: o.Name, Phase: phase, Percentile: pct}
		lat, n := o.LatencyMs, o.Count
		if phase != phaseAll {
			p := o.Phases[phase]
			lat, n = p.LatencyMs, p.Count
		}
		switch {
		case n > 0:
			c.Value = field(lat)
			c.Passed = c.Value <= lim
		case o.Count == 0:
			c.Reason = "operation " + o.Name + " did not run"
		case phase != phaseAll && !phaseOccurred(res, phase):
			c.Passed = true
			c.Reason = "not applicable: the run had no " + phase + " phase"
		default:
			c.Reason = "operation " + o.Name + " did not run in phase " + phase
		}
		out = append(out, c)
	}
	return out
}

// windowsOf lists the run's phase windows of phase (none for "all").
func windowsOf(res *result.Result, phase string) []result.PhaseWindow {
	if phase == phaseAll {
		return nil
	}
	var out []result.PhaseWindow
	for _, w := range res.PhaseWindows {
		if w.Phase == phase {
			out = append(out, w)
		}
	}
	return out
}

// windowName names a latency check of one phase window: "p99 latency transfer
// during failback (cycle 2)", "p99 latency transfer after switchover (cycle 1)".
func windowName(pct, used float64, op string, w result.PhaseWindow) string {
	where := w.Label
	if w.Phase == result.PhaseDuring {
		where = "during " + w.Label
	}
	n := fmt.Sprintf("p%s latency %s %s", fmtPct(pct), op, where)
	if used != pct {
		n += " (as " + fieldName(used) + ")"
	}
	return n
}

// phaseOccurred reports whether any operation ran in phase.
func phaseOccurred(res *result.Result, phase string) bool {
	for _, o := range res.Operations {
		if o.Phases[phase].Count > 0 {
			return true
		}
	}
	return false
}

// summaryPcts are the percentiles a Latency summary carries below Max.
var summaryPcts = [...]float64{50, 90, 99, 99.9}

// percentileField returns the accessor for the smallest summary at or above pct,
// and the percentile it stands for (100 for max).
func percentileField(pct float64) (func(result.Latency) float64, float64) {
	switch {
	case pct <= summaryPcts[0]:
		return func(l result.Latency) float64 { return l.P50 }, 50
	case pct <= summaryPcts[1]:
		return func(l result.Latency) float64 { return l.P90 }, 90
	case pct <= summaryPcts[2]:
		return func(l result.Latency) float64 { return l.P99 }, 99
	case pct <= summaryPcts[3]:
		return func(l result.Latency) float64 { return l.P999 }, 99.9
	default:
		return func(l result.Latency) float64 { return l.Max }, 100
	}
}

// fieldName names a summary percentile as the reports print it.
func fieldName(p float64) string {
	if p >= 100 {
		return "max"
	}
	return "p" + fmtPct(p)
}

// fmtPct formats a percentile without trailing zeros: 99, 99.9.
func fmtPct(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) }

// attemptCheck is the attempt error rate check: failed attempts over attempts,
// every retry included.
func attemptCheck(res *result.Result, limit float64) result.SLOCheck {
	c := result.SLOCheck{Name: "attempt error rate", Limit: limit, Unit: result.UnitFraction}
	attempts := res.Totals.Attempts
	if attempts == 0 {
		// A result written before attempts were counted: one attempt per operation.
		attempts = res.Totals.Transactions
	}
	if attempts == 0 {
		c.Reason = "no transactions ran"
		return c
	}
	c.Value = float64(res.Totals.FailedAttempts) / float64(attempts)
	c.Passed = c.Value <= c.Limit
	return c
}

// latencyKey is what a latency limit applies to.
type latencyKey struct {
	op, phase string
	pct       float64
}

func isWildcard(op string) bool { return op == "" || op == "*" }

// explicitLatency lists the operations the scenario's latency limits name, with
// their phase and percentile as the checks spell them.
func explicitLatency(limits []scenarios.LatencySLO) map[latencyKey]bool {
	out := map[latencyKey]bool{}
	for _, l := range limits {
		if isWildcard(l.Op) {
			continue
		}
		phase, pct := l.Phase, l.Percentile
		if phase == "" {
			phase = phaseAll
		}
		if pct == 0 {
			pct = 99
		}
		out[latencyKey{l.Op, phase, pct}] = true
	}
	return out
}

// abort is the guardrail breach that aborted res's cutover, with its limit.
type abort struct {
	result.Abort
	limit float64
}

func abortOf(res *result.Result) *abort {
	m := res.Migration
	if m == nil || m.Abort == nil {
		return nil
	}
	a := &abort{Abort: *m.Abort}
	for _, g := range m.Guardrails {
		if g.Condition == a.Condition {
			a.limit = g.Max
		}
	}
	return a
}

// slowestRecovery is the slowest recovery of the run's disruptions (the cutover's
// switchovers and failbacks, the faults), what it followed, and whether it
// recovered at all (one that did not is the slowest). what is "" when no recovery
// was measured.
func slowestRecovery(res *result.Result) (secs float64, recovered bool, what string) {
	consider := func(v *float64, ok bool, label string) {
		switch {
		case v == nil:
		case what == "", recovered && !ok, recovered == ok && *v > secs:
			secs, recovered, what = *v, ok, label
		}
	}
	for _, w := range res.PhaseWindows {
		if w.Phase == result.PhaseDuring {
			consider(w.RecoveryS, w.Recovered, w.Label)
		}
	}
	if what == "" && res.Migration != nil {
		consider(res.Migration.RecoveryS, res.Migration.Recovered, "the cutover")
	}
	return secs, recovered, what
}
