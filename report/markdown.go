package report

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rehearse-dev/rehearse/result"
)

// Markdown writes res as a Markdown report for a pull request or a ticket: the
// verdict and the same tables as the HTML report, without the charts.
func Markdown(w io.Writer, res *result.Result) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }

	mdVerdict(bw, res)
	mdSLOChecks(bw, res)
	mdCutover(bw, res)
	mdFaults(bw, res)
	mdWindows(bw, res)
	mdDatabase(bw, res)
	mdFailures(bw, res)
	mdCaptured(bw, res)
	mdLatency(bw, res)
	mdErrors(bw, res)
	mdUnavailability(bw, res)

	p("\n## Integrity\n\n")
	mdKV(bw, integrityRows(res))
	for _, d := range res.Integrity.Details {
		p("- %s\n", mdText(d))
	}

	p("\n## Load\n\n")
	mdKV(bw, loadRows(res))

	if rows := clientRows(res); rows != nil {
		p("\n## Client\n\n")
		mdKV(bw, rows)
	}

	p("\n## Environment\n\n")
	mdKV(bw, envRows(res))

	if len(res.Notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range res.Notes {
			p("- %s\n", mdText(n))
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write markdown: %w", err)
	}
	return nil
}

// mdVerdict writes the report's title, the verdict with the reasons it failed, and
// when, for how long and against what the run went.
func mdVerdict(w io.Writer, res *result.Result) {
	v := PageVerdict(res)
	fmt.Fprintf(w, "# Rehearsal report: %s (%s run)\n\n", mdText(orDash(res.Scenario.Name)), mdText(orDash(res.Mode)))
	fmt.Fprintf(w, "**Verdict: %s**", v.Label())
	if v.Passed {
		fmt.Fprintf(w, " — every SLO met.\n")
	} else {
		fmt.Fprintf(w, "\n\n")
		for _, r := range v.Reasons {
			fmt.Fprintf(w, "- %s\n", mdText(r))
		}
	}
	fmt.Fprintf(w, "\n%s · %s · target %s, endpoint %s\n", res.StartedAt.UTC().Format("2006-01-02 15:04:05 MST"),
		fmtDuration(res.DurationS), mdText(orDash(res.Target.Kind)), mdText(orDash(res.Target.EndpointMode)))
}

// mdSLOChecks writes every SLO check with its limit, value and result.
func mdSLOChecks(w io.Writer, res *result.Result) {
	fmt.Fprintf(w, "\n## SLO checks\n\n")
	if len(res.SLO.Checks) == 0 {
		fmt.Fprintf(w, "No SLO checks were evaluated.\n")
		return
	}
	mdTable(w, []string{"check", "limit", "value", "result"}, "---|--:|--:|---")
	for _, c := range res.SLO.Checks {
		mdRow(w, c.Name, checkLimit(c), checkValue(c), checkStatus(c))
	}
}

// mdCutover writes the cutover's outcome and its steps on the run's timeline.
func mdCutover(w io.Writer, res *result.Result) {
	fmt.Fprintf(w, "\n## Cutover\n\n")
	if res.Migration == nil {
		fmt.Fprintf(w, "No cutover ran.\n")
		return
	}
	if a := abortText(res.Migration); a != "" {
		fmt.Fprintf(w, "**%s**\n\n", mdText(a))
	}
	mdKV(w, migrationRows(res.Migration))
	if rows := guardrailRows(res); len(rows) > 0 {
		fmt.Fprintf(w, "\n### Guardrails (cutover.abort_if)\n\n")
		mdTable(w, []string{"condition", "limit", "worst seen", "outcome"}, "---|--:|--:|---")
		for _, r := range rows {
			mdRow(w, r.Condition, r.Limit, r.Worst, r.Outcome)
		}
	}
	if rows := cycleRows(res); len(rows) > 0 {
		fmt.Fprintf(w, "\n### Cycles\n\n")
		mdKV(w, spreadRows(res))
		fmt.Fprintf(w, "\n")
		mdTable(w, []string{"cycle", "direction", "writer", "outcome", "write unavailable", "read unavailable", "recovery", "transactions", "failed", "failed attempts", "stall breakdown"}, "--:|---|---|---|--:|--:|--:|--:|--:|--:|---")
		for _, r := range rows {
			mdRow(w, r.Cycle, r.Direction, r.Move, r.Outcome, r.Write, r.Read, r.Recovery, i64(r.Transactions), i64(r.Failed), i64(r.FailedAttempts), r.Stall)
		}
	}
	fmt.Fprintf(w, "\n")
	mdTable(w, []string{"step", "status", "start", "end", "duration"}, "---|---|--:|--:|--:")
	for _, s := range res.Migration.Steps {
		mdRow(w, stepLabel(s), s.Status, fmtSec(s.StartS), fmtSec(s.EndS), fmtDuration(s.EndS-s.StartS))
	}
}

// mdFaults writes the injected faults.
func mdFaults(w io.Writer, res *result.Result) {
	rows := faultRows(res)
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## Faults\n\n")
	mdTable(w, []string{"fault", "node", "at", "start", "end", "status", "failed operations", "recovery"}, "---|---|---|--:|--:|---|--:|--:")
	for _, r := range rows {
		mdRow(w, r.Fault, r.Node, r.At, r.Start, r.End, r.Status, r.Errors, r.Recovery)
	}
}

// mdWindows writes the phase windows the run's timeline followed.
func mdWindows(w io.Writer, res *result.Result) {
	rows := windowRows(res)
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## Phase windows\n\nEach switchover, failback and fault is its own \"during\" window; per-phase SLOs apply to each. Recovery: how long after a window's end p99 latency and schedule lag stayed above 2× their values before the first disruption.\n\n")
	mdTable(w, []string{"phase", "window", "start", "end", "operations", "failed", "p99", "write unavailable", "read unavailable", "recovery"}, "---|---|--:|--:|--:|--:|--:|--:|--:|--:")
	for _, r := range rows {
		mdRow(w, r.Phase, r.Label, r.Start, r.End, i64(r.Count), i64(r.Errors), r.P99, r.Write, r.Read, r.Recovery)
	}
}

// mdLatency writes the latency percentiles of every operation, over the whole run
// and in each phase.
func mdLatency(w io.Writer, res *result.Result) {
	fmt.Fprintf(w, "\n## Latency per operation and phase\n\nMilliseconds, measured from each operation's intended start.\n\n")
	if len(res.Operations) == 0 {
		fmt.Fprintf(w, "No operations ran.\n")
		return
	}
	mdTable(w, []string{"operation", "kind", "phase", "count", "failed", "failed attempts", "p50", "p90", "p99", "p99.9", "max"}, "---|---|---|--:|--:|--:|--:|--:|--:|--:|--:")
	for _, r := range latencyRows(res) {
		mdRow(w, r.Op, r.Kind, r.Phase, i64(r.Count), i64(r.Errors), i64(r.FailedAttempts), msCell(r.Lat.P50), msCell(r.Lat.P90), msCell(r.Lat.P99), msCell(r.Lat.P999), msCell(r.Lat.Max))
	}
}

// mdFailures writes the two numbers per phase: the operations users saw fail (after
// the client's retries) and the failed attempts the database saw.
func mdFailures(w io.Writer, res *result.Result) {
	fmt.Fprintf(w, "\n## Failures: what users saw and what the database saw\n\n%s\n\n", mdText(usersSentence(res)))
	mdTable(w, []string{"phase", "operations", "failed (users)", "failed attempts (database)"}, "---|--:|--:|--:")
	for _, r := range failureRows(res) {
		mdRow(w, r.Phase, i64(r.Count), i64(r.Failed), i64(r.Attempted))
	}
}

// mdCaptured writes, for a replay, each captured statement's failures set against
// the failures the capture itself recorded.
func mdCaptured(w io.Writer, res *result.Result) {
	rows := capturedRows(res)
	if rows == nil {
		return
	}
	fmt.Fprintf(w, "\n## Captured statements\n\nPer statement fingerprint: what failed in the replay, what the capture already recorded failing, and the failures that are new.\n\n")
	mdTable(w, []string{"statement", "kind", "count", "failed", "failed in the capture", "new failures", "p50", "p99"}, "---|---|--:|--:|--:|--:|--:|--:")
	for _, r := range rows {
		mdRow(w, "`"+strings.ReplaceAll(r.Op, "`", "'")+"`", r.Kind, i64(r.Count), i64(r.Failed), i64(r.Captured), i64(r.New), msCell(r.Lat.P50), msCell(r.Lat.P99))
	}
}

// mdErrors writes every error class with its count, when it was first and last seen
// and an example.
func mdErrors(w io.Writer, res *result.Result) {
	fmt.Fprintf(w, "\n## Failed attempts by class\n\nEvery failed attempt, including those a retry made good.\n\n")
	if len(res.Errors) == 0 {
		fmt.Fprintf(w, "No errors.\n")
		return
	}
	mdTable(w, []string{"class", "SQLSTATE", "count", "first", "last", "example"}, "---|---|--:|--:|--:|---")
	for _, e := range res.Errors {
		mdRow(w, e.Class, orDash(e.SQLState), i64(e.Count), fmtSec(e.FirstS), fmtSec(e.LastS), e.Example)
	}
}

// mdUnavailability writes the unavailability summary and every window.
func mdUnavailability(w io.Writer, res *result.Result) {
	fmt.Fprintf(w, "\n## Unavailability\n\n")
	mdKV(w, availabilityRows(res.Availability))
	if len(res.Availability.Windows) == 0 {
		fmt.Fprintf(w, "\nNo unavailability windows.\n")
		return
	}
	fmt.Fprintf(w, "\n")
	mdTable(w, []string{"kind", "phase", "start", "end", "duration", "attempts"}, "---|---|--:|--:|--:|--:")
	for _, win := range res.Availability.Windows {
		mdRow(w, win.Kind, win.Phase, fmtSec(win.StartS), fmtSec(win.EndS), fmtMs(win.Ms), i64(win.Attempts))
	}
}

// mdText makes s safe inside a Markdown table cell or list item.
func mdText(s string) string {
	r := strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ", "<", "&lt;", ">", "&gt;")
	return r.Replace(s)
}

func mdTable(w io.Writer, head []string, align string) {
	fmt.Fprintf(w, "| %s |\n|%s|\n", strings.Join(head, " | "), align)
}

func mdRow(w io.Writer, cells ...string) {
	for i := range cells {
		cells[i] = mdText(cells[i])
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
}

func mdKV(w io.Writer, rows []kv) {
	mdTable(w, []string{"", ""}, "---|---")
	for _, r := range rows {
		mdRow(w, r.K, r.V)
	}
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

// fmtSec formats a timeline position in seconds.
func fmtSec(s float64) string { return strconv.FormatFloat(s, 'f', 1, 64) + " s" }

// msCell formats a latency table cell: a number of milliseconds without the unit.
func msCell(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 1000:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
}
