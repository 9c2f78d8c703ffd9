package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/result"
)

// capacitySample is a capacity sign-off that climbed a ×1.5 ladder to a breach, with
// a knee, a declared peak and one refinement step.
func capacitySample() *result.CapacityResult {
	passed := result.SLOVerdict{Passed: true, Checks: []result.SLOCheck{{Name: "p99 latency * before", Limit: 1000, Value: 5, Passed: true, Unit: result.UnitMs}}}
	step := func(target, achieved, p50, p99, p999 float64, lag float64, verdict string, reasons ...string) result.CapacityStep {
		s := result.CapacityStep{Phase: "ladder", TargetRate: target, OfferedRate: target * 0.99, AchievedRate: achieved, Sessions: int(target * 5),
			P50Ms: p50, P99Ms: p99, P999Ms: p999, MaxMs: p999 * 1.5, Transactions: int64(achieved * 13), ScheduleLagP99Ms: lag,
			DurationS: 15, Verdict: verdict, Reasons: reasons, SLO: passed}
		if verdict == result.StepBreach {
			s.SLO = result.SLOVerdict{Checks: []result.SLOCheck{{Name: "p99 latency * before", Limit: 1000, Value: p99, Unit: result.UnitMs}}}
		}
		return s
	}
	steps := []result.CapacityStep{
		step(500, 495, 1.1, 4.8, 9, 1.2, result.StepOK),
		step(750, 748, 1.1, 5.9, 12, 1.3, result.StepOK),
		step(1125, 1120, 1.2, 6.8, 20, 1.5, result.StepOK),
		step(1688, 1680, 1.4, 9.2, 30, 2.3, result.StepOK),
		step(2531, 2500, 2.5, 52, 100, 20, result.StepOK),
		step(3797, 3100, 400, 2200, 2900, 1800, result.StepBreach, "p99 latency * before: 2200 ms, above the limit of 1 s"),
		step(3164, 3120, 3.1, 180, 400, 40, result.StepOK),
	}
	steps[6].Phase = "refine"
	steps[1].Errors, steps[1].ErrorRate = 3, 3/(748*13.0)
	return &result.CapacityResult{
		Schema:    result.SchemaCapacityV1,
		Scenario:  result.ScenarioInfo{Name: "smoke", File: "scenarios/smoke.yaml", SHA256: "abc"},
		Target:    result.TargetInfo{Kind: "local", Workload: "banking", Versions: map[string]string{"postgresql": "15.18"}},
		StartedAt: time.Date(2026, 11, 24, 22, 0, 0, 0, time.UTC),
		EndedAt:   time.Date(2026, 11, 24, 22, 2, 0, 0, time.UTC),
		DurationS: 120,
		Capacity: result.Capacity{
			MaxSustainableRate: 3164, LimitFound: true, KneeRate: ptr(1680.0), KneeStep: 3, P99Rise: 458.33, FlatFactor: 2,
			PeakRate: 2000, Headroom: 1.582, Passed: true,
			StoppedBecause: "step 6 (3797/s) breached an SLO: p99 latency * before: 2200 ms, above the limit of 1 s; refined between 2531/s and 3797/s in 1 step(s)",
			HoldS:          15, WarmupS: 2,
			LatencyLimits: []result.LatencyLimit{{Op: "*", Phase: "before", Percentile: 99, MaxMs: 1000}, {Op: "*", Phase: "all", Percentile: 99, MaxMs: 1000}, {Op: "transfer", Percentile: 99.9, MaxMs: 2000}},
			Steps:         steps,
		},
		Version: "test",
		Notes:   []string{"Every step ran against one database."},
	}
}

func TestCapacityMarkdownGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := CapacityMarkdown(&buf, capacitySample()); err != nil {
		t.Fatal(err)
	}
	golden(t, "capacity/report.md", buf.Bytes())
}

func TestCapacityChartGolden(t *testing.T) {
	svg := CapacityChart(capacitySample())
	if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
		t.Fatalf("chart is not well-formed XML: %v", err)
	}
	for _, want := range []string{`class="knee"`, `class="slo-limit"`, `class="sustainable"`, `class="peak"`, `class="series p99"`, "knee ≈ 1,680/s", "p99 before, p99 ≤ 1000 ms", "p99.9 transfer ≤ 2000 ms"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	golden(t, "capacity/chart.svg", []byte(svg))
}

func TestCapacityChartEdgeCases(t *testing.T) {
	empty := &result.CapacityResult{Schema: result.SchemaCapacityV1, Capacity: result.Capacity{KneeStep: -1}}
	one := capacitySample()
	one.Capacity.Steps = one.Capacity.Steps[:1]
	one.Capacity.KneeStep, one.Capacity.KneeRate, one.Capacity.PeakRate, one.Capacity.LatencyLimits = -1, nil, 0, nil
	for name, c := range map[string]*result.CapacityResult{"empty": empty, "one step": one} {
		svg := CapacityChart(c)
		if err := xml.Unmarshal([]byte(svg), new(struct{})); err != nil {
			t.Errorf("%s: not well-formed: %v", name, err)
		}
		if strings.Contains(svg, "NaN") || strings.Contains(svg, "Inf") {
			t.Errorf("%s: chart has NaN or Inf", name)
		}
	}
	if !strings.Contains(CapacityChart(empty), "no step was measured") {
		t.Error("empty chart does not say so")
	}
}

func TestCapacityHTMLSelfContained(t *testing.T) {
	c := capacitySample()
	c.Scenario.Name = `<script>alert(1)</script>`
	var buf bytes.Buffer
	if err := CapacityHTML(&buf, c); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	external := regexp.MustCompile(`(?i)(<script|<link|<img|<iframe|@import|url\(|src=|https?://)`)
	if m := external.FindString(strings.ReplaceAll(html, `xmlns="http://www.w3.org/2000/svg"`, "")); m != "" {
		t.Errorf("page references something outside itself or is not escaped: %q", m)
	}
	for _, want := range []string{"PASS: sustainable 3,164/s ≥ peak 2,000/s (headroom 1.5×)", `id="chart-capacity"`, "4 knee", "&lt;script&gt;", "7 (refine)", "breached an SLO"} {
		if !strings.Contains(html, want) {
			t.Errorf("html lacks %q", want)
		}
	}
}

func TestCapacityVerdictAndRates(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{{3400, "3,400"}, {1234567, "1,234,567"}, {999.6, "1,000"}, {12.5, "12.5"}, {50, "50"}, {0, "0"}}
	for _, tc := range tests {
		if got := fmtCapRate(tc.in); got != tc.want {
			t.Errorf("fmtCapRate(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	found := capacitySample()
	found.Capacity.MaxSustainableRate, found.Capacity.PeakRate, found.Capacity.Headroom, found.Capacity.Passed = 3400, 2000, 1.7, true
	// Every step asked for passed: the rate is a lower bound, said as "at least".
	notFound := capacitySample()
	notFound.Capacity.LimitFound = false
	notFound.Capacity.Steps = notFound.Capacity.Steps[:5]
	notFound.Capacity.MaxSustainableRate, notFound.Capacity.PeakRate, notFound.Capacity.Headroom = 2531, 0, 0
	// A result written before limit_found existed: its last ladder step breached.
	old := capacitySample()
	old.Capacity.LimitFound = false
	flat := capacitySample()
	flat.Capacity.KneeRate, flat.Capacity.KneeStep, flat.Capacity.P99Rise = nil, -1, 1.3
	cases := []struct {
		name, verdict, sustained, knee string
		c                              *result.CapacityResult
	}{
		{"limit found", "PASS: sustainable 3,400/s ≥ peak 2,000/s (headroom 1.7×)", "3,400/s", "1,680/s", found},
		{"limit not found", "PASS: at least 2,531/s (no peak rate declared); the limit was not found", "at least 2,531/s", "1,680/s", notFound},
		{"older result", "PASS: sustainable 3,164/s ≥ peak 2,000/s (headroom 1.5×)", "3,164/s", "1,680/s", old},
		{"flat curve", "PASS: sustainable 3,164/s ≥ peak 2,000/s (headroom 1.5×)", "3,164/s", "none: the curve is flat (p99 rose 1.3× across the steps, under 2×)", flat},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := CapacityVerdict(tc.c); got != tc.verdict {
				t.Errorf("verdict %q, want %q", got, tc.verdict)
			}
			var md bytes.Buffer
			if err := CapacityMarkdown(&md, tc.c); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{tc.sustained, tc.knee} {
				if !strings.Contains(md.String(), want) {
					t.Errorf("report.md lacks %q", want)
				}
			}
			if !limitFound(tc.c.Capacity) && strings.Contains(md.String(), "max sustainable") {
				t.Error("report.md calls a lower bound the max sustainable rate")
			}
			if svg := CapacityChart(tc.c); (tc.c.Capacity.KneeRate == nil) == strings.Contains(svg, `class="knee"`) {
				t.Errorf("knee drawn: %v, knee rate %v", strings.Contains(svg, `class="knee"`), tc.c.Capacity.KneeRate)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestCapacityJSONRoundTrip(t *testing.T) {
	c := capacitySample()
	path := filepath.Join(t.TempDir(), "result.json")
	if err := result.WriteFileAtomic(path, func(w io.Writer) error { return result.EncodeCapacity(w, c) }); err != nil {
		t.Fatal(err)
	}
	back, err := result.ReadCapacityFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip differs:\n got %+v\nwant %+v", back.Capacity, c.Capacity)
	}
	b, _ := os.ReadFile(path)
	for _, key := range []string{`"schema": "rehearse/capacity/v1"`, `"max_sustainable_rate": 3164`, `"knee_rate": 1680`, `"p999_ms"`, `"achieved_rate"`, `"steps"`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("result.json lacks %s", key)
		}
	}
	// A rehearsal reader refuses a capacity result with a clear error, and back.
	if _, err := result.ReadFile(path); !errors.Is(err, result.ErrSchema) || !strings.Contains(err.Error(), result.SchemaCapacityV1) {
		t.Errorf("ReadFile(capacity) = %v, want ErrSchema naming %s", err, result.SchemaCapacityV1)
	}
	if _, err := result.DecodeCapacity(strings.NewReader(`{"schema":"rehearse/result/v1"}`)); !errors.Is(err, result.ErrSchema) {
		t.Errorf("DecodeCapacity(result) = %v, want ErrSchema", err)
	}
	for _, in := range []string{`[]`, `{}`, `not json`} {
		if _, err := result.DecodeCapacity(strings.NewReader(in)); !errors.Is(err, result.ErrNotResult) {
			t.Errorf("DecodeCapacity(%s) = %v, want ErrNotResult", in, err)
		}
	}
}
