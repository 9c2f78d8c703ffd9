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
	v := PageVerdict(res)

	p("# Rehearsal report: %s (%s run)\n\n", mdText(orDash(res.Scenario.Name)), mdText(orDash(res.Mode)))
	p("**Verdict: %s**", v.Label())
	if v.Passed {
		p(" — every SLO met.\n")
	} else {
		p("\n\n")
		for _, r := range v.Reasons {
			p("- %s\n", mdText(r))
		}
	}
	p("\n%s · %s · target %s, endpoint %s\n", res.StartedAt.UTC().Format("2006-01-02 15:04:05 MST"),
		fmtDuration(res.DurationS), mdText(orDash(res.Target.Kind)), mdText(orDash(res.Target.EndpointMode)))

	p("\n## SLO checks\n\n")
	if len(res.SLO.Checks) == 0 {
		p("No SLO checks were evaluated.\n")
	} else {
		mdTable(bw, []string{"check", "limit", "value", "result"}, "---|--:|--:|---")
		for _, c := range res.SLO.Checks {
			mdRow(bw, c.Name, checkLimit(c), checkValue(c), checkStatus(c))
		}
	}

	p("\n## Cutover\n\n")
	if res.Migration == nil {
		p("No cutover ran.\n")
	} else {
		mdKV(bw, migrationRows(res.Migration))
		p("\n")
		mdTable(bw, []string{"step", "status", "start", "end", "duration"}, "---|---|--:|--:|--:")
		for _, s := range res.Migration.Steps {
			mdRow(bw, s.Name, s.Status, fmtSec(s.StartS), fmtSec(s.EndS), fmtDuration(s.EndS-s.StartS))
		}
	}

	p("\n## Latency per operation and phase\n\nMilliseconds, measured from each operation's intended start.\n\n")
	if len(res.Operations) == 0 {
		p("No operations ran.\n")
	} else {
		mdTable(bw, []string{"operation", "kind", "phase", "count", "errors", "p50", "p90", "p99", "p99.9", "max"}, "---|---|---|--:|--:|--:|--:|--:|--:|--:")
		for _, r := range latencyRows(res) {
			mdRow(bw, r.Op, r.Kind, r.Phase, i64(r.Count), i64(r.Errors), msCell(r.Lat.P50), msCell(r.Lat.P90), msCell(r.Lat.P99), msCell(r.Lat.P999), msCell(r.Lat.Max))
		}
	}

	p("\n## Errors\n\n")
	if len(res.Errors) == 0 {
		p("No errors.\n")
	} else {
		mdTable(bw, []string{"class", "SQLSTATE", "count", "first", "last", "example"}, "---|---|--:|--:|--:|---")
		for _, e := range res.Errors {
			mdRow(bw, e.Class, orDash(e.SQLState), i64(e.Count), fmtSec(e.FirstS), fmtSec(e.LastS), e.Example)
		}
	}

	p("\n## Unavailability\n\n")
	mdKV(bw, availabilityRows(res.Availability))
	if len(res.Availability.Windows) > 0 {
		p("\n")
		mdTable(bw, []string{"kind", "phase", "start", "end", "duration", "attempts"}, "---|---|--:|--:|--:|--:")
		for _, win := range res.Availability.Windows {
			mdRow(bw, win.Kind, win.Phase, fmtSec(win.StartS), fmtSec(win.EndS), fmtMs(win.Ms), i64(win.Attempts))
		}
	} else {
		p("\nNo unavailability windows.\n")
	}

	p("\n## Integrity\n\n")
	mdKV(bw, integrityRows(res))
	for _, d := range res.Integrity.Details {
		p("- %s\n", mdText(d))
	}

	p("\n## Load\n\n")
	mdKV(bw, loadRows(res))

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
