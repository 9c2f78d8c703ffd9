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
// "PASS: sustainable 3,400/s ≥ peak 2,000/s (headroom 1.7×)".
func CapacityVerdict(c *result.CapacityResult) string {
	k := c.Capacity
	label := "FAIL"
	if k.Passed {
		label = "PASS"
	}
	var s string
	switch {
	case k.PeakRate > 0:
		cmp := "≥"
		if k.MaxSustainableRate < k.PeakRate {
			cmp = "<"
		}
		s = fmt.Sprintf("%s: sustainable %s/s %s peak %s/s (headroom %s×)", label, fmtCapRate(k.MaxSustainableRate), cmp, fmtCapRate(k.PeakRate), fmtHeadroom(k.Headroom))
	case k.MaxSustainableRate > 0:
		s = fmt.Sprintf("%s: sustainable %s/s (no peak rate declared)", label, fmtCapRate(k.MaxSustainableRate))
	default:
		s = label + ": no step met the SLOs"
	}
	if c.Interrupted {
		s += " — interrupted, partial"
	}
	return s
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
