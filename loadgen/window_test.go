package loadgen

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// The recorder answers "latency between t1 and t2" from the interval histograms it
// retained, exactly: over the whole run it equals the run's own summary.
func TestWindowLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var start time.Time
		slowAfter := 5 * time.Second
		op := func(ctx context.Context) error {
			d := time.Millisecond
			if time.Since(start) >= slowAfter {
				d = 50 * time.Millisecond
			}
			return sleepCtx(ctx, d)
		}
		wl := &fakeWorkload{read: op, write: op}
		rec := NewRecorder(wl.Ops(), nil, Retain(RetainAll))
		start = time.Now()
		st, err := Run(t.Context(), Config{
			Workload: wl, Writer: directPool{}, Reader: directPool{},
			Pacer:    NewConstant(NewProfile(100, nil, 10*time.Second)),
			Duration: 10 * time.Second, Sessions: 200, Workers: 16,
			Think:     Think{Dist: "exponential", Mean: time.Second},
			OpTimeout: 5 * time.Second, Grace: 2 * time.Second, Seed: 1, Recorder: rec,
		}, start)
		if err != nil {
			t.Fatal(err)
		}
		sum := rec.Summary(st.Elapsed)
		whole, err := rec.Window(0, RetainAll)
		if err != nil {
			t.Fatal(err)
		}
		if whole.Count != sum.Totals.Succeeded {
			t.Errorf("whole-run window holds %d operations, the run %d", whole.Count, sum.Totals.Succeeded)
		}
		for _, o := range sum.Operations {
			if got := whole.PerOp[o.Name]; got != o.LatencyMs {
				t.Errorf("%s: window %+v, run %+v", o.Name, got, o.LatencyMs)
			}
		}
		fast, err := rec.Window(0, slowAfter)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := rec.Window(slowAfter+time.Second, RetainAll)
		if err != nil {
			t.Fatal(err)
		}
		if fast.All.Max > 2 || slow.All.P50 < 50 || slow.All.P50 > 52 {
			t.Errorf("fast window %+v, slow window %+v: want ≈1 ms and ≈50 ms", fast.All, slow.All)
		}
		if fast.Count < 450 || fast.Count > 510 || slow.Count < 350 || slow.Count > 450 {
			t.Errorf("fast window %d operations, slow %d", fast.Count, slow.Count)
		}
	})
}

func TestWindowRetention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		op := func(ctx context.Context) error { return sleepCtx(ctx, time.Millisecond) }
		wl := &fakeWorkload{read: op, write: op}
		tests := []struct {
			name     string
			opts     []RecorderOption
			from     time.Duration
			wantErr  bool
			minCount int64
		}{
			{name: "nothing kept by default", from: 0, wantErr: true},
			{name: "a span older than the retention", opts: []RecorderOption{Retain(3 * time.Second)}, from: 2 * time.Second, wantErr: true},
			{name: "a span within the retention", opts: []RecorderOption{Retain(3 * time.Second)}, from: 7 * time.Second, minCount: 250},
		}
		for _, tt := range tests {
			rec := NewRecorder(wl.Ops(), nil, tt.opts...)
			_, err := Run(t.Context(), Config{
				Workload: wl, Writer: directPool{}, Reader: directPool{},
				Pacer:    NewConstant(NewProfile(100, nil, 10*time.Second)),
				Duration: 10 * time.Second, Sessions: 200, Workers: 8,
				Think:     Think{Dist: "exponential", Mean: time.Second},
				OpTimeout: 5 * time.Second, Grace: time.Second, Seed: 1, Recorder: rec,
			}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			w, err := rec.Window(tt.from, RetainAll)
			if tt.wantErr != (err != nil) || (err != nil && !errors.Is(err, ErrNotRetained)) {
				t.Errorf("%s: err = %v, want error %v", tt.name, err, tt.wantErr)
			}
			if w.Count < tt.minCount {
				t.Errorf("%s: %d operations, want ≥ %d", tt.name, w.Count, tt.minCount)
			}
		}
	})
}
