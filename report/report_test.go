package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// variants are the shapes a report must render: a wet run, a dry run, a run
// without a cutover and an empty run.
func variants(t *testing.T) map[string]*Result {
	t.Helper()
	wet := sample(t, "sample-wet.json")
	rareOp := sample(t, "sample-wet.json")
	rareOp.Operations = append(rareOp.Operations, Operation{Name: "rare", Kind: "write", Phases: map[string]Phase{}})
	noCut := sample(t, "sample-wet.json")
	noCut.Migration = nil
	empty := &Result{Schema: SchemaV1, Mode: "wet", Scenario: ScenarioInfo{Name: "empty"}}
	return map[string]*Result{"wet": wet, "dry": sample(t, "sample-dry.json"), "nocutover": noCut, "empty": empty}
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
	charts := map[string]func(*Result) string{
		"throughput": throughputChart,
		"latency":    latencyChart,
		"errors":     errorsChart,
		"gantt":      ganttChart,
	}
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
		for cname, chart := range map[string]func(*Result) string{"throughput": throughputChart, "latency": latencyChart, "errors": errorsChart, "gantt": ganttChart} {
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

func TestEvaluate(t *testing.T) {
	ms := func(n int) scenarios.Duration { return scenarios.Duration(time.Duration(n) * time.Millisecond) }
	frac := func(f float64) *float64 { return &f }
	wet := sample(t, "sample-wet.json")
	noIntegrity := sample(t, "sample-wet.json")
	noIntegrity.Integrity = Integrity{}
	lost := sample(t, "sample-wet.json")
	lost.Integrity.LostAcknowledgedWrites = 3
	rareOp := sample(t, "sample-wet.json")
	rareOp.Operations = append(rareOp.Operations, Operation{Name: "rare", Kind: "write", Phases: map[string]Phase{}})
	noCut := sample(t, "sample-wet.json")
	for i := range noCut.Operations {
		delete(noCut.Operations[i].Phases, PhaseDuring)
	}
	tests := []struct {
		name   string
		res    *Result
		slo    scenarios.SLO
		passed bool
		want   map[string]string // check name → "pass", "FAIL", or a reason substring
	}{
		{"sample passes", wet, sampleSLO(), true, map[string]string{"p99 latency transfer during": "pass", "lost acknowledged writes": "pass", "error rate": "pass"}},
		{"impossible latency", wet, scenarios.SLO{Latency: []scenarios.LatencySLO{{Op: "transfer", Phase: PhaseDuring, Percentile: 99, Max: ms(1)}}}, false,
			map[string]string{"p99 latency transfer during": "FAIL"}},
		{"op did not run", wet, scenarios.SLO{Latency: []scenarios.LatencySLO{{Op: "wire", Max: ms(100)}}}, false,
			map[string]string{"p99 latency wire all": "operation wire did not run"}},
		{"star skips an op that did not run", rareOp, scenarios.SLO{Latency: []scenarios.LatencySLO{{Op: "*", Max: ms(100000)}}}, true,
			map[string]string{"p99 latency login all": "pass"}},
		{"named op that did not run", rareOp, scenarios.SLO{Latency: []scenarios.LatencySLO{{Op: "rare", Max: ms(100000)}}}, false,
			map[string]string{"p99 latency rare all": "operation rare did not run"}},
		{"phase did not occur", noCut, scenarios.SLO{Latency: []scenarios.LatencySLO{{Op: "balance", Phase: PhaseDuring, Max: ms(1)}}}, true,
			map[string]string{"p99 latency balance during": "not applicable"}},
		{"p95 uses p99", wet, scenarios.SLO{Latency: []scenarios.LatencySLO{{Op: "balance", Phase: PhaseBefore, Percentile: 95, Max: ms(1000)}}}, true,
			map[string]string{"p95 latency balance before (as p99)": "pass"}},
		{"p99.99 uses max", wet, scenarios.SLO{Latency: []scenarios.LatencySLO{{Op: "balance", Percentile: 99.99, Max: ms(1)}}}, false,
			map[string]string{"p99.99 latency balance all (as max)": "FAIL"}},
		{"error rate", wet, scenarios.SLO{MaxErrorRate: frac(0.001)}, false, map[string]string{"error rate": "FAIL"}},
		{"write unavailability", wet, scenarios.SLO{MaxWriteUnavailable: ms(500)}, false, map[string]string{"max write unavailability": "FAIL"}},
		{"read unavailability", wet, scenarios.SLO{MaxReadUnavailable: ms(500)}, true, map[string]string{"max read unavailability": "pass"}},
		{"integrity not checked", noIntegrity, scenarios.SLO{}, false, map[string]string{"lost acknowledged writes": "integrity not checked"}},
		{"lost writes", lost, scenarios.SLO{}, false, map[string]string{"lost acknowledged writes": "FAIL"}},
		{"lost writes tolerated", lost, scenarios.SLO{MaxLostWrites: 3}, true, map[string]string{"lost acknowledged writes": "pass"}},
		{"achieved rate", wet, scenarios.SLO{MinAchievedRate: 1.5}, false, map[string]string{"achieved rate / target": "FAIL"}},
		{"no operations", &Result{Integrity: Integrity{Checked: true}}, scenarios.SLO{Latency: []scenarios.LatencySLO{{Max: ms(5)}}}, false,
			map[string]string{"p99 latency * all": "no operations ran"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Evaluate(tt.res, tt.slo)
			if v.Passed != tt.passed {
				t.Errorf("passed = %v, want %v; reasons %q", v.Passed, tt.passed, Reasons(v))
			}
			for name, want := range tt.want {
				var found *SLOCheck
				for i := range v.Checks {
					if v.Checks[i].Name == name {
						found = &v.Checks[i]
					}
				}
				if found == nil {
					t.Errorf("no check named %q in %+v", name, v.Checks)
					continue
				}
				switch want {
				case "pass", "FAIL":
					if got := checkStatus(*found); got != want {
						t.Errorf("%s: %s, want %s (%+v)", name, got, want, *found)
					}
				default:
					if !strings.Contains(found.Reason, want) {
						t.Errorf("%s: reason %q, want it to contain %q", name, found.Reason, want)
					}
				}
			}
			if !v.Passed && len(Reasons(v)) == 0 {
				t.Error("failed verdict without reasons")
			}
		})
	}
}

func TestReasonsNameTheBreach(t *testing.T) {
	v := SLOVerdict{Checks: []SLOCheck{
		{Name: "p99 latency transfer during", Limit: 500, Value: 812.44, Unit: UnitMs},
		{Name: "achieved rate / target", Limit: 0.95, Value: 0.5, Unit: UnitRatio},
		{Name: "lost acknowledged writes", Unit: UnitCount, Reason: "integrity not checked"},
		{Name: "error rate", Limit: 0.01, Value: 0.001, Unit: UnitFraction, Passed: true},
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

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, body string
		want       error
		msg        string
	}{
		{"yaml.json", "name: smoke\n", ErrNotResult, "not a JSON object"},
		{"array.json", "[1,2]", ErrNotResult, "not a JSON object"},
		{"other.json", `{"hello": "world"}`, ErrNotResult, "without a \"schema\""},
		{"v2.json", `{"schema": "rehearse/result/v2"}`, ErrSchema, `"rehearse/result/v2"`},
		{"bad-field.json", `{"schema": "rehearse/result/v1", "duration_s": "long"}`, ErrNotResult, "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(tt.name, tt.body)
			_, err := ReadFile(p)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), tt.name) {
				t.Errorf("message %q should name the file and contain %q", err, tt.msg)
			}
		})
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	res := sample(t, "sample-wet.json")
	var b bytes.Buffer
	if err := JSON(&b, res); err != nil {
		t.Fatal(err)
	}
	back, err := Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	var b2 bytes.Buffer
	if err := JSON(&b2, back); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile("testdata/sample-wet.json")
	if !bytes.Equal(b2.Bytes(), want) {
		t.Error("result does not round-trip through JSON")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "result.json")
	if err := WriteFileAtomic(path, func(w io.Writer) error { _, err := io.WriteString(w, "first"); return err }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFileAtomic(path, func(w io.Writer) error {
		_, _ = io.WriteString(w, "half a fi")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "first" {
		t.Errorf("file = %q after a failed write, want the previous content", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "nodir", "x"), func(io.Writer) error { return nil }); err == nil {
		t.Error("writing into a missing directory succeeded")
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
