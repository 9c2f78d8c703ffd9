package report

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
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
