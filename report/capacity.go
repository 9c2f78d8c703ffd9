package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/rehearse-dev/rehearse/result"
)

// LimitLabel names the limit for a chart legend: "p99 ≤ 1 s", "p99 transfer during ≤ 5 s".
func LimitLabel(l result.LatencyLimit) string {
	s := "p" + fmtPct(l.Percentile)
	if l.Op != "" && l.Op != "*" {
		s += " " + l.Op
	}
	if l.Phase != "" && l.Phase != phaseAll {
		s += " " + l.Phase
	}
	return s + " ≤ " + fmtMs(l.MaxMs)
}

// CapacityVerdict is the sentence that heads a capacity report, e.g.
// "PASS: sustainable 3,400/s ≥ peak 2,000/s (headroom 1.7×)". When the search did not
// find the limit (every step asked for passed) it says "at least", never
// "sustainable": the rate is a lower bound.
func CapacityVerdict(c *result.CapacityResult) string {
	k := c.Capacity
	label := "FAIL"
	if k.Passed {
		label = "PASS"
	}
	found := limitFound(k)
	what, hm := "sustainable", ""
	if !found {
		what, hm = "at least", "≥ "
	}
	var s string
	switch {
	case k.PeakRate > 0:
		cmp := "≥"
		if k.MaxSustainableRate < k.PeakRate {
			cmp = "<"
		}
		s = fmt.Sprintf("%s: %s %s/s %s peak %s/s (headroom %s%s×)", label, what, fmtCapRate(k.MaxSustainableRate), cmp, fmtCapRate(k.PeakRate), hm, fmtHeadroom(k.Headroom))
	case k.MaxSustainableRate > 0:
		s = fmt.Sprintf("%s: %s %s/s (no peak rate declared)", label, what, fmtCapRate(k.MaxSustainableRate))
	default:
		s = label + ": no step met the SLOs"
	}
	if !found && k.MaxSustainableRate > 0 && !c.Interrupted {
		s += "; the limit was not found"
	}
	if c.Interrupted {
		s += " — interrupted, partial"
	}
	return s
}

// limitFound says whether the search found the limit: the result says so, or (for
// results written before it did) its last ladder step breached or saturated.
func limitFound(k result.Capacity) bool {
	if k.LimitFound {
		return true
	}
	for i := len(k.Steps) - 1; i >= 0; i-- {
		if k.Steps[i].Phase == "ladder" {
			v := k.Steps[i].Verdict
			return v == result.StepBreach || v == result.StepSaturated
		}
	}
	return false
}

// kneeRate is the knee's rate, 0 when there is none.
func kneeRate(k result.Capacity) float64 {
	if k.KneeRate == nil || k.KneeStep < 0 || k.KneeStep >= len(k.Steps) {
		return 0
	}
	return *k.KneeRate
}

// kneeText says where the knee is, or why there is none.
func kneeText(k result.Capacity) string {
	switch {
	case kneeRate(k) > 0:
		return fmtCapRate(kneeRate(k)) + "/s"
	case k.FlatFactor > 0 && k.P99Rise > 0 && k.P99Rise < k.FlatFactor:
		return fmt.Sprintf("none: the curve is flat (p99 rose %s× across the steps, under %s×)", strconv.FormatFloat(k.P99Rise, 'f', -1, 64), strconv.FormatFloat(k.FlatFactor, 'f', -1, 64))
	default:
		return "—"
	}
}

// fmtCapRate formats a rate with thousands separators and no decimals above 100:
// 3,400; 12.5.
func fmtCapRate(r float64) string {
	if r != 0 && math.Abs(r) < 100 && r != math.Trunc(r) {
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
	s := strconv.FormatInt(int64(math.Round(r)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtHeadroom formats a headroom factor with two significant decimals: 1.7, 0.85.
func fmtHeadroom(h float64) string {
	if h < 1 {
		return strconv.FormatFloat(h, 'f', 2, 64)
	}
	return strconv.FormatFloat(math.Floor(h*10)/10, 'f', 1, 64)
}
