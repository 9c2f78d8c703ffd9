package engine

import (
	"testing"

	"github.com/rehearse-dev/rehearse/result"
)

func TestRecoveryTime(t *testing.T) {
	// rows builds a timeline from per-second (p99, lag) pairs.
	rows := func(v ...[2]float64) []result.TimelineRow {
		out := make([]result.TimelineRow, len(v))
		for i, x := range v {
			out[i] = result.TimelineRow{TS: float64(i), Ops: 100, P99Ms: x[0], LagP99Ms: x[1]}
		}
		return out
	}
	calm := [2]float64{4, 1}
	hot := [2]float64{900, 600}
	tests := []struct {
		name string
		tl   []result.TimelineRow
		end  float64
		want float64
		ok   bool
	}{
		{"back at once", rows(calm, calm, calm, calm, calm, calm, calm, calm), 4, 0, true},
		{"a backlog drains for 3 s", rows(calm, calm, calm, calm, hot, hot, hot, calm, calm, calm, calm), 4, 3, true},
		{"a relapse restarts the count", rows(calm, calm, calm, calm, hot, calm, hot, calm, calm, calm, calm), 4, 3, true},
		{"lag alone keeps it from recovering", rows(calm, calm, calm, calm, [2]float64{5, 500}, [2]float64{5, 300}, calm, calm, calm), 4, 2, true},
		{"a fractional end", rows(calm, calm, calm, calm, hot, calm, calm, calm, calm), 3.4, 1.6, true},
		{"never back within the run", rows(calm, calm, calm, calm, hot, hot, hot), 4, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := recoveryTime(tt.tl, 4, 1, tt.end)
			if got != tt.want || ok != tt.ok {
				t.Errorf("recovery %v (ok %v), want %v (ok %v)", got, ok, tt.want, tt.ok)
			}
		})
	}
	if _, ok := recoveryTime(rows(hot, hot), 0, 0, 1); ok {
		t.Error("a recovery without a baseline")
	}
}
