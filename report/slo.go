package report

import (
	"fmt"
	"math"
	"strconv"

	"github.com/rehearse-dev/rehearse/result"
)

// phaseAll is the LatencySLO phase that means the whole run.
const phaseAll = "all"

// fmtPct formats a percentile without trailing zeros: 99, 99.9.
func fmtPct(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) }

// Reasons lists the failed checks of v as sentences for the verdict header, e.g.
// "p99 latency transfer during: 812.4 ms, limit 500 ms". It is empty when v passed.
func Reasons(v result.SLOVerdict) []string {
	var out []string
	for _, c := range v.Checks {
		if !c.Passed {
			out = append(out, reasonLine(c))
		}
	}
	if !v.Passed && len(out) == 0 {
		out = append(out, "SLOs were not evaluated")
	}
	return out
}

// reasonLine says why one check failed.
func reasonLine(c result.SLOCheck) string {
	if c.Reason != "" {
		return c.Name + ": " + c.Reason
	}
	cmp := "above"
	if c.Name == "achieved rate / target" || c.Unit == result.UnitRatio {
		cmp = "below"
	}
	return fmt.Sprintf("%s: %s, %s the limit of %s", c.Name, fmtValue(c.Value, c.Unit), cmp, fmtValue(c.Limit, c.Unit))
}

// fmtValue formats a check value with its unit.
func fmtValue(v float64, unit string) string {
	switch unit {
	case result.UnitMs:
		return fmtMs(v)
	case result.UnitFraction:
		return fmtPercent(v)
	case result.UnitCount:
		return strconv.FormatInt(int64(math.Round(v)), 10)
	case result.UnitRatio:
		return strconv.FormatFloat(v, 'f', 3, 64)
	case result.UnitSeconds:
		return strconv.FormatFloat(v, 'f', 1, 64) + " s"
	default:
		return strconv.FormatFloat(v, 'g', 6, 64)
	}
}

// fmtMs formats milliseconds with precision that suits their size.
func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "0 ms"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	case v < 1000 && v != math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	default:
		return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
	}
}

// fmtPercent formats a fraction as a percentage.
func fmtPercent(f float64) string {
	if f != 0 && math.Abs(f) < 0.0001 {
		return strconv.FormatFloat(f*100, 'f', 4, 64) + "%"
	}
	return strconv.FormatFloat(f*100, 'f', 2, 64) + "%"
}
