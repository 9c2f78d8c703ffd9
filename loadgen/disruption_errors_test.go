package loadgen

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/workload"
)

// A disruption window counts the operations intended within it that failed, by
// the class of their final error; a window without failures counts none.
func TestDisruptionErrors(t *testing.T) {
	r := NewRecorder([]workload.Op{{Name: "write", Kind: workload.Write}}, nil)
	h := r.NewHandle()
	s := time.Second
	hole := r.BeginDisruption("fault: blackhole writer for 2s", result.DisruptionFault, 0, 2*s)
	r.EndDisruption(hole, 4*s)
	calm := r.BeginDisruption("fault: latency writer +5ms for 1s", result.DisruptionFault, 0, 6*s)
	r.EndDisruption(calm, 7*s)
	classes := map[int]Class{20: Timeout, 25: Timeout, 30: ConnectionReset, 45: Timeout}
	for i := range 80 {
		at := int64(i) * int64(100*time.Millisecond)
		smp := sample{intended: at, start: at, sent: at, end: at + int64(time.Millisecond), tries: 1}
		var err error
		if c, ok := classes[i]; ok {
			smp.class, smp.failed = c, 1
			err = errors.New(c.String())
		}
		h.record(smp, err)
	}
	r.FlushFinal(8 * s)
	tests := []struct {
		d    Disruption
		want map[string]int64
	}{
		{hole, map[string]int64{"timeout": 2, "connection_reset": 1}},
		{calm, nil},
		{Disruption(99), nil},
	}
	for _, tt := range tests {
		if got := r.DisruptionErrors(tt.d); !maps.Equal(got, tt.want) {
			t.Errorf("DisruptionErrors(%d) = %v, want %v", tt.d, got, tt.want)
		}
	}
}
