package loadgen

import (
	"errors"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/workload"
)

// TestPhaseWindows feeds a recorder one operation every 100 ms for 20 s through
// two overlapping disruptions and two cycles, and checks how the windows, phases
// and cycles counted them.
func TestPhaseWindows(t *testing.T) {
	ops := []workload.Op{{Name: "read", Kind: workload.Read}, {Name: "write", Kind: workload.Write}}
	r := NewRecorder(ops, nil)
	h := r.NewHandle()
	s := time.Second
	r.BeginCycle(1, 5*s)
	sw := r.BeginDisruption("switchover (cycle 1)", result.DisruptionSwitchover, 1, 10*s)
	fault := r.BeginDisruption("fault: freeze writer", result.DisruptionFault, 0, 11*s)
	r.EndDisruption(sw, 12*s)
	r.BeginCycle(2, 13*s)
	r.EndDisruption(fault, 15*s)
	r.EndDisruption(fault, 16*s) // closing twice changes nothing
	for i := range 200 {
		at := int64(i) * int64(100*time.Millisecond)
		smp := sample{intended: at, start: at, sent: at, end: at + int64(time.Millisecond), op: uint16(i % 2), tries: 1}
		var err error
		if at >= int64(11*s) && at < int64(12*s) {
			smp.class, smp.failed, smp.tries = Timeout, 2, 2
			err = errors.New("timeout")
		}
		h.record(smp, err)
	}
	r.FlushFinal(20 * s)
	sum := r.Summary(20 * s)
	type want struct {
		phase, label string
		start, end   float64
		count, errs  int64
	}
	wants := []want{
		{"before", "before", 0, 10, 100, 0},
		{"during", "switchover (cycle 1)", 10, 12, 20, 10},
		{"during", "fault: freeze writer", 11, 15, 40, 10},
		{"after", "after fault: freeze writer", 15, 20, 50, 0},
	}
	if len(sum.PhaseWindows) != len(wants) {
		t.Fatalf("got %d windows, want %d: %+v", len(sum.PhaseWindows), len(wants), sum.PhaseWindows)
	}
	for i, w := range wants {
		g := sum.PhaseWindows[i]
		if g.Phase != w.phase || g.Label != w.label || g.StartS != w.start || g.EndS != w.end || g.Count != w.count || g.Errors != w.errs {
			t.Errorf("window %d = %s %q [%v, %v) count %d errors %d; want %+v", i, g.Phase, g.Label, g.StartS, g.EndS, g.Count, g.Errors, w)
		}
	}
	if got := sum.PhaseWindows[1].FailedAttempts; got != 20 {
		t.Errorf("failed attempts in the switchover window = %d, want 20", got)
	}
	if got := sum.PhaseWindows[1].Operations["write"].Count; got != 10 {
		t.Errorf("writes in the switchover window = %d, want 10", got)
	}
	// The phases follow the union of the disruptions.
	var during int64
	for _, op := range sum.Operations {
		during += op.Phases[result.PhaseDuring].Count
	}
	if during != 50 {
		t.Errorf("operations in phase during = %d, want 50 (10 s to 15 s)", during)
	}
	cyc := r.Cycles(20 * s)
	if len(cyc) != 2 || cyc[0].Start != 0 || cyc[0].End != 13*s || cyc[1].Start != 13*s || cyc[1].End != 20*s {
		t.Fatalf("cycles = %+v", cyc)
	}
	if cyc[0].Transactions+cyc[1].Transactions != sum.Totals.Transactions ||
		cyc[0].Failed+cyc[1].Failed != sum.Totals.Failed ||
		cyc[0].Attempts+cyc[1].Attempts != sum.Totals.Attempts ||
		cyc[0].FailedAttempts+cyc[1].FailedAttempts != sum.Totals.FailedAttempts {
		t.Errorf("cycles %+v do not add up to the totals %+v", cyc, sum.Totals)
	}
	if cyc[0].Failed != 10 || cyc[1].Failed != 0 {
		t.Errorf("failed per cycle = %d, %d; want 10, 0", cyc[0].Failed, cyc[1].Failed)
	}
	if d, ok := r.PhaseStart(result.PhaseAfter); !ok || d != 15*s {
		t.Errorf("PhaseStart(after) = %v, %v; want 15s", d, ok)
	}
}

func TestNoDisruptionNoWindows(t *testing.T) {
	r := NewRecorder([]workload.Op{{Name: "read", Kind: workload.Read}}, nil)
	r.NewHandle().record(sample{intended: 1, end: 2, tries: 1}, nil)
	r.FlushFinal(time.Second)
	if w := r.Summary(time.Second).PhaseWindows; w != nil {
		t.Errorf("windows without a disruption: %+v", w)
	}
}

func TestStalledFor(t *testing.T) {
	r := NewRecorder([]workload.Op{{Name: "write", Kind: workload.Write}}, nil)
	s := time.Second
	if got := r.StalledFor(true, 0, 5*s); got != 0 {
		t.Errorf("before any write: %v, want 0", got)
	}
	h := r.NewHandle()
	for _, at := range []time.Duration{1 * s, 2 * s, 3 * s} {
		h.record(sample{intended: int64(at), end: int64(at), tries: 1}, nil)
	}
	r.Flush(4 * s)
	for _, tc := range []struct{ from, now, want time.Duration }{
		{0, 3 * s, 0},
		{0, 8 * s, 5*s - time.Millisecond},
		{6 * s, 8 * s, 2 * s},
		{9 * s, 8 * s, 0},
	} {
		if got := r.StalledFor(true, tc.from, tc.now); got != tc.want {
			t.Errorf("StalledFor(%v, %v) = %v, want %v", tc.from, tc.now, got, tc.want)
		}
	}
}

func TestRecent(t *testing.T) {
	r := NewRecorder([]workload.Op{{Name: "write", Kind: workload.Write}}, nil)
	h := r.NewHandle()
	s := time.Second
	for sec := range 5 {
		for i := range 10 {
			at := int64(sec)*int64(s) + int64(i)*int64(50*time.Millisecond)
			smp := sample{intended: at, end: at + 1000, tries: 1}
			var err error
			if sec == 3 && i < 4 {
				smp.class, smp.tries, smp.failed = Timeout, 3, 3
				err = errors.New("timeout")
				h.failed(at, 0, Timeout, err) // two retried attempts, then the final one
				h.failed(at, 0, Timeout, err)
			}
			h.record(smp, err)
		}
		r.Flush(time.Duration(sec+1) * s)
	}
	got := r.Recent(2*s, 4*s)
	want := Counts{Ops: 20, Failed: 4, FailedAttempts: 12, Attempts: 28}
	if got != want {
		t.Errorf("Recent(2s, 4s) = %+v, want %+v", got, want)
	}
}

// A stall that opened a moment before a fault struck belongs to the fault's window.
func TestUnavailabilityFollowsOverlap(t *testing.T) {
	r := NewRecorder([]workload.Op{{Name: "write", Kind: workload.Write}}, nil)
	h := r.NewHandle()
	ms := int64(time.Millisecond)
	d := r.BeginDisruption("fault: blackhole writer", result.DisruptionFault, 0, 10*time.Second)
	r.EndDisruption(d, 15*time.Second)
	for at := int64(0); at < 9995*ms; at += 10 * ms {
		h.record(sample{intended: at, end: at + ms, tries: 1}, nil)
	}
	// Sent 5 ms before the blackhole, answered when it lifts.
	h.record(sample{intended: 9995 * ms, end: 15000 * ms, tries: 1}, nil)
	for at := int64(15000) * ms; at < 20000*ms; at += 10 * ms {
		h.record(sample{intended: at, end: at + ms, tries: 1}, nil)
	}
	r.FlushFinal(20 * time.Second)
	ws := r.Summary(20 * time.Second).PhaseWindows
	if len(ws) != 3 {
		t.Fatalf("windows %+v", ws)
	}
	if ws[0].WriteUnavailableMs > 10 || ws[1].WriteUnavailableMs < 4990 {
		t.Errorf("write unavailability before %v ms, during the fault %v ms; want a few ms and about 5000", ws[0].WriteUnavailableMs, ws[1].WriteUnavailableMs)
	}
}
