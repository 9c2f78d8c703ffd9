package report

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/result"
)

func TestCompareDryAgainstWet(t *testing.T) {
	dry, wet := sample(t, "sample-dry.json"), sample(t, "sample-wet.json")
	c := Compare(dry, wet, DefaultTolerance())
	if !c.CutoverCost {
		t.Fatal("dry against wet is not marked as cutover cost")
	}
	// The wet run's outage and during-phase latency are the cutover's cost, not a
	// regression; before/after stay comparable.
	for _, r := range c.Regressions() {
		if strings.Contains(r, " during") || strings.Contains(r, "unavailability") || strings.Contains(r, " all") {
			t.Errorf("cutover cost flagged as a regression: %s", r)
		}
	}
	var md, html bytes.Buffer
	if err := c.Markdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := c.HTML(&html); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "cutover cost") {
		t.Error("markdown does not mark the cutover cost")
	}
	golden(t, "golden/compare-dry-wet.md", md.Bytes())
	if !strings.Contains(html.String(), `id="verdict"`) {
		t.Error("comparison html has no verdict")
	}
}

func TestCompareRegressions(t *testing.T) {
	base := sample(t, "sample-wet.json")
	tests := []struct {
		name    string
		mutate  func(r *result.Result)
		tol     Tolerance
		want    string // substring of a regression; "" means none
		wantReg bool
	}{
		{"identical", func(*result.Result) {}, DefaultTolerance(), "", false},
		{"p99 +50%", func(r *result.Result) {
			p := r.Operations[3].Phases[result.PhaseAfter]
			p.LatencyMs.P99 *= 1.5
			r.Operations[3].Phases[result.PhaseAfter] = p
		}, DefaultTolerance(), "p99 transfer after", true},
		{"small absolute change is noise", func(r *result.Result) {
			p := r.Operations[1].Phases[result.PhaseBefore]
			p.LatencyMs.P50 *= 1.5 // 0.95 ms → 1.4 ms: +50% but under 1 ms
			r.Operations[1].Phases[result.PhaseBefore] = p
		}, DefaultTolerance(), "", false},
		{"looser tolerance", func(r *result.Result) {
			p := r.Operations[3].Phases[result.PhaseAfter]
			p.LatencyMs.P99 *= 1.5
			r.Operations[3].Phases[result.PhaseAfter] = p
		}, Tolerance{LatencyRel: 0.6, LatencyAbsMs: 1, ErrorRate: 0.001, RateDrop: 0.05, UnavailabilityMs: 100}, "", false},
		{"longer outage", func(r *result.Result) { r.Availability.WriteUnavailableMaxMs = 5000 }, DefaultTolerance(), "max write unavailability", true},
		{"lost writes", func(r *result.Result) { r.Integrity.LostAcknowledgedWrites = 1 }, DefaultTolerance(), "lost acknowledged writes", true},
		{"rate drop", func(r *result.Result) { r.Load.AchievedRate = 300 }, DefaultTolerance(), "achieved rate / target", true},
		{"slo breached", func(r *result.Result) { r.SLO.Passed = false }, DefaultTolerance(), "SLOs passed", true},
		{"operation missing", func(r *result.Result) { r.Operations = r.Operations[1:] }, DefaultTolerance(), "login: did not run in candidate", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cand := sample(t, "sample-wet.json")
			tt.mutate(cand)
			c := Compare(base, cand, tt.tol)
			if c.Regressed() != tt.wantReg {
				t.Errorf("Regressed = %v, want %v: %q", c.Regressed(), tt.wantReg, c.Regressions())
			}
			if tt.want != "" && !strings.Contains(strings.Join(c.Regressions(), "\n"), tt.want) {
				t.Errorf("regressions %q lack %q", c.Regressions(), tt.want)
			}
		})
	}
}

func TestParseTolerance(t *testing.T) {
	tests := []struct {
		in   string
		want Tolerance
		err  bool
	}{
		{"", DefaultTolerance(), false},
		{"15%", Tolerance{0.15, 1, 0.001, 0.05, 100}, false},
		{"latency=0.2,latency_abs=5ms,error_rate=0.5%,rate_drop=10%,unavailability=1s", Tolerance{0.2, 5, 0.005, 0.1, 1000}, false},
		{"speed=3", Tolerance{}, true},
		{"latency=-1", Tolerance{}, true},
		{"latency_abs=soon", Tolerance{}, true},
	}
	for _, tt := range tests {
		got, err := ParseTolerance(tt.in)
		if tt.err {
			if !errors.Is(err, ErrTolerance) {
				t.Errorf("%q: err = %v, want ErrTolerance", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}
