package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/result"
)

// RunInfo identifies one side of a comparison.
type RunInfo struct {
	Scenario string
	Mode     string
	// Strategy is the cutover strategy ("" without a cutover).
	Strategy  string
	Outcome   string
	StartedAt time.Time
	Verdict   string
	SHA256    string
}

// Delta is one metric on both sides.
type Delta struct {
	// Name says what is measured: "p99", "error rate", "max write unavailability".
	Name      string
	Base      float64
	Candidate float64
	Unit      string
	// Regressed is true when the candidate is worse beyond the tolerance.
	Regressed bool
	// CutoverCost marks a difference expected when a dry run is compared with a wet
	// one: it measures what the cutover costs, so it is never a regression.
	CutoverCost bool
	// Missing says a side lacks the metric ("absent in base", "absent in candidate").
	Missing string
}

// Change is the candidate minus the base.
func (d Delta) Change() float64 { return d.Candidate - d.Base }

// OpDelta compares one operation in one phase ("all" is the whole run).
type OpDelta struct {
	Op, Phase string
	P50, P99  Delta
	Max       Delta
	ErrorRate Delta
	// Missing is set when the operation or phase exists on one side only.
	Missing string
	// Regressed is set when the operation disappeared from the candidate.
	Regressed bool
}

// Comparison sets two runs side by side: dry against wet, or the last release
// against this one.
type Comparison struct {
	Base, Candidate RunInfo
	Tolerance       Tolerance
	// CutoverCost is true when exactly one side is a dry run: differences in the
	// during phase, over the whole run and in unavailability are then the cutover's
	// cost and are shown but not flagged.
	CutoverCost bool
	// Strategies is set when the two runs' cutovers used different strategies:
	// what users felt under each, phase by phase. Their differences during the
	// cutover are then the strategies' and are not flagged, as with CutoverCost.
	Strategies *StrategyComparison
	Metrics    []Delta
	Ops        []OpDelta
	Notes      []string
}

// isDry reports whether res is a dry run (no real cutover).
func isDry(res *result.Result) bool {
	return res.Mode == "dry" || (res.Migration != nil && res.Migration.Outcome == "dry")
}

func runInfo(res *result.Result) RunInfo {
	ri := RunInfo{Scenario: res.Scenario.Name, Mode: res.Mode, Strategy: strategyOf(res), StartedAt: res.StartedAt, Verdict: PageVerdict(res).Label(), SHA256: res.Scenario.SHA256, Outcome: "no cutover"}
	if res.Migration != nil {
		ri.Outcome = res.Migration.Outcome
	}
	return ri
}

// Compare compares cand against base under tol.
func Compare(base, cand *result.Result, tol Tolerance) Comparison {
	c := Comparison{Base: runInfo(base), Candidate: runInfo(cand), Tolerance: tol}
	c.CutoverCost = isDry(base) != isDry(cand)
	if c.CutoverCost {
		c.Notes = append(c.Notes, "One run is dry and the other wet: differences during the cutover, over the whole run and in unavailability are the cutover's cost and are not flagged as regressions.")
	}
	if c.Strategies = compareStrategies(base, cand); c.Strategies != nil {
		c.Notes = append(c.Notes, strategyNote(c.Strategies))
	}
	cost := c.CutoverCost || c.Strategies != nil
	if base.Scenario.SHA256 != "" && cand.Scenario.SHA256 != "" && base.Scenario.SHA256 != cand.Scenario.SHA256 {
		c.Notes = append(c.Notes, "The runs used different scenario files (sha256 differs).")
	}
	c.Metrics = compareMetrics(base, cand, tol, cost)
	c.Ops = compareOps(base, cand, tol, cost)
	return c
}

// runErrorRate is the fraction of r's transactions that failed, 0 when none ran.
func runErrorRate(r *result.Result) float64 {
	if r.Totals.Transactions == 0 {
		return 0
	}
	return float64(r.Totals.Failed) / float64(r.Totals.Transactions)
}

// achievedRatio is r's achieved rate over its target rate, 0 when it had no target.
func achievedRatio(r *result.Result) float64 {
	if r.Load.TargetRate <= 0 {
		return 0
	}
	return r.Load.AchievedRate / r.Load.TargetRate
}

// compareMetrics sets the whole-run metrics side by side and flags those worse beyond
// tol. With cutoverCost the error rate and the unavailability windows are the
// cutover's cost and never flagged; the achieved rate and lost writes always are.
func compareMetrics(base, cand *result.Result, tol Tolerance, cutoverCost bool) []Delta {
	m := []Delta{
		{Name: "error rate", Base: runErrorRate(base), Candidate: runErrorRate(cand), Unit: result.UnitFraction, CutoverCost: cutoverCost},
		{Name: "achieved rate / target", Base: achievedRatio(base), Candidate: achievedRatio(cand), Unit: result.UnitRatio},
		{Name: "schedule lag p99", Base: base.Load.ScheduleLagP99Ms, Candidate: cand.Load.ScheduleLagP99Ms, Unit: result.UnitMs},
		{Name: "max write unavailability", Base: base.Availability.WriteUnavailableMaxMs, Candidate: cand.Availability.WriteUnavailableMaxMs, Unit: result.UnitMs, CutoverCost: cutoverCost},
		{Name: "max read unavailability", Base: base.Availability.ReadUnavailableMaxMs, Candidate: cand.Availability.ReadUnavailableMaxMs, Unit: result.UnitMs, CutoverCost: cutoverCost},
		{Name: "lost acknowledged writes", Base: float64(base.Integrity.LostAcknowledgedWrites), Candidate: float64(cand.Integrity.LostAcknowledgedWrites), Unit: result.UnitCount},
		{Name: "SLOs passed", Base: b2f(base.SLO.Passed), Candidate: b2f(cand.SLO.Passed), Unit: "bool"},
	}
	for i := range m {
		d := &m[i]
		switch d.Name {
		case "error rate":
			d.Regressed = !d.CutoverCost && d.Change() > tol.ErrorRate
		case "achieved rate / target":
			d.Regressed = d.Base > 0 && d.Base-d.Candidate > d.Base*tol.RateDrop
		case "max write unavailability", "max read unavailability":
			d.Regressed = !d.CutoverCost && tol.unavailabilityRegressed(d.Base, d.Candidate)
		case "lost acknowledged writes":
			switch {
			case !cand.Integrity.Checked:
				d.Missing = "integrity not checked in candidate"
			case !base.Integrity.Checked:
				d.Missing = "integrity not checked in base"
				d.Regressed = d.Candidate > 0
			default:
				d.Regressed = d.Candidate > d.Base
			}
		case "SLOs passed":
			d.Regressed = d.Base == 1 && d.Candidate == 0
		}
	}
	return m
}

// compareOps compares every operation either run has, over the whole run and then
// phase by phase. An operation that did not run in the candidate is a regression;
// one new in the candidate is only noted.
func compareOps(base, cand *result.Result, tol Tolerance, cutoverCost bool) []OpDelta {
	var out []OpDelta
	for _, name := range unionOps(base, cand) {
		bo, bok := findOp(base, name)
		co, cok := findOp(cand, name)
		switch {
		case !cok:
			out = append(out, OpDelta{Op: name, Phase: phaseAll, Missing: "did not run in candidate", Regressed: true})
			continue
		case !bok:
			out = append(out, OpDelta{Op: name, Phase: phaseAll, Missing: "new in candidate"})
			continue
		}
		for _, ph := range append([]string{phaseAll}, unionPhases(bo, co)...) {
			if od, ok := comparePhase(name, ph, opPhase(bo, ph), opPhase(co, ph), tol, cutoverCost); ok {
				out = append(out, od)
			}
		}
	}
	return out
}

// comparePhase compares operation op in phase ph, bp in the base and cp in the
// candidate. It reports false when neither side has samples there, so the phase gets
// no row. p50, p99 and the error rate are flagged, max is only shown; nothing is
// flagged when one side has no samples, or when the phase is the whole run or the
// cutover and the difference is the cutover's cost.
func comparePhase(op, ph string, bp, cp result.Phase, tol Tolerance, cutoverCost bool) (OpDelta, bool) {
	od := OpDelta{Op: op, Phase: ph}
	switch {
	case bp.Count == 0 && cp.Count == 0:
		return od, false
	case bp.Count == 0:
		od.Missing = "no samples in base"
	case cp.Count == 0:
		od.Missing = "no samples in candidate"
	}
	cost := cutoverCost && (ph == phaseAll || ph == result.PhaseDuring)
	mk := func(n string, b, k float64, unit string) Delta {
		return Delta{Name: n, Base: b, Candidate: k, Unit: unit, CutoverCost: cost, Missing: od.Missing}
	}
	od.P50 = mk("p50", bp.LatencyMs.P50, cp.LatencyMs.P50, result.UnitMs)
	od.P99 = mk("p99", bp.LatencyMs.P99, cp.LatencyMs.P99, result.UnitMs)
	od.Max = mk("max", bp.LatencyMs.Max, cp.LatencyMs.Max, result.UnitMs)
	od.ErrorRate = mk("error rate", rate(bp), rate(cp), result.UnitFraction)
	if od.Missing == "" && !cost {
		od.P50.Regressed = tol.latencyRegressed(od.P50.Base, od.P50.Candidate)
		od.P99.Regressed = tol.latencyRegressed(od.P99.Base, od.P99.Candidate)
		od.ErrorRate.Regressed = od.ErrorRate.Change() > tol.ErrorRate
	}
	return od, true
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// rate is a phase's error fraction: errors over operations (Count includes failed
// operations).
func rate(p result.Phase) float64 {
	if p.Count > 0 {
		return float64(p.Errors) / float64(p.Count)
	}
	return 0
}

func opPhase(o result.Operation, ph string) result.Phase {
	if ph == phaseAll {
		return result.Phase{Count: o.Count, Errors: o.Errors, LatencyMs: o.LatencyMs}
	}
	return o.Phases[ph]
}

func findOp(r *result.Result, name string) (result.Operation, bool) {
	for _, o := range r.Operations {
		if o.Name == name {
			return o, true
		}
	}
	return result.Operation{}, false
}

func unionOps(a, b *result.Result) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range []*result.Result{a, b} {
		for _, o := range r.Operations {
			if !seen[o.Name] {
				seen[o.Name] = true
				out = append(out, o.Name)
			}
		}
	}
	return out
}

func unionPhases(a, b result.Operation) []string {
	m := map[string]result.Phase{}
	for k, v := range a.Phases {
		m[k] = v
	}
	for k, v := range b.Phases {
		m[k] = v
	}
	return phaseOrder(m)
}

// Regressed reports whether the candidate is worse than the base beyond the
// tolerance anywhere (the CLI exits 3).
func (c Comparison) Regressed() bool { return len(c.Regressions()) > 0 }

// Regressions lists every regression as a sentence.
func (c Comparison) Regressions() []string {
	var out []string
	for _, d := range c.Metrics {
		if d.Regressed {
			out = append(out, fmt.Sprintf("%s: %s → %s", d.Name, fmtDelta(d.Base, d.Unit), fmtDelta(d.Candidate, d.Unit)))
		}
	}
	for _, o := range c.Ops {
		if o.Regressed {
			out = append(out, o.Op+": "+o.Missing)
		}
		for _, d := range []Delta{o.P50, o.P99, o.ErrorRate} {
			if d.Regressed {
				out = append(out, fmt.Sprintf("%s %s %s: %s → %s", d.Name, o.Op, o.Phase, fmtDelta(d.Base, d.Unit), fmtDelta(d.Candidate, d.Unit)))
			}
		}
	}
	return out
}

// fmtDelta formats one side of a delta.
func fmtDelta(v float64, unit string) string {
	if unit == "bool" {
		if v == 1 {
			return "yes"
		}
		return "no"
	}
	return fmtValue(v, unit)
}

// deltaCell formats a delta as "base → candidate (+x%)".
func deltaCell(d Delta) string {
	if d.Missing != "" && d.Base == 0 && d.Candidate == 0 {
		return "—"
	}
	s := fmtDelta(d.Base, d.Unit) + " → " + fmtDelta(d.Candidate, d.Unit)
	if d.Unit == result.UnitMs && (d.Name == "p50" || d.Name == "p99" || d.Name == "max") {
		// Latency cells sit under a "(ms)" heading: no unit in each cell.
		s = msCell(d.Base) + " → " + msCell(d.Candidate)
	}
	if d.Unit != "bool" && d.Base != 0 && d.Candidate != d.Base {
		s += fmt.Sprintf(" (%+.0f%%)", (d.Candidate-d.Base)/d.Base*100)
	}
	return s
}

// deltaFlag is the status word of a delta.
func deltaFlag(d Delta) string {
	switch {
	case d.Regressed:
		return "REGRESSED"
	case d.Missing != "":
		return d.Missing
	case d.CutoverCost && d.Candidate != d.Base:
		return "cutover cost"
	default:
		return "ok"
	}
}

// opFlag is the status of one operation row.
func opFlag(o OpDelta) string {
	if o.Missing != "" {
		if o.Regressed {
			return "REGRESSED: " + o.Missing
		}
		return o.Missing
	}
	var bad []string
	for _, d := range []Delta{o.P50, o.P99, o.ErrorRate} {
		if d.Regressed {
			bad = append(bad, d.Name)
		}
	}
	if len(bad) > 0 {
		return "REGRESSED: " + strings.Join(bad, ", ")
	}
	if o.P99.CutoverCost {
		return "cutover cost"
	}
	return "ok"
}

// Markdown writes the comparison as Markdown.
func (c Comparison) Markdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("# %s: %s (%s) → %s (%s)\n\n", c.Title(), mdText(orDash(c.Base.Scenario)), mdText(c.Base.runLabel(c.Strategies != nil)), mdText(orDash(c.Candidate.Scenario)), mdText(c.Candidate.runLabel(c.Strategies != nil)))
	if regs := c.Regressions(); len(regs) > 0 {
		p("**REGRESSION** — the candidate is worse than the base beyond the tolerance:\n\n")
		for _, r := range regs {
			p("- %s\n", mdText(r))
		}
	} else {
		p("**No regression** beyond the tolerance.\n")
	}
	t := c.Tolerance
	p("\nTolerance: latency +%s (ignored under %s), error rate +%s, achieved rate −%s, unavailability floor %s.\n",
		fmtPercent(t.LatencyRel), fmtMs(t.LatencyAbsMs), fmtPercent(t.ErrorRate), fmtPercent(t.RateDrop), fmtMs(t.UnavailabilityMs))
	for _, n := range c.Notes {
		p("\n> %s\n", mdText(n))
	}
	p("\n## Runs\n\n")
	mdTable(bw, []string{"", "base", "candidate"}, "---|---|---")
	for _, r := range c.runRows() {
		mdRow(bw, r[0], r[1], r[2])
	}
	if sc := c.Strategies; sc != nil {
		p("\n## What users felt: %s → %s\n\n", mdText(sc.Base), mdText(sc.Candidate))
		mdTable(bw, []string{"phase", "metric", sc.Base, sc.Candidate}, "---|---|--:|--:")
		for _, r := range sc.Rows {
			mdRow(bw, r.PhaseLabel(), r.Metric, r.BaseCell(), r.CandidateCell())
		}
	}
	p("\n## Run metrics\n\n")
	mdTable(bw, []string{"metric", "base → candidate", "status"}, "---|--:|---")
	for _, d := range c.Metrics {
		mdRow(bw, d.Name, deltaCell(d), deltaFlag(d))
	}
	p("\n## Latency per operation and phase (ms)\n\n")
	mdTable(bw, []string{"operation", "phase", "p50", "p99", "max", "error rate", "status"}, "---|---|--:|--:|--:|--:|---")
	for _, o := range c.Ops {
		mdRow(bw, o.Op, o.Phase, deltaCell(o.P50), deltaCell(o.P99), deltaCell(o.Max), deltaCell(o.ErrorRate), opFlag(o))
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write comparison: %w", err)
	}
	return nil
}

// runLabel is how a side is named in the title: its mode, and its strategy in a
// strategy comparison.
func (r RunInfo) runLabel(strategy bool) string {
	if strategy {
		return r.Mode + ", " + r.Strategy
	}
	return r.Mode
}

// Label is runLabel for the HTML template: the mode, and the strategy when
// strategies are compared.
func (c Comparison) Label(r RunInfo) string { return r.runLabel(c.Strategies != nil) }

// Title names the comparison: a strategy comparison when the runs' cutovers used
// different strategies.
func (c Comparison) Title() string {
	if c.Strategies != nil {
		return "Strategy comparison"
	}
	return "Comparison"
}

func (c Comparison) runRows() [][3]string {
	rows := [][3]string{
		{"scenario", c.Base.Scenario, c.Candidate.Scenario},
		{"mode", c.Base.Mode, c.Candidate.Mode},
	}
	if c.Strategies != nil || c.Base.Strategy == strategyBlueGreen || c.Candidate.Strategy == strategyBlueGreen {
		rows = append(rows, [3]string{"strategy", orDash(c.Base.Strategy), orDash(c.Candidate.Strategy)})
	}
	return append(rows, [][3]string{
		{"cutover", c.Base.Outcome, c.Candidate.Outcome},
		{"started", c.Base.StartedAt.UTC().Format("2006-01-02 15:04:05 MST"), c.Candidate.StartedAt.UTC().Format("2006-01-02 15:04:05 MST")},
		{"verdict", c.Base.Verdict, c.Candidate.Verdict},
	}...)
}

// compareData is what the comparison template sees.
type compareData struct {
	C           Comparison
	Regressions []string
	Runs        [][3]string
}

// HTML writes the comparison as a self-contained HTML page.
func (c Comparison) HTML(w io.Writer) error {
	t, err := htmlTmpl(compareTemplate)
	if err != nil {
		return fmt.Errorf("parse compare template: %w", err)
	}
	if err := t.Execute(w, compareData{C: c, Regressions: c.Regressions(), Runs: c.runRows()}); err != nil {
		return fmt.Errorf("render comparison: %w", err)
	}
	return nil
}
