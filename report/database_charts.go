package report

import (
	"math"
	"slices"

	"github.com/rehearse-dev/rehearse/result"
)

// drawEventMarks marks each event with a dotted line and its number (its row in
// the events table).
func drawEventMarks(b *svgBuf, f frame, events []result.DBEvent) {
	if len(events) == 0 {
		return
	}
	b.f(`<g class="events" font-size="9" fill="#444">`)
	for i, e := range events {
		x := f.px(e.TS)
		b.f(`<line class="event" x1="%s" y1="%s" x2="%s" y2="%s" stroke="#555" stroke-width="0.8" stroke-dasharray="1 2"><title>%s: %s at %s s</title></line>`,
			num(x), num(f.top), num(x), num(f.top+f.height), esc(e.Node), esc(e.Event), num(e.TS))
		b.f(`<text x="%s" y="%s" text-anchor="middle">%d</text>`, num(x), num(f.top+f.height-3-float64(i%3)*9), i+1)
	}
	b.f(`</g>`)
}

// dbChart draws one family: a line per node and metric, with the cutover's bands
// and the database events.
func dbChart(res *result.Result, fam dbFamily) string {
	colors := dbColors(res)
	type line struct {
		s     result.Series
		color string
		dash  string
	}
	var lines []line
	var legend []legendItem
	emulated := false
	for mi, metric := range fam.metrics {
		dash := ""
		if mi > 0 {
			dash = "5 3"
		}
		for _, s := range dbSeries(res, metric) {
			lines = append(lines, line{s, colors[s.Node], dash})
			name := nodeLabel(res, s.Node)
			if len(fam.metrics) > 1 {
				name += " " + dbMetricNames[metric]
			}
			if s.Emulated {
				name += " (emulated)"
				emulated = true
			}
			legend = append(legend, legendItem{name, colors[s.Node]})
		}
	}
	c := newTimeChart(res, legend)
	top := 0.0
	for _, l := range lines {
		for _, p := range l.s.Points {
			top = math.Max(top, p[1])
		}
	}
	ticks, ymax := niceTicks(top, 4)
	c.f.y1 = ymax
	title := familyTitle(res, fam)
	if emulated {
		title += " (emulated)"
	}
	var b svgBuf
	openChart(&b, "db-"+fam.id, title, c.height)
	drawBands(&b, c.f, c.bands, c.labelTop)
	drawValueAxis(&b, c.f, ticks, fam.axis)
	drawTimeAxis(&b, c.f)
	drawEventMarks(&b, c.f, dbEvents(res))
	for _, l := range lines {
		pts := make([]point, len(l.s.Points))
		for i, p := range l.s.Points {
			pts[i] = point{p[0], p[1]}
		}
		segs := segments(pts, seriesGap(l.s))
		drawPath(&b, c.f, downsample(segs, maxSeriesPoints), "node-"+l.s.Node+" metric-"+l.s.Metric, l.color, 1.6, l.dash)
		drawLonePoints(&b, c.f, segs, l.color)
	}
	drawLegend(&b, legend, c.legendY, "line")
	b.f(`</svg>`)
	return b.String()
}

// drawLonePoints marks the samples a line cannot show: those with no neighbour
// within the gap (a replica sampled once before it was promoted).
func drawLonePoints(b *svgBuf, f frame, segs [][]point, color string) {
	for _, s := range segs {
		if len(s) == 1 {
			b.f(`<circle class="lone" cx="%s" cy="%s" r="2.5" fill="%s"/>`, num(f.px(s[0].x)), num(f.py(s[0].y)), color)
		}
	}
}

// familyTitle is a family's title for the series res has: the shorter one when
// only its first metric has any.
func familyTitle(res *result.Result, fam dbFamily) string {
	if fam.single == "" {
		return fam.title
	}
	for _, m := range fam.metrics[1:] {
		if len(dbSeries(res, m)) > 0 {
			return fam.title
		}
	}
	if len(dbSeries(res, fam.metrics[0])) == 0 {
		return fam.title
	}
	return fam.single
}

// seriesGap is the gap that breaks a series' line: two and a half sampling
// intervals (the median spacing of its points), so a node that did not answer for
// a while shows as a gap.
func seriesGap(s result.Series) float64 {
	if len(s.Points) < 2 {
		return 2.5
	}
	d := make([]float64, 0, len(s.Points)-1)
	for i := 1; i < len(s.Points); i++ {
		d = append(d, s.Points[i][0]-s.Points[i-1][0])
	}
	slices.Sort(d)
	return d[len(d)/2] * 2.5
}

// serverlessChart draws each node's ACU against the load (operations per second,
// scaled to the plot, its peak labelled on the right).
func serverlessChart(res *result.Result) string {
	colors := dbColors(res)
	acu := dbSeries(res, "acu")
	var legend []legendItem
	emulated := false
	for _, s := range acu {
		name := nodeLabel(res, s.Node) + " ACU"
		if s.Emulated {
			name += " (emulated)"
			emulated = true
		}
		legend = append(legend, legendItem{name, colors[s.Node]})
	}
	legend = append(legend, legendItem{"load (operations/s, right scale)", "#bab0ac"})
	c := newTimeChart(res, legend)
	top, load := 0.0, 0.0
	for _, s := range acu {
		for _, p := range s.Points {
			top = math.Max(top, p[1])
		}
	}
	for _, r := range res.Timeline {
		load = math.Max(load, float64(r.Ops))
	}
	ticks, ymax := niceTicks(top, 4)
	c.f.y1 = ymax
	title := "Serverless v2 capacity (ACU) against the load"
	if emulated {
		title += " (emulated)"
	}
	var b svgBuf
	openChart(&b, "db-serverless", title, c.height)
	drawBands(&b, c.f, c.bands, c.labelTop)
	drawValueAxis(&b, c.f, ticks, "ACU")
	drawTimeAxis(&b, c.f)
	if load > 0 {
		// The load shares the plot, scaled so its peak meets the top.
		lticks, lmax := niceTicks(load, 4)
		lf := c.f
		lf.y0, lf.y1 = 0, lmax
		var pts []point
		mid := rowGap(res) / 3
		for _, r := range res.Timeline {
			pts = append(pts, point{r.TS + mid, float64(r.Ops)})
		}
		drawPath(&b, lf, downsample(segments(pts, rowGap(res)), maxSeriesPoints), "load", "#bab0ac", 1.2, "")
		b.f(`<g class="y2-axis" font-size="10" fill="#8a8580">`)
		for _, v := range lticks[1:] {
			b.f(`<text x="%s" y="%s" text-anchor="end">%s/s</text>`, num(lf.left+lf.width-2), num(lf.py(v)-2), fmtTick(v))
		}
		b.f(`</g>`)
	}
	drawEventMarks(&b, c.f, dbEvents(res))
	for _, s := range acu {
		pts := make([]point, len(s.Points))
		for i, p := range s.Points {
			pts[i] = point{p[0], p[1]}
		}
		segs := segments(pts, seriesGap(s))
		drawPath(&b, c.f, downsample(segs, maxSeriesPoints), "node-"+s.Node+" metric-acu", colors[s.Node], 1.8, "")
		drawLonePoints(&b, c.f, segs, colors[s.Node])
	}
	drawLegend(&b, legend, c.legendY, "line")
	b.f(`</svg>`)
	return b.String()
}
