package report

import (
	"fmt"
	"math"
	"strconv"

	"github.com/rehearse-dev/rehearse/result"
)

// timeDomain is the x range every time chart of res shares: the run, the timeline
// and the cutover steps all fit.
func timeDomain(res *result.Result) (float64, float64) {
	x1 := res.DurationS
	if n := len(res.Timeline); n > 0 {
		x1 = math.Max(x1, res.Timeline[n-1].TS+1)
	}
	if res.Migration != nil {
		for _, s := range res.Migration.Steps {
			x1 = math.Max(x1, s.EndS)
		}
	}
	if x1 <= 0 {
		x1 = 1
	}
	return 0, x1
}

// timeTicks picks tick positions for a time axis in seconds.
func timeTicks(x0, x1 float64) []float64 {
	span := x1 - x0
	steps := []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400}
	step := steps[len(steps)-1]
	for _, s := range steps {
		if span/s <= 10 {
			step = s
			break
		}
	}
	var out []float64
	for t := math.Ceil(x0/step) * step; t <= x1+1e-9; t += step {
		out = append(out, t)
	}
	return out
}

// fmtSeconds labels a time tick.
func fmtSeconds(s float64) string {
	sec := int64(math.Round(s))
	switch {
	case sec < 60:
		return strconv.FormatInt(sec, 10) + "s"
	case sec%3600 == 0:
		return strconv.FormatInt(sec/3600, 10) + "h"
	case sec >= 3600:
		return fmt.Sprintf("%dh%02dm", sec/3600, sec%3600/60)
	case sec%60 == 0:
		return strconv.FormatInt(sec/60, 10) + "m"
	default:
		return fmt.Sprintf("%dm%02ds", sec/60, sec%60)
	}
}

// niceTicks returns about n round tick values covering [0, max] and the new max.
func niceTicks(max float64, n int) ([]float64, float64) {
	if max <= 0 || math.IsNaN(max) || math.IsInf(max, 0) {
		max = 1
	}
	raw := max / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag * 10
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*mag {
			step = m * mag
			break
		}
	}
	top := math.Ceil(max/step) * step
	var out []float64
	for v := 0.0; v <= top+step/2; v += step {
		out = append(out, v)
	}
	return out, top
}

// fmtTick labels a value tick compactly: 1.5k, 250, 0.5.
func fmtTick(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	default:
		return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
	}
}

// fmtDuration formats seconds for people: 350 ms, 2.1 s, 4m10s.
func fmtDuration(s float64) string {
	switch {
	case s < 1:
		return strconv.FormatFloat(s*1000, 'f', 0, 64) + " ms"
	case s < 60:
		return strconv.FormatFloat(s, 'f', 1, 64) + " s"
	default:
		return fmtSeconds(s)
	}
}
