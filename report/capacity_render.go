package report

import (
	"bufio"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"

	"github.com/rehearse-dev/rehearse/result"
)

// CapacityMarkdown writes c as a Markdown report: the verdict, the answer (max
// sustainable rate, knee, headroom) and the steps table, without the chart.
func CapacityMarkdown(w io.Writer, c *result.CapacityResult) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	k := c.Capacity
	p("# Capacity report: %s\n\n", mdText(orDash(c.Scenario.Name)))
	p("**%s**\n\n", mdText(CapacityVerdict(c)))
	p("%s · %s · target %s%s\n\n", c.StartedAt.UTC().Format("2006-01-02 15:04:05 MST"), fmtDuration(c.DurationS),
		mdText(orDash(c.Target.Kind)), mdText(capacityMode(c)))
	p("Stopped: %s\n\n", mdText(orDash(k.StoppedBecause)))
	mdKV(bw, capacityRows(c))
	p("\n## Steps\n\nEach step held its rate for %s; the first %s are left out of its numbers. Latency in milliseconds from each operation's intended start.\n\n",
		fmtDuration(k.HoldS), fmtDuration(k.WarmupS))
	if len(k.Steps) == 0 {
		p("No step ran.\n")
	} else {
		mdTable(bw, capacityHead(c), "--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:"+cutoverAlign(c)+"|---")
		for i, s := range k.Steps {
			mdRow(bw, capacityCells(c, i, s)...)
		}
	}
	p("\n## SLO checks per step\n\n")
	for i, s := range k.Steps {
		if len(s.Reasons) == 0 {
			continue
		}
		p("- step %d (%s/s): %s\n", i+1, fmtCapRate(s.TargetRate), mdText(strings.Join(s.Reasons, "; ")))
	}
	if !anyReasons(k.Steps) {
		p("Every step met every SLO.\n")
	}
	if len(c.Notes) > 0 {
		p("\n## Notes\n\n")
		for _, n := range c.Notes {
			p("- %s\n", mdText(n))
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write markdown: %w", err)
	}
	return nil
}

func anyReasons(steps []result.CapacityStep) bool {
	for _, s := range steps {
		if len(s.Reasons) > 0 {
			return true
		}
	}
	return false
}

func capacityMode(c *result.CapacityResult) string {
	if c.Capacity.WithCutover {
		return " · a cutover in every step"
	}
	return ""
}

func cutoverAlign(c *result.CapacityResult) string {
	if c.Capacity.WithCutover {
		return "|---"
	}
	return ""
}

// capacityHead is the steps table's header.
func capacityHead(c *result.CapacityResult) []string {
	h := []string{"#", "target /s", "offered /s", "achieved /s", "sessions", "p50", "p99", "p99.9", "max", "errors", "error rate", "lag p99"}
	if c.Capacity.WithCutover {
		h = append(h, "cutover")
	}
	return append(h, "verdict")
}

// capacityCells is one row of the steps table.
func capacityCells(c *result.CapacityResult, i int, s result.CapacityStep) []string {
	n := strconv.Itoa(i + 1)
	if s.Phase == "refine" {
		n += " (refine)"
	}
	if i == c.Capacity.KneeStep {
		n += " knee"
	}
	row := []string{n, fmtCapRate(s.TargetRate), fmtCapRate(s.OfferedRate), fmtCapRate(s.AchievedRate), strconv.Itoa(s.Sessions), msCell(s.P50Ms), msCell(s.P99Ms), msCell(s.P999Ms), msCell(s.MaxMs),
		i64(s.Errors), fmtPercent(s.ErrorRate), msCell(s.ScheduleLagP99Ms)}
	if c.Capacity.WithCutover {
		row = append(row, orDash(s.Cutover))
	}
	return append(row, s.Verdict)
}

// capacityRows are the answer's key figures.
func capacityRows(c *result.CapacityResult) []kv {
	k := c.Capacity
	rate := func(r float64) string {
		if r <= 0 {
			return "—"
		}
		return fmtCapRate(r) + "/s"
	}
	head := "—"
	if k.PeakRate > 0 {
		head = fmtHeadroom(k.Headroom) + "×"
	}
	sustained := kv{"max sustainable rate", rate(k.MaxSustainableRate)}
	if !limitFound(k) && k.MaxSustainableRate > 0 {
		sustained = kv{"sustained (limit not found)", "at least " + rate(k.MaxSustainableRate)}
	}
	return []kv{
		sustained,
		{"knee of the latency curve", kneeText(k)},
		{"declared peak rate", rate(k.PeakRate)},
		{"headroom", head},
		{"steps", strconv.Itoa(len(k.Steps))},
	}
}

// capacityHTMLData is what the capacity template sees.
type capacityHTMLData struct {
	C       *result.CapacityResult
	Verdict string
	Rows    []kv
	Chart   template.HTML
	Head    []string
	Cells   [][]string
	Bad     []bool
}

// CapacityHTML writes c as one self-contained HTML page: the verdict banner, the
// latency-versus-throughput chart with the SLO limits, the knee, the sustainable
// and peak rates, and the steps table. Like HTML, it references nothing outside
// itself.
func CapacityHTML(w io.Writer, c *result.CapacityResult) error {
	t, err := template.New("capacity").Funcs(template.FuncMap{
		"css":  func() template.CSS { return template.CSS(styleCSS) }, //nolint:gosec // our own file
		"dur":  fmtDuration,
		"rate": fmtCapRate,
		"add1": func(i int) int { return i + 1 },
	}).Parse(capacityTemplate)
	if err != nil {
		return fmt.Errorf("parse capacity template: %w", err)
	}
	d := capacityHTMLData{
		C: c, Verdict: CapacityVerdict(c), Rows: capacityRows(c),
		Chart: template.HTML(CapacityChart(c)), //nolint:gosec // built from escaped parts
		Head:  capacityHead(c),
	}
	for i, s := range c.Capacity.Steps {
		d.Cells = append(d.Cells, capacityCells(c, i, s))
		d.Bad = append(d.Bad, !s.OK())
	}
	if err := t.Execute(w, d); err != nil {
		return fmt.Errorf("render capacity html: %w", err)
	}
	return nil
}

const capacityTemplate = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Verdict}} · {{.C.Scenario.Name}} · rehearse capacity</title>
<style>
{{css}}
</style>
</head>
<body>
<main>
<h1>Capacity report: {{.C.Scenario.Name}}</h1>
<p class="sub">{{.C.StartedAt.UTC.Format "2006-01-02 15:04:05 MST"}} · {{dur .C.DurationS}} · target {{.C.Target.Kind}}{{with .C.Target.Workload}} · workload {{.}}{{end}}{{if .C.Capacity.WithCutover}} · a cutover in every step{{end}}</p>

<section id="verdict" class="verdict {{if .C.Capacity.Passed}}pass{{else}}fail{{end}}" data-verdict="{{if .C.Capacity.Passed}}PASS{{else}}FAIL{{end}}">
<div class="label">{{.Verdict}}</div>
<p>Stopped: {{.C.Capacity.StoppedBecause}}</p>
</section>

<div class="cards">{{range .Rows}}<div class="card"><div class="k">{{.K}}</div><div class="v">{{.V}}</div></div>{{end}}</div>

<h2>Latency versus throughput</h2>
<figure><figcaption>p50, p99 and p99.9 latency against the achieved rate of each step (log scale); dashed red lines are the SLO limits; circled red markers are steps that breached or saturated</figcaption>{{.Chart}}</figure>

<h2>Steps</h2>
<p class="sub">Each step held its rate for {{dur .C.Capacity.HoldS}}; the first {{dur .C.Capacity.WarmupS}} are left out of its numbers. Latency in milliseconds from each operation's intended start.</p>
{{if .Cells}}<table>
<tr>{{range .Head}}<th class="n">{{.}}</th>{{end}}</tr>
{{range $i, $row := .Cells}}<tr>{{range $row}}<td class="n">{{.}}</td>{{end}}</tr>
{{end}}</table>{{else}}<p class="na">No step ran.</p>{{end}}

<h2>Why steps failed</h2>
{{$any := false}}<ul>{{range $i, $s := .C.Capacity.Steps}}{{if $s.Reasons}}{{$any = true}}<li class="bad">step {{add1 $i}} ({{rate $s.TargetRate}}/s, {{$s.Verdict}}): {{range $j, $r := $s.Reasons}}{{if $j}}; {{end}}{{$r}}{{end}}</li>{{end}}{{end}}</ul>
{{if not $any}}<p class="na">Every step met every SLO.</p>{{end}}

{{with .C.Notes}}<h2>Notes</h2><ul>{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}
<p class="sub">rehearse {{.C.Version}} · scenario {{.C.Scenario.File}}</p>
</main>
</body>
</html>
`
