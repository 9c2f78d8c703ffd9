package report

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/rehearse-dev/rehearse/result"
)

// Verdict is what heads a report: PASS or FAIL and why.
type Verdict struct {
	// Passed is true when every SLO passed, the cutover did not fail and the run
	// was not interrupted.
	Passed bool
	// Reasons lists why the run failed; empty when it passed.
	Reasons []string
}

// Label is "PASS" or "FAIL".
func (v Verdict) Label() string {
	if v.Passed {
		return "PASS"
	}
	return "FAIL"
}

// PageVerdict is the verdict the reports show: the SLO verdict (Reasons), plus a
// failed cutover and an interrupted run, which no sign-off can ignore.
func PageVerdict(res *result.Result) Verdict {
	reasons := GroupedReasons(res.SLO)
	if res.Migration != nil && res.Migration.Outcome == "failed" {
		reasons = append(reasons, "cutover failed")
	}
	if res.Interrupted {
		reasons = append(reasons, "run interrupted: the results are partial")
	}
	return Verdict{Passed: len(reasons) == 0 && res.SLO.Passed, Reasons: reasons}
}

// phaseRow is one line of the latency table: one operation in one phase.
type phaseRow struct {
	Op, Kind, Phase string
	Count, Errors   int64
	FailedAttempts  int64
	Lat             result.Latency
}

// latencyRows lists every operation's whole-run summary followed by its phases in
// timeline order; phases without samples are left out.
func latencyRows(res *result.Result) []phaseRow {
	var rows []phaseRow
	for _, o := range res.Operations {
		rows = append(rows, phaseRow{Op: o.Name, Kind: o.Kind, Phase: phaseAll, Count: o.Count, Errors: o.Errors, FailedAttempts: o.Attempts.Failed, Lat: o.LatencyMs})
		for _, ph := range phaseOrder(o.Phases) {
			p := o.Phases[ph]
			if p.Count == 0 && p.Errors == 0 {
				continue
			}
			rows = append(rows, phaseRow{Op: o.Name, Kind: o.Kind, Phase: ph, Count: p.Count, Errors: p.Errors, FailedAttempts: p.FailedAttempts, Lat: p.LatencyMs})
		}
	}
	return rows
}

// phaseOrder lists the keys of m: before, during, after first, then any others sorted.
func phaseOrder[V any](m map[string]V) []string {
	var out []string
	for _, p := range []string{result.PhaseBefore, result.PhaseDuring, result.PhaseAfter} {
		if _, ok := m[p]; ok {
			out = append(out, p)
		}
	}
	var extra []string
	for k := range m {
		if k != result.PhaseBefore && k != result.PhaseDuring && k != result.PhaseAfter {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	return append(out, extra...)
}

// kv is one labelled value of a summary table.
type kv struct{ K, V string }

// loadRows is the load achieved versus asked for.
func loadRows(res *result.Result) []kv {
	l := res.Load
	ratio := "—"
	if l.TargetRate > 0 {
		ratio = strconv.FormatFloat(l.AchievedRate/l.TargetRate*100, 'f', 1, 64) + "%"
	}
	target := "— (closed model)"
	if l.TargetRate > 0 {
		target = fmtRate(l.TargetRate)
	}
	return []kv{
		{"Model", orDash(l.Model)},
		{"Target rate", target},
		{"Achieved rate", fmtRate(l.AchievedRate)},
		{"Achieved / target", ratio},
		{"Schedule lag p99", fmtMs(l.ScheduleLagP99Ms)},
		{"Schedule lag max", fmtMs(l.ScheduleLagMaxMs)},
		{"Sessions", strconv.Itoa(l.Sessions)},
		{"Pool size / workers", strconv.Itoa(l.PoolSize) + " / " + strconv.Itoa(l.Workers)},
		{"Arrivals", strconv.FormatInt(l.Arrivals, 10)},
		{"Transactions", strconv.FormatInt(res.Totals.Transactions, 10)},
		{"Succeeded / failed / ambiguous", strconv.FormatInt(res.Totals.Succeeded, 10) + " / " + strconv.FormatInt(res.Totals.Failed, 10) + " / " + strconv.FormatInt(res.Totals.Ambiguous, 10)},
		{"Attempts / failed attempts / retries", strconv.FormatInt(res.Totals.Attempts, 10) + " / " + strconv.FormatInt(res.Totals.FailedAttempts, 10) + " / " + strconv.FormatInt(res.Totals.Retries, 10)},
	}
}

// envRows describes where and how the run happened.
func envRows(res *result.Result) []kv {
	rows := []kv{
		{"Mode", orDash(res.Mode)},
		{"Scenario", orDash(res.Scenario.Name)},
		{"Scenario file", orDash(res.Scenario.File)},
		{"Scenario sha256", orDash(res.Scenario.SHA256)},
		{"Workload", orDash(res.Target.Workload)},
		{"Target", orDash(res.Target.Kind)},
		{"Endpoint mode", orDash(res.Target.EndpointMode)},
	}
	keys := make([]string, 0, len(res.Target.Versions))
	for k := range res.Target.Versions {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		rows = append(rows, kv{"Version: " + k, res.Target.Versions[k]})
	}
	rows = append(rows,
		kv{"rehearse version", orDash(res.Version)},
		kv{"Started", res.StartedAt.UTC().Format("2006-01-02 15:04:05 MST")},
		kv{"Ended", res.EndedAt.UTC().Format("2006-01-02 15:04:05 MST")},
		kv{"Duration", fmtDuration(res.DurationS)},
	)
	return rows
}

// integrityRows is the integrity verdict's table.
func integrityRows(res *result.Result) []kv {
	in := res.Integrity
	if !in.Checked {
		return []kv{{"Checked", "no — integrity was not checked"}}
	}
	return []kv{
		{"Verdict", integrityVerdict(in)},
		{"Balance conserved", yesNo(in.BalanceConserved)},
		{"Acknowledged writes", strconv.FormatInt(in.AcknowledgedWrites, 10)},
		{"Lost acknowledged writes", strconv.FormatInt(in.LostAcknowledgedWrites, 10)},
		{"Duplicate writes", strconv.FormatInt(in.DuplicateWrites, 10)},
		{"Ambiguous commits (committed)", strconv.FormatInt(in.Ambiguous, 10) + " (" + strconv.FormatInt(in.AmbiguousCommitted, 10) + ")"},
	}
}

// integrityVerdict summarises the integrity check in a few words.
func integrityVerdict(in result.Integrity) string {
	switch {
	case !in.Checked:
		return "not checked"
	case in.LostWriteCheck == result.LostWriteCheckNone && in.BalanceConserved:
		return "OK: invariants held (no lost-write check)"
	case in.BalanceConserved && in.LostAcknowledgedWrites == 0 && in.DuplicateWrites == 0:
		return "OK: no data lost"
	default:
		return "VIOLATED"
	}
}

// migrationRows summarises the cutover.
func migrationRows(m *result.Migration) []kv {
	rows := []kv{
		{"Outcome", orDash(m.Outcome)},
		{"Writer before", orDash(m.WriterBefore)},
		{"Writer after", orDash(m.WriterAfter)},
		{"Lag at promotion", strconv.FormatInt(m.LagAtPromotion.Bytes, 10) + " bytes, " + fmtMs(m.LagAtPromotion.Ms)},
	}
	if m.RecoveryS != nil {
		rows = append(rows, kv{"Recovery after the redirect", recoveryText(m)})
	}
	return rows
}

// availabilityRows is the longest unavailability overall and per phase.
func availabilityRows(a result.Availability) []kv {
	rows := []kv{
		{"Longest write unavailability", fmtMs(a.WriteUnavailableMaxMs)},
		{"Longest read unavailability", fmtMs(a.ReadUnavailableMaxMs)},
	}
	for _, p := range phaseOrder(a.PerPhase) {
		w := a.PerPhase[p]
		rows = append(rows, kv{"Phase " + p + " (write / read)", fmtMs(w.WriteMaxMs) + " / " + fmtMs(w.ReadMaxMs)})
	}
	return rows
}

func fmtRate(r float64) string { return strconv.FormatFloat(r, 'f', 1, 64) + " ops/s" }

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// checkStatus is a check's state for the tables.
func checkStatus(c result.SLOCheck) string {
	switch {
	case c.Passed && c.Reason != "":
		return "n/a"
	case c.Passed:
		return "pass"
	default:
		return "FAIL"
	}
}

// checkValue formats a check's measured value, or its reason when unmeasured.
func checkValue(c result.SLOCheck) string {
	if c.Reason != "" && c.Value == 0 {
		return c.Reason
	}
	return fmtValue(c.Value, c.Unit)
}

// checkLimit formats a check's limit with its direction.
func checkLimit(c result.SLOCheck) string {
	if c.Unit == result.UnitRatio {
		return "≥ " + fmtValue(c.Limit, c.Unit)
	}
	return "≤ " + fmtValue(c.Limit, c.Unit)
}

// failureRow is one phase's two numbers: the operations that still failed after the
// client's retries (what users saw) and every failed attempt (what the database
// saw).
type failureRow struct {
	Phase                    string
	Count, Failed, Attempted int64
	Retried                  int64
}

// failureRows lists the failures of the whole run and of each phase.
func failureRows(res *result.Result) []failureRow {
	all := failureRow{Phase: phaseAll}
	byPhase := map[string]*failureRow{}
	for _, o := range res.Operations {
		all.Count += o.Count
		all.Failed += o.Errors
		all.Attempted += o.Attempts.Failed
		all.Retried += o.Attempts.Retried
		for ph, p := range o.Phases {
			r := byPhase[ph]
			if r == nil {
				r = &failureRow{Phase: ph}
				byPhase[ph] = r
			}
			r.Count += p.Count
			r.Failed += p.Errors
			r.Attempted += p.FailedAttempts
		}
	}
	rows := []failureRow{all}
	for _, ph := range phaseOrder(byPhase) {
		rows = append(rows, *byPhase[ph])
	}
	return rows
}

// usersSentence says in one line what users saw against what the database saw.
func usersSentence(res *result.Result) string {
	t := res.Totals
	s := fmt.Sprintf("Users saw %d failed operations of %d (after the client's retries); the database saw %d failed attempts", t.Failed, t.Transactions, t.FailedAttempts)
	if t.Retries > 0 {
		s += fmt.Sprintf(" (%d retries)", t.Retries)
	}
	return s + "."
}

// clientRows describes the client behaviour the run used.
func clientRows(res *result.Result) []kv {
	c := res.Client
	if c == nil {
		return nil
	}
	retry := "none"
	if c.Retry.MaxAttempts > 1 {
		retry = fmt.Sprintf("up to %d attempts on %s, backoff %s doubling to %s", c.Retry.MaxAttempts, strings.Join(c.Retry.On, ", "), fmtMs(c.Retry.BackoffMs), fmtMs(c.Retry.MaxBackoffMs))
	}
	timeout := func(ms float64, zero string) string {
		if ms == 0 {
			return zero
		}
		return fmtMs(ms)
	}
	return []kv{
		{"Preset", orDash(c.Preset)},
		{"App instances × pool size", fmt.Sprintf("%d × %d per endpoint", c.AppInstances, c.PoolSize)},
		{"Connect timeout", timeout(c.ConnectTimeoutMs, "none")},
		{"Max connection lifetime", fmtDuration(c.MaxLifetimeS)},
		{"Validate on borrow", yesNo(c.ValidateOnBorrow)},
		{"DNS cache", orDash(c.DNSCacheTTL)},
		{"TCP user timeout", timeout(c.TCPUserTimeoutMs, "OS default")},
		{"Failover", orDash(c.Failover)},
		{"Retries", retry},
	}
}

// capturedRow is one captured statement of a replay.
type capturedRow struct {
	Op, Kind                     string
	Count, Failed, Captured, New int64
	Lat                          result.Latency
}

// capturedRows lists a replay's statements with their new failures; nil for a run
// that is not a replay.
func capturedRows(res *result.Result) []capturedRow {
	if res.Target.Workload != "replay" {
		return nil
	}
	rows := []capturedRow{}
	for _, o := range res.Operations {
		if o.Count == 0 {
			continue
		}
		rows = append(rows, capturedRow{Op: o.Name, Kind: o.Kind, Count: o.Count, Failed: o.Errors, Captured: o.CapturedErrors,
			New: max(o.Errors-o.CapturedErrors, 0), Lat: o.LatencyMs})
	}
	return rows
}

// GroupedReasons is Reasons with the latency breaches grouped by percentile, phase
// and limit, one line each: "p99 above 1 s after the cutover for 7 of 8 operations,
// worst 2,112 ms (transfer)". A run that breaches a latency limit usually breaches it
// for every operation at once; one line per operation hides that.
func GroupedReasons(v result.SLOVerdict) []string {
	type key struct {
		pct, limit float64
		phase      string
	}
	type group struct {
		failed, total int
		worst         float64
		worstOp       string
		at            int // where the group's line goes
	}
	groups := map[key]*group{}
	for _, c := range v.Checks {
		if c.Op == "" || c.Unit != result.UnitMs {
			continue
		}
		k := key{c.Percentile, c.Limit, c.Phase}
		g := groups[k]
		if g == nil {
			g = &group{at: -1}
			groups[k] = g
		}
		g.total++
	}
	var out []string
	for _, c := range v.Checks {
		if c.Passed {
			continue
		}
		if c.Op == "" || c.Unit != result.UnitMs || c.Reason != "" {
			out = append(out, reasonLine(c))
			continue
		}
		g := groups[key{c.Percentile, c.Limit, c.Phase}]
		g.failed++
		if c.Value > g.worst || g.worstOp == "" {
			g.worst, g.worstOp = c.Value, c.Op
		}
		if g.at < 0 {
			g.at = len(out)
			out = append(out, "")
		}
	}
	for k, g := range groups {
		if g.at < 0 {
			continue
		}
		line := fmt.Sprintf("p%s above %s %s", fmtPct(k.pct), fmtValue(k.limit, result.UnitMs), phaseWords(k.phase))
		if g.failed == 1 {
			line += fmt.Sprintf(" for %s: %s", g.worstOp, fmtMs(g.worst))
		} else {
			line += fmt.Sprintf(" for %d of %d operations, worst %s (%s)", g.failed, g.total, fmtMs(g.worst), g.worstOp)
		}
		out[g.at] = line
	}
	if !v.Passed && len(out) == 0 {
		out = append(out, "SLOs were not evaluated")
	}
	return out
}

// phaseWords names a phase in a sentence.
func phaseWords(phase string) string {
	switch phase {
	case result.PhaseBefore:
		return "before the cutover"
	case result.PhaseDuring:
		return "during the cutover"
	case result.PhaseAfter:
		return "after the cutover"
	case phaseAll, "":
		return "over the run"
	}
	return "in phase " + phase
}

// recoveryText says how long users kept feeling the cutover after its redirect.
func recoveryText(m *result.Migration) string {
	switch {
	case m.RecoveryS == nil:
		return "—"
	case !m.Recovered:
		return fmt.Sprintf("not recovered by the run's end (%.1f s)", *m.RecoveryS)
	}
	return fmt.Sprintf("%.1f s (p99 latency and schedule lag back within 2× their values before the cutover, for 3 s)", *m.RecoveryS)
}
