package report

import (
	"cmp"
	"math"
	"slices"
	"strconv"

	"github.com/rehearse-dev/rehearse/result"
)

// bandLabel is a cutover step band and the row its label sits in.
type bandLabel struct {
	step result.Step
	row  int
}

// bandSteps are the spans the time charts shade: the cutover's steps and the
// injected faults (as steps of status "fault").
func bandSteps(res *result.Result) []result.Step {
	var out []result.Step
	if m := res.Migration; m != nil && len(m.Cycles) > 0 {
		// A cutover of several cycles shades each cycle as one band, and the steps
		// outside the cycles on their own: every step of every cycle is too many.
		for _, st := range m.Steps {
			if st.Cycle == 0 {
				out = append(out, st)
			}
		}
		for _, c := range m.Cycles {
			if len(c.Steps) == 0 {
				continue
			}
			status := "ok"
			if c.Outcome == "failed" || c.Outcome == "aborted" {
				status = "failed"
			}
			out = append(out, result.Step{Name: "cycle " + strconv.Itoa(c.Cycle) + " " + c.Direction, Status: status, StartS: c.StartS, EndS: c.EndS})
		}
		slices.SortStableFunc(out, func(a, b result.Step) int { return cmp.Compare(a.StartS, b.StartS) })
	} else if m != nil {
		out = append(out, m.Steps...)
	}
	for _, f := range res.Faults {
		if f.Status == "skipped" {
			continue
		}
		out = append(out, result.Step{Name: "fault: " + f.Kind + " " + f.Node, Status: "fault", StartS: f.StartS, EndS: f.EndS})
	}
	return out
}

// layoutBands assigns each step's label to the first row where it does not overlap
// an earlier label, so short adjacent steps stay readable. It returns the rows used.
func layoutBands(res *result.Result, f frame) ([]bandLabel, int) {
	steps := bandSteps(res)
	if len(steps) == 0 {
		return nil, 0
	}
	ends := make([]float64, maxLabelRow)
	for i := range ends {
		ends[i] = -1
	}
	rows := 0
	out := make([]bandLabel, 0, len(steps))
	for _, s := range steps {
		x := f.px(s.StartS)
		w := float64(len(stepLabel(s)))*5.6 + 6
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
		switch s.Status {
		case "failed":
			fill, op = "#e15759", "0.22"
		case "fault":
			fill, op = "#f28e2b", "0.22"
		}
		b.f(`<rect class="band" x="%s" y="%s" width="%s" height="%s" fill="%s" fill-opacity="%s"><title>%s %s–%s s (%s)</title></rect>`,
			num(x0), num(f.top), num(w), num(f.height), fill, op, esc(stepLabel(s)), num(s.StartS), num(s.EndS), esc(fmtDuration(s.EndS-s.StartS)))
		ly := labelTop + float64(bl.row+1)*labelRowH - 3
		b.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#6f7fd8" stroke-width="0.8" stroke-dasharray="2 2"/>`, num(x0), num(ly+2), num(x0), num(f.top))
		b.f(`<text class="band-label" x="%s" y="%s" font-size="10" fill="#3b4a9a">%s</text>`, num(x0+2), num(ly), esc(stepLabel(s)))
	}
	b.f(`</g>`)
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
