package report

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/rehearse-dev/rehearse/result"
)

// capacityColors are the capacity chart's series and markers.
var capacityColors = struct {
	p50, p99, p999, limit, sustain, peak, knee, bad string
}{"#4e79a7", "#f28e2b", "#b07aa1", "#cf222e", "#1a7f37", "#3b4a9a", "#000000", "#cf222e"}

// CapacityChart draws latency (p50, p99, p99.9; log scale) against achieved
// throughput for every measured step of c, with the scenario's latency limits as
// horizontal lines, the knee marked, and the max sustainable rate and the declared
// peak as vertical lines. It returns one self-contained SVG element.
func CapacityChart(c *result.CapacityResult) string {
	k := c.Capacity
	steps := measuredSteps(k.Steps)
	limits := distinctLimits(k.LatencyLimits)
	legend := capacityLegend(k, limits)
	f, xticks, yticks := capacityFrame(k, steps, limits)
	legendY := f.top + f.height + axisH + 18
	height := legendY + legendHeight(legend) - 4

	var b svgBuf
	openChart(&b, "capacity", "Latency versus throughput (ms, log scale) with the SLO limits", height)
	drawValueAxis(&b, f, yticks, "latency (ms, log)")
	drawRateAxis(&b, f, xticks)
	if len(steps) == 0 {
		noData(&b, f, "no step was measured")
	}
	drawLimitLines(&b, f, limits)
	if k.MaxSustainableRate > 0 {
		drawRateLine(&b, f, "sustainable", k.MaxSustainableRate, capacityColors.sustain, "sustainable "+fmtCapRate(k.MaxSustainableRate)+"/s", 0)
	}
	if k.PeakRate > 0 {
		drawRateLine(&b, f, "peak", k.PeakRate, capacityColors.peak, "peak "+fmtCapRate(k.PeakRate)+"/s", 1)
	}
	drawLatencySeries(&b, f, steps)
	drawKnee(&b, f, k)
	drawLegend(&b, legend, legendY, "line")
	b.f(`</svg>`)
	return b.String()
}

// capacityLegend lists the capacity chart's series, then only the markers the chart
// draws: an SLO limit line, the max sustainable rate and the peak when they exist.
func capacityLegend(k result.Capacity, limits []limitLine) []legendItem {
	legend := []legendItem{{"p50", capacityColors.p50}, {"p99", capacityColors.p99}, {"p99.9", capacityColors.p999}}
	if len(limits) > 0 {
		legend = append(legend, legendItem{"SLO limit", capacityColors.limit})
	}
	if k.MaxSustainableRate > 0 {
		legend = append(legend, legendItem{"max sustainable " + fmtCapRate(k.MaxSustainableRate) + "/s", capacityColors.sustain})
	}
	if k.PeakRate > 0 {
		legend = append(legend, legendItem{"peak " + fmtCapRate(k.PeakRate) + "/s", capacityColors.peak})
	}
	return legend
}

// capacityFrame is the capacity chart's plot area and its ticks. The rate axis
// spans every step's target and achieved rate, the max sustainable rate and the
// peak, so the vertical lines are always on the chart; the log latency axis spans
// whole decades around every percentile and limit, with 2 and 5 ticks in between
// when it covers two decades or fewer.
func capacityFrame(k result.Capacity, steps []result.CapacityStep, limits []limitLine) (f frame, xticks, yticks []float64) {
	const plotTop, capPlotH = 16.0, 300.0
	f = frame{left: marginL, top: plotTop, width: chartW - marginL - marginR, height: capPlotH}

	xmax := math.Max(k.PeakRate, k.MaxSustainableRate)
	lo, hi := math.Inf(1), 0.0
	for _, s := range steps {
		xmax = math.Max(xmax, math.Max(s.AchievedRate, s.TargetRate))
		for _, v := range []float64{s.P50Ms, s.P99Ms, s.P999Ms} {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	for _, l := range limits {
		lo, hi = math.Min(lo, l.ms), math.Max(hi, l.ms)
	}
	if hi == 0 {
		lo, hi = 1, 10
	}
	xticks, xtop := niceTicks(xmax*1.05, 8)
	f.x1 = xtop
	f.logY = true
	f.y0 = math.Floor(math.Log10(lo))
	f.y1 = math.Ceil(math.Log10(hi))
	if f.y1 <= f.y0 {
		f.y1 = f.y0 + 1
	}
	for e := f.y0; e <= f.y1; e++ {
		yticks = append(yticks, math.Pow(10, e))
		if f.y1-f.y0 <= 2 && e < f.y1 {
			yticks = append(yticks, 2*math.Pow(10, e), 5*math.Pow(10, e))
		}
	}
	return f, xticks, yticks
}

// drawLimitLines draws each distinct SLO latency limit as a dashed horizontal line
// across f with its label.
func drawLimitLines(b *svgBuf, f frame, limits []limitLine) {
	for _, l := range limits {
		y := f.py(l.ms)
		b.f(`<g class="slo-limit"><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1.4" stroke-dasharray="6 3"/>`,
			num(f.left), num(y), num(f.left+f.width), num(y), capacityColors.limit)
		// Labelled at the left: the breaching steps, high on the right, would cover it.
		b.f(`<text x="%s" y="%s" text-anchor="start" font-size="11" fill="%s">%s</text></g>`, num(f.left+4), num(y-4), capacityColors.limit, esc(l.label))
	}
}

// drawRateLine draws a dotted vertical line at rate x with its label in label row
// row from the top, so the sustainable rate and the peak never print over each
// other. Near the right edge the label goes to the line's left to stay on the chart.
func drawRateLine(b *svgBuf, f frame, class string, x float64, color, label string, row int) {
	px := f.px(x)
	b.f(`<g class="%s"><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1.6" stroke-dasharray="2 3"/>`,
		class, num(px), num(f.top), num(px), num(f.top+f.height), color)
	anchor, tx := "start", px+4
	if px > f.left+f.width*0.75 {
		anchor, tx = "end", px-4
	}
	b.f(`<text x="%s" y="%s" text-anchor="%s" font-size="11" fill="%s">%s</text></g>`, num(tx), num(f.top+12+float64(row)*13), anchor, color, esc(label))
}

// drawLatencySeries draws the p99.9, p99 and p50 lines over the measured steps
// (p99.9 first, thinner and dashed, so the others lie on top of it) and a marker
// with a tooltip on each step's value, ringed in red when the step's verdict is not
// ok.
func drawLatencySeries(b *svgBuf, f frame, steps []result.CapacityStep) {
	series := []struct {
		class, color string
		v            func(result.CapacityStep) float64
		width        float64
	}{
		{"p999", capacityColors.p999, func(s result.CapacityStep) float64 { return s.P999Ms }, 1.2},
		{"p99", capacityColors.p99, func(s result.CapacityStep) float64 { return s.P99Ms }, 2},
		{"p50", capacityColors.p50, func(s result.CapacityStep) float64 { return s.P50Ms }, 2},
	}
	for _, sr := range series {
		var pts []point
		for _, s := range steps {
			if v := sr.v(s); v > 0 {
				pts = append(pts, point{s.AchievedRate, v})
			}
		}
		dash := ""
		if sr.class == "p999" {
			dash = "4 2"
		}
		drawPath(b, f, [][]point{pts}, sr.class, sr.color, sr.width, dash)
		b.f(`<g class="markers %s" fill="%s">`, sr.class, sr.color)
		for _, s := range steps {
			v := sr.v(s)
			if v <= 0 {
				continue
			}
			stroke := ""
			if !s.OK() {
				stroke = ` stroke="` + capacityColors.bad + `" stroke-width="2"`
			}
			b.f(`<circle cx="%s" cy="%s" r="3.2"%s><title>%s/s target, %s/s achieved: %s %s (%s)</title></circle>`,
				num(f.px(s.AchievedRate)), num(f.py(v)), stroke, fmtCapRate(s.TargetRate), fmtCapRate(s.AchievedRate), sr.class, esc(fmtMs(v)), esc(s.Verdict))
		}
		b.f(`</g>`)
	}
}

// drawKnee circles the knee step's p99 and labels it with the knee rate; it draws
// nothing when the sign-off found no knee.
func drawKnee(b *svgBuf, f frame, k result.Capacity) {
	kr := kneeRate(k)
	if kr <= 0 {
		return
	}
	s := k.Steps[k.KneeStep]
	x, y := f.px(s.AchievedRate), f.py(s.P99Ms)
	b.f(`<g class="knee" data-rate="%s"><circle cx="%s" cy="%s" r="8" fill="none" stroke="%s" stroke-width="1.8"/>`, num(kr), num(x), num(y), capacityColors.knee)
	b.f(`<text x="%s" y="%s" font-size="11" font-weight="600" fill="%s">knee ≈ %s/s</text></g>`, num(x+11), num(y-10), capacityColors.knee, fmtCapRate(kr))
}

// drawRateAxis draws the throughput axis along the bottom of f.
func drawRateAxis(b *svgBuf, f frame, ticks []float64) {
	bottom := f.top + f.height
	b.f(`<g class="x-axis" font-size="11" fill="#555">`)
	for _, t := range ticks {
		x := f.px(t)
		b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#eee"/>`, num(x), num(f.top), num(x), num(bottom))
		b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#888"/>`, num(x), num(bottom), num(x), num(bottom+4))
		b.f(`<text x="%s" y="%s" text-anchor="middle">%s</text>`, num(x), num(bottom+16), fmtTick(t))
	}
	b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#888"/>`, num(f.left), num(bottom), num(f.left+f.width), num(bottom))
	b.f(`<text x="%s" y="%s" text-anchor="end" font-size="10">achieved throughput (actions/s)</text>`, num(f.left+f.width), num(bottom+28))
	b.f(`</g>`)
}

// measuredSteps are the steps with measurements, in order of target rate.
func measuredSteps(steps []result.CapacityStep) []result.CapacityStep {
	var out []result.CapacityStep
	for _, s := range steps {
		if s.Transactions > 0 && s.Verdict != result.StepInterrupted {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b result.CapacityStep) int { return cmp.Compare(a.TargetRate, b.TargetRate) })
	return out
}

// limitLine is one horizontal SLO line: every limit at that latency, labelled together.
type limitLine struct {
	ms    float64
	label string
}

// distinctLimits groups the limits by their latency, so limits that would draw the
// same line share one line and one label ("p99 before, p99 after ≤ 1 s").
func distinctLimits(ls []result.LatencyLimit) []limitLine {
	var out []limitLine
	names := map[float64][]string{}
	for _, l := range ls {
		if l.MaxMs <= 0 {
			continue
		}
		full := LimitLabel(l)
		name := full[:len(full)-len(" ≤ "+fmtMs(l.MaxMs))]
		if _, ok := names[l.MaxMs]; !ok {
			out = append(out, limitLine{ms: l.MaxMs})
		}
		if !slices.Contains(names[l.MaxMs], name) {
			names[l.MaxMs] = append(names[l.MaxMs], name)
		}
	}
	for i := range out {
		out[i].label = strings.Join(names[out[i].ms], ", ") + " ≤ " + fmtMs(out[i].ms)
	}
	return out
}
