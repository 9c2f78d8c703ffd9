package report

import (
	"cmp"
	"fmt"
	"html/template"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/rehearse-dev/rehearse/result"
)

// Chart geometry, in SVG user units. Every time chart shares the left and right
// margins so their time axes line up on the page.
const (
	chartW      = 960.0
	marginL     = 132.0
	marginR     = 24.0
	plotH       = 190.0
	axisH       = 30.0
	legendRowH  = 18.0
	labelRowH   = 13.0
	maxLabelRow = 10
	// maxSeriesPoints bounds each line series after LTTB downsampling.
	maxSeriesPoints = 480
	// maxErrorBuckets bounds the bars of the errors chart.
	maxErrorBuckets = 240
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

// frame maps data coordinates to SVG coordinates for one plot area.
type frame struct {
	left, top, width, height float64
	x0, x1, y0, y1           float64
	logY                     bool
}

func (f frame) px(x float64) float64 {
	if f.x1 == f.x0 {
		return f.left
	}
	return f.left + (x-f.x0)/(f.x1-f.x0)*f.width
}

func (f frame) py(y float64) float64 {
	if f.logY {
		y = math.Log10(math.Max(y, math.Pow(10, f.y0)))
	}
	if f.y1 == f.y0 {
		return f.top + f.height
	}
	v := f.top + f.height - (y-f.y0)/(f.y1-f.y0)*f.height
	return math.Max(f.top, math.Min(f.top+f.height, v))
}

// svgBuf accumulates one SVG document.
type svgBuf struct{ strings.Builder }

func (b *svgBuf) f(format string, args ...any) { fmt.Fprintf(&b.Builder, format, args...) }

// num formats a coordinate with one decimal, trimmed.
func num(v float64) string {
	s := strconv.FormatFloat(math.Round(v*10)/10, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0")
}

// esc escapes text for SVG inside HTML.
func esc(s string) string { return template.HTMLEscapeString(s) }

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

// bandLabel is a cutover step band and the row its label sits in.
type bandLabel struct {
	step result.Step
	row  int
}

// layoutBands assigns each step's label to the first row where it does not overlap
// an earlier label, so short adjacent steps stay readable. It returns the rows used.
func layoutBands(res *result.Result, f frame) ([]bandLabel, int) {
	if res.Migration == nil || len(res.Migration.Steps) == 0 {
		return nil, 0
	}
	ends := make([]float64, maxLabelRow)
	for i := range ends {
		ends[i] = -1
	}
	rows := 0
	out := make([]bandLabel, 0, len(res.Migration.Steps))
	for _, s := range res.Migration.Steps {
		x := f.px(s.StartS)
		w := float64(len(s.Name))*5.6 + 6
		row := maxLabelRow - 1
		for r := range ends {
			if ends[r] < x {
				row = r
				break
			}
		}
		ends[row] = x + w
		rows = max(rows, row+1)
		out = append(out, bandLabel{step: s, row: row})
	}
	return out, rows
}

// drawBands shades each cutover step over the plot and labels it above.
func drawBands(b *svgBuf, f frame, bands []bandLabel, labelTop float64) {
	if len(bands) == 0 {
		return
	}
	b.f(`<g class="bands">`)
	for i, bl := range bands {
		s := bl.step
		x0, x1 := f.px(s.StartS), f.px(s.EndS)
		w := math.Max(x1-x0, 1.5)
		fill := "#6f7fd8"
		op := "0.10"
		if i%2 == 1 {
			op = "0.18"
		}
		if s.Status == "failed" {
			fill, op = "#e15759", "0.22"
		}
		b.f(`<rect class="band" x="%s" y="%s" width="%s" height="%s" fill="%s" fill-opacity="%s"><title>%s %s–%s s (%s)</title></rect>`,
			num(x0), num(f.top), num(w), num(f.height), fill, op, esc(s.Name), num(s.StartS), num(s.EndS), esc(fmtDuration(s.EndS-s.StartS)))
		ly := labelTop + float64(bl.row+1)*labelRowH - 3
		b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#6f7fd8" stroke-width="0.8" stroke-dasharray="2 2"/>`, num(x0), num(ly+2), num(x0), num(f.top))
		b.f(`<text class="band-label" x="%s" y="%s" font-size="10" fill="#3b4a9a">%s</text>`, num(x0+2), num(ly), esc(s.Name))
	}
	b.f(`</g>`)
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

// openChart starts an SVG document with its title and returns the plot frame.
func openChart(b *svgBuf, id, title string, height float64) {
	b.f(`<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="chart-%s" viewBox="0 0 %s %s" role="img" aria-label="%s" font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif">`,
		id, num(chartW), num(height), esc(title))
	b.f(`<title>%s</title>`, esc(title))
}

// drawTimeAxis draws the x axis, its grid lines and the axis label.
func drawTimeAxis(b *svgBuf, f frame) {
	bottom := f.top + f.height
	b.f(`<g class="x-axis" font-size="11" fill="#555">`)
	for _, t := range timeTicks(f.x0, f.x1) {
		x := f.px(t)
		b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e6e6e6"/>`, num(x), num(f.top), num(x), num(bottom))
		b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#888"/>`, num(x), num(bottom), num(x), num(bottom+4))
		b.f(`<text x="%s" y="%s" text-anchor="middle">%s</text>`, num(x), num(bottom+16), fmtSeconds(t))
	}
	b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#888"/>`, num(f.left), num(bottom), num(f.left+f.width), num(bottom))
	b.f(`<text x="%s" y="%s" text-anchor="end" font-size="10">time since start</text>`, num(f.left+f.width), num(bottom+28))
	b.f(`</g>`)
}

// drawValueAxis draws horizontal grid lines with labels and the axis title.
func drawValueAxis(b *svgBuf, f frame, ticks []float64, label string) {
	b.f(`<g class="y-axis" font-size="11" fill="#555">`)
	for _, v := range ticks {
		y := f.py(v)
		b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#eee"/>`, num(f.left), num(y), num(f.left+f.width), num(y))
		b.f(`<text x="%s" y="%s" text-anchor="end">%s</text>`, num(f.left-6), num(y+4), fmtTick(v))
	}
	b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#888"/>`, num(f.left), num(f.top), num(f.left), num(f.top+f.height))
	b.f(`<text transform="translate(%s %s) rotate(-90)" text-anchor="middle" font-size="11">%s</text>`, num(f.left-48), num(f.top+f.height/2), esc(label))
	b.f(`</g>`)
}

// legendItem is one entry of a chart legend.
type legendItem struct{ name, color string }

// drawLegend lays items out left to right, wrapping, starting at y; it returns the
// height used.
func drawLegend(b *svgBuf, items []legendItem, y float64, swatch string) float64 {
	if len(items) == 0 {
		return 0
	}
	x, rows := marginL, 1
	b.f(`<g class="legend" font-size="11" fill="#333">`)
	for _, it := range items {
		w := float64(len(it.name))*6.4 + 30
		if x+w > chartW-marginR && x > marginL {
			x = marginL
			rows++
			y += legendRowH
		}
		if swatch == "line" {
			b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2.5"/>`, num(x), num(y-4), num(x+16), num(y-4), it.color)
		} else {
			b.f(`<rect x="%s" y="%s" width="12" height="10" fill="%s"/>`, num(x+2), num(y-9), it.color)
		}
		b.f(`<text x="%s" y="%s">%s</text>`, num(x+20), num(y), esc(it.name))
		x += w
	}
	b.f(`</g>`)
	return float64(rows) * legendRowH
}

// legendHeight predicts drawLegend's height so the SVG can be sized first.
func legendHeight(items []legendItem) float64 {
	if len(items) == 0 {
		return 0
	}
	x, rows := marginL, 1
	for _, it := range items {
		w := float64(len(it.name))*6.4 + 30
		if x+w > chartW-marginR && x > marginL {
			x = marginL
			rows++
		}
		x += w
	}
	return float64(rows) * legendRowH
}

// drawPath draws one downsampled series as a path; data-points carries the number
// of points drawn so tests (and people) can see a series is not empty.
func drawPath(b *svgBuf, f frame, segs [][]point, class, color string, width float64, dash string) {
	n := 0
	var d strings.Builder
	for _, s := range segs {
		for i, p := range s {
			if i == 0 {
				d.WriteByte('M')
			} else {
				d.WriteByte('L')
			}
			d.WriteString(num(f.px(p.x)))
			d.WriteByte(' ')
			d.WriteString(num(f.py(p.y)))
			n++
		}
	}
	if n == 0 {
		return
	}
	extra := ""
	if dash != "" {
		extra = ` stroke-dasharray="` + dash + `"`
	}
	b.f(`<path class="series %s" data-points="%d" d="%s" fill="none" stroke="%s" stroke-width="%s" stroke-linejoin="round"%s/>`, esc(class), n, d.String(), color, num(width), extra)
}

// noData writes the placeholder for an empty chart.
func noData(b *svgBuf, f frame, msg string) {
	b.f(`<text class="no-data" x="%s" y="%s" text-anchor="middle" font-size="13" fill="#888">%s</text>`, num(f.left+f.width/2), num(f.top+f.height/2), esc(msg))
}

// timeChart is the shared layout of the charts over time: band labels, plot, axis
// and legend.
type timeChart struct {
	f        frame
	bands    []bandLabel
	labelTop float64
	height   float64
	legendY  float64
}

func newTimeChart(res *result.Result, legend []legendItem) timeChart {
	x0, x1 := timeDomain(res)
	f := frame{left: marginL, width: chartW - marginL - marginR, height: plotH, x0: x0, x1: x1}
	bands, rows := layoutBands(res, f)
	f.top = 10 + float64(rows)*labelRowH
	if rows > 0 {
		f.top += 4
	}
	legendY := f.top + plotH + axisH + 18
	return timeChart{f: f, bands: bands, labelTop: 8, legendY: legendY, height: legendY + legendHeight(legend) - 4}
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
		b.f(`<text x="%s" y="%s" text-anchor="end" fill="#333">%s</text>`, num(f.left-8), num(y+rowH/2+4), esc(s.Name))
		b.f(`<rect class="step-bar" x="%s" y="%s" width="%s" height="%s" rx="2" fill="%s"><title>%s (%s): %s–%s s</title></rect>`,
			num(bx0), num(y+4), num(w), num(rowH-8), col, esc(s.Name), esc(s.Status), num(s.StartS), num(s.EndS))
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
