package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/result"
)

// variants are the shapes a report must render: a wet run, a dry run, a run
// without a cutover and an empty run.
func variants(t *testing.T) map[string]*result.Result {
	t.Helper()
	wet := sample(t, "sample-wet.json")
	rareOp := sample(t, "sample-wet.json")
	rareOp.Operations = append(rareOp.Operations, result.Operation{Name: "rare", Kind: "write", Phases: map[string]result.Phase{}})
	noCut := sample(t, "sample-wet.json")
	noCut.Migration = nil
	empty := &result.Result{Schema: result.SchemaV1, Mode: "wet", Scenario: result.ScenarioInfo{Name: "empty"}}
	return map[string]*result.Result{"wet": wet, "dry": sample(t, "sample-dry.json"), "nocutover": noCut, "empty": empty,
		"cycles": sample(t, "sample-cycles.json")}
}

func TestMarkdownGolden(t *testing.T) {
	for name, res := range variants(t) {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := Markdown(&b, res); err != nil {
				t.Fatal(err)
			}
			golden(t, "golden/report-"+name+".md", b.Bytes())
		})
	}
}

func TestChartsGolden(t *testing.T) {
	wet := sample(t, "sample-wet.json")
	charts := map[string]func(*result.Result) string{
		"throughput": throughputChart,
		"latency":    latencyChart,
		"errors":     errorsChart,
		"gantt":      ganttChart,
	}
	cyc := sample(t, "sample-cycles.json")
	charts["cycles"] = func(*result.Result) string { return cyclesChart(cyc) }
	for name, chart := range charts {
		t.Run(name, func(t *testing.T) {
			svg := chart(wet)
			wellFormed(t, svg)
			golden(t, "golden/chart-"+name+".svg", []byte(svg))
		})
	}
}

// wellFormed fails unless s parses as XML.
func wellFormed(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
}

var dataPoints = regexp.MustCompile(`data-points="(\d+)"`)

func TestChartsEdgeCases(t *testing.T) {
	for name, res := range variants(t) {
		for cname, chart := range map[string]func(*result.Result) string{"throughput": throughputChart, "latency": latencyChart, "errors": errorsChart, "gantt": ganttChart} {
			svg := chart(res)
			wellFormed(t, svg)
			if strings.Contains(svg, "NaN") || strings.Contains(svg, "Inf") {
				t.Errorf("%s/%s: SVG contains NaN or Inf", name, cname)
			}
		}
	}
}

func TestHTMLSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(<script|<link|<img|<iframe|@import|url\(|src=|https?://)`)
	for name, res := range variants(t) {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := HTML(&b, res); err != nil {
				t.Fatal(err)
			}
			page := strings.ReplaceAll(b.String(), `xmlns="http://www.w3.org/2000/svg"`, "")
			if m := external.FindString(page); m != "" {
				t.Errorf("page references something outside itself: %q", m)
			}
			if !strings.Contains(page, `id="verdict"`) {
				t.Error("no verdict banner")
			}
			if name == "wet" {
				for _, s := range sampleSteps {
					if !strings.Contains(page, `class="band-label"`) || !strings.Contains(page, ">"+s+"</text>") {
						t.Errorf("cutover band label %s missing", s)
					}
				}
			}
		})
	}
}

func TestHTMLEscapes(t *testing.T) {
	res := sample(t, "sample-wet.json")
	res.Scenario.Name = `<script>alert("x")</script>`
	res.Operations[0].Name = `<b>op</b>`
	res.Notes = []string{"a & <b>"}
	var b bytes.Buffer
	if err := HTML(&b, res); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script>", "<b>op</b>", "<b>"} {
		if strings.Contains(b.String(), bad) {
			t.Errorf("unescaped %q in the page", bad)
		}
	}
}

func TestReasonsNameTheBreach(t *testing.T) {
	v := result.SLOVerdict{Checks: []result.SLOCheck{
		{Name: "p99 latency transfer during", Limit: 500, Value: 812.44, Unit: result.UnitMs},
		{Name: "achieved rate / target", Limit: 0.95, Value: 0.5, Unit: result.UnitRatio},
		{Name: "lost acknowledged writes", Unit: result.UnitCount, Reason: "integrity not checked"},
		{Name: "error rate", Limit: 0.01, Value: 0.001, Unit: result.UnitFraction, Passed: true},
	}}
	got := Reasons(v)
	want := []string{
		"p99 latency transfer during: 812.4 ms, above the limit of 500 ms",
		"achieved rate / target: 0.500, below the limit of 0.950",
		"lost acknowledged writes: integrity not checked",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Reasons = %q, want %q", got, want)
	}
}

func TestLTTB(t *testing.T) {
	pts := make([]point, 10000)
	for i := range pts {
		pts[i] = point{float64(i), float64(i % 7)}
	}
	pts[5000].y = 1000 // a spike must survive
	out := lttb(pts, 200)
	if len(out) != 200 {
		t.Fatalf("len = %d, want 200", len(out))
	}
	if out[0] != pts[0] || out[len(out)-1] != pts[len(pts)-1] {
		t.Error("first or last point dropped")
	}
	spike := false
	for i, p := range out {
		if p.y == 1000 {
			spike = true
		}
		if i > 0 && p.x <= out[i-1].x {
			t.Fatal("points out of order")
		}
	}
	if !spike {
		t.Error("spike lost")
	}
}

func TestHourResultDownsampled(t *testing.T) {
	var b bytes.Buffer
	if err := HTML(&b, hourResult()); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, m := range dataPoints.FindAllStringSubmatch(b.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		if n > maxSeriesPoints+20 {
			t.Errorf("a series draws %d points", n)
		}
		total += n
	}
	if total > 10000 {
		t.Errorf("%d points drawn in total", total)
	}
	if b.Len() > 2<<20 {
		t.Errorf("page is %d bytes", b.Len())
	}
}

func BenchmarkRenderHTMLHour(b *testing.B) {
	res := hourResult()
	for b.Loop() {
		if err := HTML(io.Discard, res); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderMarkdownHour(b *testing.B) {
	res := hourResult()
	for b.Loop() {
		if err := Markdown(io.Discard, res); err != nil {
			b.Fatal(err)
		}
	}
}

// A latency limit breached for every operation at once is one line, not one per
// operation; other breaches keep their own lines.
func TestGroupedReasons(t *testing.T) {
	lat := func(op, phase string, v float64, passed bool) result.SLOCheck {
		return result.SLOCheck{Name: "p99 latency " + op + " " + phase, Limit: 250, Value: v, Passed: passed, Unit: result.UnitMs, Op: op, Phase: phase, Percentile: 99}
	}
	v := result.SLOVerdict{Checks: []result.SLOCheck{
		lat("login", "after", 1900, false), lat("transfer", "after", 2336, false), lat("balance", "after", 800, false), lat("logout", "after", 300, false),
		lat("login", "before", 4, true),
		lat("transfer", "during", 900, false), lat("balance", "during", 100, true),
		{Name: "error rate", Limit: 0.05, Value: 0.14, Unit: result.UnitFraction},
	}}
	got := GroupedReasons(v)
	want := []string{
		"p99 above 250 ms after the cutover for 4 of 4 operations, worst 2336 ms (transfer)",
		"p99 above 250 ms during the cutover for transfer: 900 ms",
		"error rate: 14.00%, above the limit of 5.00%",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("GroupedReasons:\n got %q\nwant %q", got, want)
	}
}
