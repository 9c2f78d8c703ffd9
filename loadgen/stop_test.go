package loadgen

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// A run without a duration goes on until it is stopped; a stop is the end of the run,
// not an interruption, and the recorder holds everything that finished.
func TestStopEndsTheRun(t *testing.T) {
	tests := []struct {
		name     string
		duration time.Duration
		stopAt   time.Duration
		closed   bool
		elapsed  time.Duration
	}{
		{name: "open loop without a duration", stopAt: 4500 * time.Millisecond, elapsed: 4500 * time.Millisecond},
		{name: "open loop stopped before its duration", duration: 10 * time.Second, stopAt: 2 * time.Second, elapsed: 2 * time.Second},
		{name: "open loop ends by its duration first", duration: 3 * time.Second, stopAt: 8 * time.Second, elapsed: 3 * time.Second},
		{name: "stopped before it starts", stopAt: -1, elapsed: 0},
		{name: "closed loop without a duration", stopAt: 1500 * time.Millisecond, closed: true, elapsed: 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				wl := &fakeWorkload{
					read:  func(ctx context.Context) error { return sleepCtx(ctx, time.Millisecond) },
					write: func(ctx context.Context) error { return sleepCtx(ctx, time.Millisecond) },
				}
				rec := NewRecorder(wl.Ops(), nil)
				cfg := Config{
					Workload: wl, Writer: directPool{}, Reader: directPool{},
					Pacer:    NewConstant(NewProfile(100, nil, 0)),
					Duration: tt.duration, Sessions: 200, Workers: 8,
					Think:     Think{Dist: "exponential", Mean: time.Second},
					OpTimeout: 5 * time.Second, Grace: 2 * time.Second, Seed: 1, Recorder: rec,
				}
				if tt.closed {
					cfg.Pacer, cfg.Workers = nil, 2
				}
				p, err := Prepare(cfg)
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				if tt.stopAt < 0 {
					p.Stop()
				} else {
					time.AfterFunc(tt.stopAt, p.Stop)
				}
				st, err := p.Run(t.Context(), start)
				if err != nil {
					t.Fatal(err)
				}
				p.Stop() // again, after the run: harmless
				if st.Interrupted {
					t.Error("a stopped run is marked interrupted")
				}
				if st.Elapsed != tt.elapsed {
					t.Errorf("elapsed = %v, want %v", st.Elapsed, tt.elapsed)
				}
				sum := rec.Summary(st.Elapsed)
				if sum.Totals.Transactions != st.Arrivals {
					t.Errorf("recorded %d operations of %d arrivals", sum.Totals.Transactions, st.Arrivals)
				}
				if !tt.closed {
					want := int64(tt.elapsed.Seconds() * 100)
					if d := st.Arrivals - want; d < -1 || d > 1 {
						t.Errorf("arrivals = %d, want %d (100/s for %v)", st.Arrivals, want, tt.elapsed)
					}
				}
			})
		})
	}
}

func TestPrepareRejectsNegativeDuration(t *testing.T) {
	wl := &fakeWorkload{}
	_, err := Prepare(Config{Workload: wl, Writer: directPool{}, Reader: directPool{}, Recorder: NewRecorder(wl.Ops(), nil), Workers: 1, Duration: -time.Second})
	if err == nil {
		t.Fatal("a negative duration was accepted")
	}
}
