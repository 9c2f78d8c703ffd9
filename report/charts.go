package report

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/rehearse-dev/rehearse/result"
)

// palette is Tableau 10: distinguishable, print-safe.
var palette = [...]string{"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"}

// errorColors fixes the colour of the known error classes across runs.
var errorColors = map[string]string{
	"connection_refused": "#e15759",
	"connection_reset":   "#f28e2b",
	"admin_shutdown":     "#b07aa1",
	"read_only":          "#4e79a7",
	"serialization":      "#76b7b2",
	"deadlock":           "#9c755f",
	"timeout":            "#edc948",
	"pool_exhausted":     "#ff9da7",
	"other":              "#7f7f7f",
}

// stepColors colours Gantt bars by step status.
var stepColors = map[string]string{
	"ok":          "#59a14f",
	"failed":      "#e15759",
	"skipped":     "#bab0ac",
	"planned":     "#4e79a7",
	"rolled_back": "#f28e2b",
}

// opNames lists the operations in result order, then any timeline-only names.
func opNames(res *result.Result) []string {
	seen := map[string]bool{}
	var names []string
	for _, o := range res.Operations {
		if !seen[o.Name] {
			seen[o.Name] = true
			names = append(names, o.Name)
		}
	}
	var extra []string
	for _, r := range res.Timeline {
		for k := range r.PerOp {
			if !seen[k] {
				seen[k] = true
				extra = append(extra, k)
			}
		}
	}
	sort.Strings(extra)
	return append(names, extra...)
}

// rowGap is the x gap that breaks a line: one and a half timeline intervals (the
// median spacing of the rows). Line points sit in the middle of their interval, at
// t_s + rowGap/3, so they line up with the cutover bands.
func rowGap(res *result.Result) float64 {
	if len(res.Timeline) < 2 {
		return 1.5
	}
	d := make([]float64, 0, len(res.Timeline)-1)
	for i := 1; i < len(res.Timeline); i++ {
		d = append(d, res.Timeline[i].TS-res.Timeline[i-1].TS)
	}
	slices.Sort(d)
	return d[len(d)/2] * 1.5
}

// throughputChart draws operations per second over time, one line per operation.
func throughputChart(res *result.Result) string {
	names := opNames(res)
	legend := make([]legendItem, len(names))
	for i, n := range names {
		legend[i] = legendItem{n, palette[i%len(palette)]}
	}
	c := newTimeChart(res, legend)
	series := make([][]point, len(names))
	top := 0.0
	mid := rowGap(res) / 3
	for _, r := range res.Timeline {
		for i, n := range names {
			v := float64(r.PerOp[n])
			series[i] = append(series[i], point{r.TS + mid, v})
			top = math.Max(top, v)
		}
	}
	ticks, ymax := niceTicks(top, 5)
	c.f.y1 = ymax
	var b svgBuf
	openChart(&b, "throughput", "Throughput per operation (operations per second)", c.height)
	drawBands(&b, c.f, c.bands, c.labelTop)
	drawValueAxis(&b, c.f, ticks, "ops/s")
	drawTimeAxis(&b, c.f)
	if len(res.Timeline) == 0 {
		noData(&b, c.f, "no timeline recorded")
	}
	gap := rowGap(res)
	for i, n := range names {
		drawPath(&b, c.f, downsample(segments(series[i], gap), maxSeriesPoints), "op-"+n, legend[i].color, 1.6, "")
	}
	drawLegend(&b, legend, c.legendY, "line")
	b.f(`</svg>`)
	return b.String()
}

// latencyChart draws p50, p99 and max latency over time on a log scale (a cutover's
// seconds-long stall and a healthy millisecond p50 must both be readable), with the
// cutover steps as labelled bands. Seconds without completed operations are gaps.
func latencyChart(res *result.Result) string {
	legend := []legendItem{{"p50", "#4e79a7"}, {"p99", "#f28e2b"}, {"max", "#e15759"}}
	c := newTimeChart(res, legend)
	var p50, p99, pmax []point
	lo, hi := math.Inf(1), 0.0
	mid := rowGap(res) / 3
	for _, r := range res.Timeline {
		for _, s := range []struct {
			v   float64
			dst *[]point
		}{{r.P50Ms, &p50}, {r.P99Ms, &p99}, {r.MaxMs, &pmax}} {
			if s.v > 0 {
				*s.dst = append(*s.dst, point{r.TS + mid, s.v})
				lo, hi = math.Min(lo, s.v), math.Max(hi, s.v)
			}
		}
	}
	if hi == 0 {
		lo, hi = 1, 10
	}
	c.f.logY = true
	c.f.y0 = math.Floor(math.Log10(lo))
	c.f.y1 = math.Ceil(math.Log10(hi))
	if c.f.y1 <= c.f.y0 {
		c.f.y1 = c.f.y0 + 1
	}
	var ticks []float64
	for e := c.f.y0; e <= c.f.y1; e++ {
		ticks = append(ticks, math.Pow(10, e))
		if c.f.y1-c.f.y0 <= 2 && e < c.f.y1 {
			ticks = append(ticks, 2*math.Pow(10, e), 5*math.Pow(10, e))
		}
	}
	var b svgBuf
	openChart(&b, "latency", "Latency over time (ms, log scale) with cutover steps", c.height)
	drawBands(&b, c.f, c.bands, c.labelTop)
	drawValueAxis(&b, c.f, ticks, "latency (ms, log)")
	drawTimeAxis(&b, c.f)
	if len(p50)+len(p99)+len(pmax) == 0 {
		noData(&b, c.f, "no latency recorded")
	}
	gap := rowGap(res)
	drawPath(&b, c.f, downsample(segments(pmax, gap), maxSeriesPoints), "max", legend[2].color, 1.1, "3 2")
	drawPath(&b, c.f, downsample(segments(p99, gap), maxSeriesPoints), "p99", legend[1].color, 1.8, "")
	drawPath(&b, c.f, downsample(segments(p50, gap), maxSeriesPoints), "p50", legend[0].color, 1.8, "")
	drawLegend(&b, legend, c.legendY, "line")
	b.f(`</svg>`)
	return b.String()
}

// errorClasses orders the error classes of res by total count, largest first.
func errorClasses(res *result.Result) []string {
	totals := map[string]int64{}
	for _, r := range res.Timeline {
		for k, v := range r.ErrorsByClass {
			totals[k] += v
		}
	}
	names := make([]string, 0, len(totals))
	for k := range totals {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := cmp.Compare(totals[b], totals[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return names
}

// errorsChart draws errors over time as bars stacked by class. Long runs are
// bucketed (at most maxErrorBuckets bars) and the axis says the bucket width.
func errorsChart(res *result.Result) string {
	classes := errorClasses(res)
	legend := make([]legendItem, len(classes))
	for i, k := range classes {
		col, ok := errorColors[k]
		if !ok {
			col = palette[i%len(palette)]
		}
		legend[i] = legendItem{k, col}
	}
	c := newTimeChart(res, legend)
	bw := math.Max(1, math.Ceil((c.f.x1-c.f.x0)/maxErrorBuckets))
	nb := int(math.Ceil((c.f.x1-c.f.x0)/bw)) + 1
	counts := make([][]int64, len(classes))
	for i := range counts {
		counts[i] = make([]int64, nb)
	}
	idx := make(map[string]int, len(classes))
	for i, k := range classes {
		idx[k] = i
	}
	for _, r := range res.Timeline {
		bi := int(math.Floor((r.TS - c.f.x0) / bw))
		if bi < 0 || bi >= nb {
			continue
		}
		for k, v := range r.ErrorsByClass {
			counts[idx[k]][bi] += v
		}
	}
	top := 0.0
	for bi := 0; bi < nb; bi++ {
		var sum int64
		for i := range classes {
			sum += counts[i][bi]
		}
		top = math.Max(top, float64(sum))
	}
	ticks, ymax := niceTicks(top, 4)
	c.f.y1 = ymax
	label := "errors/s"
	if bw > 1 {
		label = "errors per " + fmtSeconds(bw)
	}
	var b svgBuf
	openChart(&b, "errors", "Errors over time, stacked by class", c.height)
	drawBands(&b, c.f, c.bands, c.labelTop)
	drawValueAxis(&b, c.f, ticks, label)
	drawTimeAxis(&b, c.f)
	if len(classes) == 0 {
		noData(&b, c.f, "no errors")
	}
	barW := math.Max(1, c.f.px(c.f.x0+bw)-c.f.px(c.f.x0)-1)
	base := make([]int64, nb)
	for i, k := range classes {
		n := 0
		var rects strings.Builder
		for bi := 0; bi < nb; bi++ {
			v := counts[i][bi]
			if v == 0 {
				continue
			}
			x := c.f.px(c.f.x0 + float64(bi)*bw)
			y1 := c.f.py(float64(base[bi]))
			y2 := c.f.py(float64(base[bi] + v))
			fmt.Fprintf(&rects, `<rect x="%s" y="%s" width="%s" height="%s"><title>%s: %d at %s</title></rect>`,
				num(x), num(y2), num(barW), num(math.Max(y1-y2, 0.5)), esc(k), v, fmtSeconds(c.f.x0+float64(bi)*bw))
			base[bi] += v
			n++
		}
		b.f(`<g class="series class-%s" data-points="%d" fill="%s">%s</g>`, esc(k), n, legend[i].color, rects.String())
	}
	drawLegend(&b, legend, c.legendY, "box")
	b.f(`</svg>`)
	return b.String()
}

// ganttChart draws the cutover steps as bars on the run's time axis, coloured by
// status and labelled with their durations.
func ganttChart(res *result.Result) string {
	var steps []result.Step
	if res.Migration != nil {
		steps = res.Migration.Steps
	}
	const rowH = 24.0
	x0, x1 := timeDomain(res)
	f := frame{left: marginL, top: 10, width: chartW - marginL - marginR, height: math.Max(float64(len(steps)), 1) * rowH, x0: x0, x1: x1}
	statuses := []string{}
	seen := map[string]bool{}
	for _, s := range steps {
		if !seen[s.Status] {
			seen[s.Status] = true
			statuses = append(statuses, s.Status)
		}
	}
	legend := make([]legendItem, len(statuses))
	for i, s := range statuses {
		col, ok := stepColors[s]
		if !ok {
			col = "#7f7f7f"
		}
		legend[i] = legendItem{s, col}
	}
	legendY := f.top + f.height + axisH + 18
	height := legendY + legendHeight(legend) - 4
	var b svgBuf
	openChart(&b, "gantt", "Cutover steps (Gantt)", height)
	drawTimeAxis(&b, f)
	if len(steps) == 0 {
		noData(&b, f, "no cutover in this run")
	}
	n := 0
	b.f(`<g class="series steps" font-size="11">`)
	for i, s := range steps {
		y := f.top + float64(i)*rowH
		col, ok := stepColors[s.Status]
		if !ok {
			col = "#7f7f7f"
		}
		bx0, bx1 := f.px(s.StartS), f.px(s.EndS)
		w := math.Max(bx1-bx0, 2)
		b.f(`<text x="%s" y="%s" text-anchor="end" fill="#333">%s</text>`, num(f.left-8), num(y+rowH/2+4), esc(stepLabel(s)))
		b.f(`<rect class="step-bar" x="%s" y="%s" width="%s" height="%s" rx="2" fill="%s"><title>%s (%s): %s–%s s</title></rect>`,
			num(bx0), num(y+4), num(w), num(rowH-8), col, esc(stepLabel(s)), esc(s.Status), num(s.StartS), num(s.EndS))
		label := fmtDuration(s.EndS - s.StartS)
		lx, anchor := bx0+w+4, "start"
		if lx+float64(len(label))*6 > f.left+f.width {
			lx, anchor = bx0-4, "end"
		}
		b.f(`<text x="%s" y="%s" text-anchor="%s" fill="#444">%s</text>`, num(lx), num(y+rowH/2+4), anchor, esc(label))
		n++
	}
	b.f(`</g>`)
	if n > 0 {
		b.f(`<desc data-points="%d">%d steps</desc>`, n, n)
	}
	drawLegend(&b, legend, legendY, "box")
	b.f(`</svg>`)
	return b.String()
}
