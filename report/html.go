// Package report renders results (package result) as report.md and report.html,
// for runs and capacity sign-offs, and compares two runs. It reads only a result:
// any run can be re-rendered and any two compared.
package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"

	"github.com/rehearse-dev/rehearse/result"
)

//go:embed report.html.tmpl
var htmlTemplate string

//go:embed compare.html.tmpl
var compareTemplate string

//go:embed style.css
var styleCSS string

// htmlTmpl is parsed once per HTML call: rendering is rare and this keeps the
// package free of package-level state beyond the embedded text.
func htmlTmpl(text string) (*template.Template, error) {
	return template.New("report").Funcs(template.FuncMap{
		"ms":          msCell,
		"msu":         fmtMs,
		"sec":         fmtSec,
		"dur":         fmtDuration,
		"i64":         i64,
		"status":      checkStatus,
		"cvalue":      checkValue,
		"climit":      checkLimit,
		"pct":         fmtPercent,
		"delta":       deltaCell,
		"dflag":       deltaFlag,
		"oflag":       opFlag,
		"outcomeText": outcomeText,
		"stepDur":     func(s result.Step) string { return fmtDuration(s.EndS - s.StartS) },
		"stepLabel":   stepLabel,
		"css":         func() template.CSS { return template.CSS(styleCSS) }, //nolint:gosec // our own file
	}).Parse(text)
}

// card is one headline number under the verdict.
type card struct {
	Label, Value string
	Bad          bool
}

// htmlData is what the HTML template sees.
type htmlData struct {
	R          *result.Result
	V          Verdict
	Cards      []card
	Throughput template.HTML
	Latency    template.HTML
	Errors     template.HTML
	Gantt      template.HTML
	Rows       []phaseRow
	Migration  []kv
	Avail      []kv
	Integrity  []kv
	IntegrityV string
	IntegOK    bool
	Load       []kv
	Env        []kv
	Client     []kv
	Failures   []failureRow
	Users      string
	Captured   []capturedRow
	Database   template.HTML
	Abort      string
	Guardrails []guardrailRow
	Cycles     []cycleRow
	CycleChart template.HTML
	Spread     []kv
	Faults     []faultRow
	Windows    []windowRow
}

// HTML writes res as one self-contained HTML page: the verdict, inline SVG charts
// and the tables. It references nothing outside itself (no script, font, image or
// stylesheet), so it opens offline and prints.
func HTML(w io.Writer, res *result.Result) error {
	t, err := htmlTmpl(htmlTemplate)
	if err != nil {
		return fmt.Errorf("parse html template: %w", err)
	}
	d := htmlData{
		R:          res,
		V:          PageVerdict(res),
		Cards:      cards(res),
		Throughput: template.HTML(throughputChart(res)), //nolint:gosec // built from escaped parts
		Latency:    template.HTML(latencyChart(res)),    //nolint:gosec
		Errors:     template.HTML(errorsChart(res)),     //nolint:gosec
		Rows:       latencyRows(res),
		Avail:      availabilityRows(res.Availability),
		Integrity:  integrityRows(res),
		IntegrityV: integrityVerdict(res.Integrity),
		IntegOK:    strings.HasPrefix(integrityVerdict(res.Integrity), "OK"),
		Load:       loadRows(res),
		Env:        envRows(res),
		Client:     clientRows(res),
		Failures:   failureRows(res),
		Users:      usersSentence(res),
		Captured:   capturedRows(res),
		Database:   databaseSection(res),
		Abort:      abortText(res.Migration),
		Guardrails: guardrailRows(res),
		Cycles:     cycleRows(res),
		CycleChart: template.HTML(cyclesChart(res)), //nolint:gosec // built from escaped parts
		Spread:     spreadRows(res),
		Faults:     faultRows(res),
		Windows:    windowRows(res),
	}
	if res.Migration != nil {
		d.Gantt = template.HTML(ganttChart(res)) //nolint:gosec
		d.Migration = migrationRows(res.Migration)
	}
	if err := t.Execute(w, d); err != nil {
		return fmt.Errorf("render html: %w", err)
	}
	return nil
}

// cards picks the headline numbers: the three sign-off questions at a glance.
func cards(res *result.Result) []card {
	errRate := 0.0
	if res.Totals.Transactions > 0 {
		errRate = float64(res.Totals.Failed) / float64(res.Totals.Transactions)
	}
	ratio := "—"
	bad := false
	if res.Load.TargetRate > 0 {
		r := res.Load.AchievedRate / res.Load.TargetRate
		ratio = strconv.FormatFloat(r*100, 'f', 1, 64) + "%"
		bad = r < 0.95
	}
	lost := "not checked"
	if res.Integrity.Checked {
		lost = strconv.FormatInt(res.Integrity.LostAcknowledgedWrites, 10)
	}
	outcome := "no cutover"
	if res.Migration != nil {
		outcome = res.Migration.Outcome
	}
	if res.Migration != nil && res.Migration.Abort != nil {
		outcome = "aborted at " + strconv.FormatFloat(res.Migration.Abort.AtS, 'f', 1, 64) + " s"
	}
	cards := []card{
		{"Cutover", outcome, outcome == "failed" || res.Migration != nil && res.Migration.Outcome == "aborted"},
		{"Longest write outage", fmtMs(res.Availability.WriteUnavailableMaxMs), false},
	}
	fc, faulted := faultRecoveryCard(res.Faults)
	if res.Migration != nil || !faulted {
		cards = append(cards, recoveryCard(res))
	}
	if faulted {
		cards = append(cards, fc)
	}
	return append(cards, []card{
		{"Longest read outage", fmtMs(res.Availability.ReadUnavailableMaxMs), false},
		{"Lost acknowledged writes", lost, !res.Integrity.Checked || res.Integrity.LostAcknowledgedWrites > 0},
		{"Failed (users)", fmt.Sprintf("%d (%s)", res.Totals.Failed, fmtPercent(errRate)), false},
		{"Failed attempts", strconv.FormatInt(res.Totals.FailedAttempts, 10), false},
		{"Achieved / target rate", ratio, bad},
		{"Transactions", strconv.FormatInt(res.Totals.Transactions, 10), false},
	}...)
}

// faultRecoveryCard says how long users kept feeling the injected faults after
// each ended: the longest, and whether every one recovered (ok is false when no
// fault has a recovery).
func faultRecoveryCard(faults []result.Fault) (card, bool) {
	longest, n, all := 0.0, 0, true
	for _, f := range faults {
		if f.RecoveryS == nil {
			continue
		}
		n++
		longest = max(longest, *f.RecoveryS)
		all = all && f.Recovered
	}
	if n == 0 {
		return card{}, false
	}
	v := strconv.FormatFloat(longest, 'f', 1, 64) + " s max of " + strconv.Itoa(n) + " fault"
	if n > 1 {
		v += "s"
	}
	if !all {
		return card{"Recovery after the faults", "not by the end (" + v + ")", true}, true
	}
	return card{"Recovery after the faults", v, false}, true
}

// outcomeText says in a sentence how the cutover ended.
func outcomeText(outcome string) string {
	switch outcome {
	case "completed":
		return "The cutover completed."
	case "dry":
		return "Dry run: the cutover steps were checked and planned, not executed."
	case "rolled_back":
		return "The cutover was rolled back."
	case "failed":
		return "The cutover failed."
	default:
		return "Cutover outcome: " + outcome + "."
	}
}

// recoveryCard says how long users kept feeling the cutover after its redirect.
func recoveryCard(res *result.Result) card {
	m := res.Migration
	if c := res.Availability.Cycles; c != nil && c.RecoveryS != nil {
		v := strconv.FormatFloat(c.RecoveryS.P50, 'f', 1, 64) + " s p50 · " + strconv.FormatFloat(c.RecoveryS.Max, 'f', 1, 64) + " s max"
		return card{"Recovery after the cutover", v, m != nil && m.RecoveryS != nil && !m.Recovered}
	}
	if m == nil || m.RecoveryS == nil {
		return card{"Recovery after the cutover", "—", false}
	}
	v := strconv.FormatFloat(*m.RecoveryS, 'f', 1, 64) + " s"
	if !m.Recovered {
		return card{"Recovery after the cutover", "not by the end (" + v + ")", true}
	}
	return card{"Recovery after the cutover", v, false}
}
