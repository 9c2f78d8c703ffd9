package report

import (
	"fmt"
	"math"
	"strconv"

	"github.com/rehearse-dev/rehearse/result"
)

// stepLabel names a cutover step as the charts and tables show it: with its cycle
// when the cutover ran several ("switchover · 2").
func stepLabel(s result.Step) string {
	if s.Cycle > 0 {
		return s.Name + " · " + strconv.Itoa(s.Cycle)
	}
	return s.Name
}

// cycleRow is one line of the cycles table.
type cycleRow struct {
	Cycle, Direction, Move, Outcome string
	Write, Read, Recovery           string
	Failed, FailedAttempts          int64
	Transactions                    int64
	Stall                           string
	Bad                             bool
}

// cycleRows lists a cutover's cycles, with the spread as the last rows.
func cycleRows(res *result.Result) []cycleRow {
	m := res.Migration
	if m == nil || len(m.Cycles) == 0 {
		return nil
	}
	var rows []cycleRow
	for _, c := range m.Cycles {
		r := cycleRow{
			Cycle: strconv.Itoa(c.Cycle), Direction: c.Direction, Move: orDash(c.From) + " → " + orDash(c.To), Outcome: c.Outcome,
			Write: fmtMs(c.WriteUnavailableMs), Read: fmtMs(c.ReadUnavailableMs), Recovery: recoveryCell(c.RecoveryS, c.Recovered),
			Failed: c.Failed, FailedAttempts: c.FailedAttempts, Transactions: c.Transactions, Stall: stallText(c.Stall),
			Bad: c.Outcome == "failed" || c.Outcome == "aborted",
		}
		rows = append(rows, r)
	}
	return rows
}

// spreadRows is the distribution across the cycles.
func spreadRows(res *result.Result) []kv {
	c := res.Availability.Cycles
	if c == nil {
		return nil
	}
	rows := []kv{
		{"Cycles measured", strconv.Itoa(c.Count)},
		{"Write unavailability (min / p50 / p90 / max)", spreadMs(c.WriteUnavailableMs)},
		{"Read unavailability (min / p50 / p90 / max)", spreadMs(c.ReadUnavailableMs)},
	}
	if s := c.RecoveryS; s != nil {
		rows = append(rows, kv{"Recovery (min / p50 / p90 / max)", fmt.Sprintf("%.1f / %.1f / %.1f / %.1f s", s.Min, s.P50, s.P90, s.Max)})
	}
	if s := c.StallMs; s != nil {
		rows = append(rows, kv{"Switchover stall, as the provider measured it (min / p50 / p90 / max)", spreadMs(*s)})
	}
	return rows
}

func spreadMs(s result.Spread) string {
	return fmtMs(s.Min) + " / " + fmtMs(s.P50) + " / " + fmtMs(s.P90) + " / " + fmtMs(s.Max)
}

// stallText breaks a switchover's stall down: "pause 2 ms, shutdown 30 ms, ...".
func stallText(s *result.Stall) string {
	if s == nil {
		return "—"
	}
	parts := []struct {
		name string
		v    float64
	}{{"pause", s.PauseMs}, {"shutdown", s.ShutdownMs}, {"replay wait", s.ReplayWaitMs}, {"promote", s.PromoteMs}, {"repoint", s.RepointMs}, {"resume", s.ResumeMs}}
	out := ""
	for _, p := range parts {
		if p.v <= 0 {
			continue
		}
		if out != "" {
			out += ", "
		}
		out += p.name + " " + fmtMs(p.v)
	}
	if out == "" {
		return fmtMs(s.TotalMs)
	}
	return out + " (total " + fmtMs(s.TotalMs) + ")"
}

// recoveryCell is a recovery time for a table cell.
func recoveryCell(v *float64, ok bool) string {
	switch {
	case v == nil:
		return "—"
	case !ok:
		return "not by the end (" + strconv.FormatFloat(*v, 'f', 1, 64) + " s)"
	}
	return strconv.FormatFloat(*v, 'f', 1, 64) + " s"
}

// windowRow is one line of the phase-windows table.
type windowRow struct {
	Phase, Label, Start, End string
	Count, Errors            int64
	P99, Write, Read         string
	Recovery                 string
}

// windowRows lists the phase windows the run's timeline followed.
func windowRows(res *result.Result) []windowRow {
	rows := make([]windowRow, 0, len(res.PhaseWindows))
	for _, w := range res.PhaseWindows {
		rows = append(rows, windowRow{
			Phase: w.Phase, Label: w.Label, Start: fmtSec(w.StartS), End: fmtSec(w.EndS),
			Count: w.Count, Errors: w.Errors, P99: msCell(w.LatencyMs.P99),
			Write: fmtMs(w.WriteUnavailableMs), Read: fmtMs(w.ReadUnavailableMs),
			Recovery: recoveryCell(w.RecoveryS, w.Recovered),
		})
	}
	return rows
}

// guardrailRow is one cutover.abort_if condition and what it saw.
type guardrailRow struct {
	Condition, Limit, Worst, Outcome string
	Bad                              bool
}

func guardrailRows(res *result.Result) []guardrailRow {
	m := res.Migration
	if m == nil {
		return nil
	}
	var rows []guardrailRow
	for _, g := range m.Guardrails {
		r := guardrailRow{Condition: g.Condition, Limit: guardValue(g.Max, g.Unit), Worst: guardValue(g.Worst, g.Unit), Outcome: "held"}
		switch {
		case g.Fired:
			r.Outcome, r.Bad = fmt.Sprintf("fired at %.1f s (%s): the cutover was aborted", deref(g.AtS), guardValue(g.Value, g.Unit)), true
		case g.WouldFire:
			r.Outcome, r.Bad = fmt.Sprintf("would have fired at %.1f s (%s); a dry run never aborts", deref(g.AtS), guardValue(g.Value, g.Unit)), true
		}
		rows = append(rows, r)
	}
	return rows
}

func guardValue(v float64, unit string) string {
	if unit == result.UnitFraction {
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	return fmtMs(v)
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}

// abortText says in a sentence what aborted the cutover ("" when nothing did).
func abortText(m *result.Migration) string {
	if m == nil || m.Abort == nil {
		return ""
	}
	a := m.Abort
	what := "before the switchover: the plan stopped and its steps were undone, the original writer kept serving writes"
	if a.AfterSwitchover {
		what = "after the switchover: it failed back onto the original writer"
	}
	return fmt.Sprintf("A guardrail aborted the cutover at %.1f s during %s (%s: %s), %s.", a.AtS, orDash(a.During), a.Condition, guardValue(a.Value, a.Unit), what)
}

// faultRow is one injected fault.
type faultRow struct {
	Fault, Node, At, Start, End, Status, Errors, Recovery string
	Bad                                                   bool
}

func faultRows(res *result.Result) []faultRow {
	rows := make([]faultRow, 0, len(res.Faults))
	for _, f := range res.Faults {
		name := f.Kind
		if f.AddMs > 0 {
			name += fmt.Sprintf(" +%s", fmtMs(f.AddMs))
			if f.JitterMs > 0 {
				name += "±" + fmtMs(f.JitterMs)
			}
		}
		if f.Cycle > 0 {
			name += " (cycle " + strconv.Itoa(f.Cycle) + ")"
		}
		node := f.Node
		if f.NodeID != "" && f.NodeID != f.Node {
			node += " (" + f.NodeID + ")"
		}
		var errs int64
		for _, n := range f.Errors {
			errs += n
		}
		status := f.Status
		if f.Error != "" {
			status += ": " + f.Error
		}
		rows = append(rows, faultRow{
			Fault: name, Node: node, At: f.At, Start: fmtSec(f.StartS), End: fmtSec(f.EndS), Status: status,
			Errors: strconv.FormatInt(errs, 10), Recovery: recoveryCell(f.RecoveryS, f.Recovered), Bad: f.Status == "failed",
		})
	}
	return rows
}

// cyclesChart draws one bar per cycle (write and read unavailability) with the
// median and the p90 across cycles as lines: the spread at a glance.
func cyclesChart(res *result.Result) string {
	m := res.Migration
	if m == nil || len(m.Cycles) == 0 {
		return ""
	}
	cs := m.Cycles
	top := 0.0
	for _, c := range cs {
		top = math.Max(top, math.Max(c.WriteUnavailableMs, c.ReadUnavailableMs))
	}
	ticks, ymax := niceTicks(math.Max(top, 1), 4)
	f := frame{left: marginL, top: 10, width: chartW - marginL - marginR, height: 160, x0: 0, x1: float64(len(cs)), y0: 0, y1: ymax}
	legend := []legendItem{{"write unavailability", "#4e79a7"}, {"read unavailability", "#a0cbe8"}}
	if c := res.Availability.Cycles; c != nil {
		legend = append(legend, legendItem{"write p50 across cycles", "#e15759"}, legendItem{"write p90 across cycles", "#f28e2b"})
	}
	legendY := f.top + f.height + axisH + 18
	var b svgBuf
	openChart(&b, "cycles", "Unavailability per cutover cycle", legendY+legendHeight(legend)-4)
	drawValueAxis(&b, f, ticks, "ms")
	slot := f.width / float64(len(cs))
	barW := math.Min(slot*0.35, 40)
	b.f(`<g class="series cycles" font-size="11">`)
	for i, c := range cs {
		x := f.left + slot*float64(i) + slot/2
		for j, v := range []float64{c.WriteUnavailableMs, c.ReadUnavailableMs} {
			col := legend[j].color
			bx := x - barW + float64(j)*barW
			y := f.py(v)
			b.f(`<rect class="cycle-bar" x="%s" y="%s" width="%s" height="%s" fill="%s"><title>cycle %d %s: %s %s</title></rect>`,
				num(bx), num(y), num(barW-2), num(f.top+f.height-y), col, c.Cycle, esc(c.Direction), esc(legend[j].name), esc(fmtMs(v)))
		}
		b.f(`<text x="%s" y="%s" text-anchor="middle" fill="#333">%d %s</text>`, num(x), num(f.top+f.height+16), c.Cycle, esc(c.Direction))
	}
	b.f(`</g>`)
	if c := res.Availability.Cycles; c != nil {
		for _, l := range []struct {
			v   float64
			col string
		}{{c.WriteUnavailableMs.P50, "#e15759"}, {c.WriteUnavailableMs.P90, "#f28e2b"}} {
			y := f.py(l.v)
			b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-dasharray="5 3" stroke-width="1.5"/>`, num(f.left), num(y), num(f.left+f.width), num(y), l.col)
		}
	}
	b.f(`<desc data-points="%d">%d cycles</desc>`, len(cs), len(cs))
	drawLegend(&b, legend, legendY, "box")
	b.f(`</svg>`)
	return b.String()
}
