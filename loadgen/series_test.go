package loadgen

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/workload"
)

// marked tells r of two overlapping disruptions and two cycles, as a cutover with
// a fault would.
func marked(r *Recorder) {
	s := time.Second
	r.BeginCycle(1, 5*s)
	sw := r.BeginDisruption("switchover (cycle 1)", result.DisruptionSwitchover, 1, 10*s)
	fault := r.BeginDisruption("fault: freeze writer", result.DisruptionFault, 0, 11*s)
	r.EndDisruption(sw, 12*s)
	r.BeginCycle(2, 13*s)
	r.EndDisruption(fault, 15*s)
}

// feed records the same operations into every recorder given: one every 10 ms
// for 20 s, writes failing from 11 s to 12.5 s.
func feed(rs ...*Recorder) {
	rnd := rand.New(rand.NewPCG(1, 2))
	hs := make([]*Handle, len(rs))
	for i, r := range rs {
		hs[i] = r.NewHandle()
	}
	for i := range 2000 {
		at := int64(i) * int64(10*time.Millisecond)
		lat := int64(rnd.ExpFloat64() * float64(3*time.Millisecond))
		smp := sample{intended: at, start: at + lat/10, sent: at + lat/5, end: at + lat + int64(time.Microsecond), op: uint16(i % 2), tries: 1}
		var err error
		if smp.op == 1 && at >= int64(11*time.Second) && at < int64(12500*time.Millisecond) {
			smp.class, smp.failed = Timeout, 1
			err = errors.New("timeout")
		}
		for _, h := range hs {
			h.record(smp, err)
		}
	}
	for _, r := range rs {
		r.FlushFinal(20 * time.Second)
	}
}

var seriesOps = []workload.Op{{Name: "read", Kind: workload.Read}, {Name: "write", Kind: workload.Write}}

// A shard's recorder that applies the coordinator's marks counts the same
// operations in the same phases and windows as the coordinator's.
func TestMarkFollowerLabelsAlike(t *testing.T) {
	coord, follower := NewRecorder(seriesOps, nil), NewRecorder(seriesOps, nil)
	marked(coord)
	mf := NewMarkFollower(follower)
	// The marks arrive in two looks, the second repeating the first.
	m := coord.Marks()
	first := Marks{Disruptions: []DisruptionMark{m.Disruptions[0]}, Cycles: m.Cycles[:1]}
	first.Disruptions[0].Ended = false
	mf.Apply(first)
	mf.Apply(m)
	if got := follower.Marks(); !reflect.DeepEqual(got, m) {
		t.Fatalf("follower's marks\n%+v\nwant\n%+v", got, m)
	}
	feed(coord, follower)
	a, b := coord.Summary(20*time.Second), follower.Summary(20*time.Second)
	if !reflect.DeepEqual(a.PhaseWindows, b.PhaseWindows) || !reflect.DeepEqual(a.Operations, b.Operations) {
		t.Errorf("the follower counted otherwise:\n%+v\n%+v", a.PhaseWindows, b.PhaseWindows)
	}
	if !reflect.DeepEqual(coord.Cycles(20*time.Second), follower.Cycles(20*time.Second)) {
		t.Errorf("cycles differ: %+v vs %+v", coord.Cycles(20*time.Second), follower.Cycles(20*time.Second))
	}
}

// The windows computed from a recorder's series and marks are the recorder's own.
func TestAvailabilityOfSeries(t *testing.T) {
	r := NewRecorder(seriesOps, nil)
	marked(r)
	feed(r)
	end := 20 * time.Second
	sum := r.Summary(end)
	got, perWindow := AvailabilityOf(r.Series(), end, r.Marks())
	if !reflect.DeepEqual(got, sum.Availability) {
		t.Errorf("AvailabilityOf =\n%+v\nwant\n%+v", got, sum.Availability)
	}
	if sum.Availability.WriteUnavailableMaxMs < 1000 {
		t.Fatalf("the test's outage is missing: %+v", sum.Availability)
	}
	if len(perWindow) != len(sum.PhaseWindows) {
		t.Fatalf("%d windows, want %d", len(perWindow), len(sum.PhaseWindows))
	}
	for i, w := range sum.PhaseWindows {
		if perWindow[i] != [2]float64{w.WriteUnavailableMs, w.ReadUnavailableMs} {
			t.Errorf("window %d: %v, want %v/%v", i, perWindow[i], w.WriteUnavailableMs, w.ReadUnavailableMs)
		}
	}
}

// The whole-run histograms are the ones the summary's percentiles come from.
func TestHistogramsMatchTheSummary(t *testing.T) {
	r := NewRecorder(seriesOps, nil)
	marked(r)
	feed(r)
	sum := r.Summary(20 * time.Second)
	hs := r.Histograms()
	for i, o := range hs.Ops {
		want := sum.Operations[i]
		if got := LatencyOf(o.Latency); got != want.LatencyMs {
			t.Errorf("%s latency %+v, want %+v", o.Name, got, want.LatencyMs)
		}
		if got := ServiceOf(o.Service); got != want.ServiceMs {
			t.Errorf("%s service %+v, want %+v", o.Name, got, want.ServiceMs)
		}
		for p, h := range o.Phases {
			if got := LatencyOf(h); got != want.Phases[p].LatencyMs {
				t.Errorf("%s %s latency %+v, want %+v", o.Name, p, got, want.Phases[p].LatencyMs)
			}
		}
	}
	if Ms(hs.Lag.ValueAtQuantile(99)) != sum.LagP99Ms {
		t.Errorf("lag p99 %v, want %v", Ms(hs.Lag.ValueAtQuantile(99)), sum.LagP99Ms)
	}
	if len(hs.Windows) != len(sum.PhaseWindows) {
		t.Fatalf("%d window histograms, want %d", len(hs.Windows), len(sum.PhaseWindows))
	}
	for i, w := range sum.PhaseWindows {
		for j, h := range hs.Windows[i] {
			if h == nil {
				continue
			}
			if got, want := LatencyOf(h), w.Operations[seriesOps[j].Name].LatencyMs; got != want {
				t.Errorf("window %d %s: %+v, want %+v", i, seriesOps[j].Name, got, want)
			}
		}
	}
}

// A shard's sessions are the run's from its offset on.
func TestSessionOffset(t *testing.T) {
	wl := &fakeWorkload{}
	r := &runner{cfg: Config{Workload: wl, Sessions: 3, SessionOffset: 40, Seed: 1}}
	r.buildSessions()
	for i, s := range r.sessions {
		if s.Customer != int64(40+i) {
			t.Errorf("session %d plays customer %d, want %d", i, s.Customer, 40+i)
		}
	}
}
