package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/workload"
)

func TestProfileExpected(t *testing.T) {
	tests := []struct {
		name   string
		start  float64
		stages []Stage
		at     time.Duration
		want   float64
	}{
		{"constant", 100, nil, 10 * time.Second, 1000},
		{"ramp up", 0, []Stage{{10 * time.Second, 100}}, 10 * time.Second, 500},
		{"ramp then hold", 0, []Stage{{10 * time.Second, 100}}, 20 * time.Second, 1500},
		{"two stages", 50, []Stage{{2 * time.Second, 150}, {2 * time.Second, 150}}, 4 * time.Second, 500},
		{"mid ramp", 0, []Stage{{10 * time.Second, 100}}, 5 * time.Second, 125},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewProfile(tt.start, tt.stages, time.Hour)
			if got := p.Expected(tt.at); math.Abs(got-tt.want) > 1e-6 {
				t.Fatalf("Expected(%v) = %v, want %v", tt.at, got, tt.want)
			}
			// The inverse must agree with the integral.
			if tt.want > 0 {
				at, ok := p.at(tt.want)
				if !ok || math.Abs(at-tt.at.Seconds()) > 1e-6 {
					t.Fatalf("at(%v) = %v,%v, want %v", tt.want, at, ok, tt.at.Seconds())
				}
			}
		})
	}
}

func countArrivals(p Pacer) (n int, last time.Duration) {
	prev := time.Duration(-1)
	for {
		d, ok := p.Next(prev)
		if !ok {
			return n, last
		}
		if d < prev {
			panic("schedule went backwards")
		}
		n++
		prev, last = d, d
	}
}

func TestPacers(t *testing.T) {
	tests := []struct {
		name  string
		pacer Pacer
		want  float64
		tol   float64
	}{
		{"constant 1000/s for 10s", NewConstant(NewProfile(1000, nil, 10*time.Second)), 10000, 0},
		{"poisson 1000/s for 10s", NewPoisson(NewProfile(1000, nil, 10*time.Second), 7), 10000, 0.03},
		{"constant ramp 0→200 over 10s", NewConstant(NewProfile(0, []Stage{{10 * time.Second, 200}}, 10*time.Second)), 1000, 0.001},
		{"poisson ramp then hold", NewPoisson(NewProfile(0, []Stage{{5 * time.Second, 400}}, 10*time.Second), 3), 3000, 0.05},
		{"zero rate", NewConstant(NewProfile(0, nil, 10*time.Second)), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, _ := countArrivals(tt.pacer)
			if math.Abs(float64(n)-tt.want) > tt.tol*tt.want {
				t.Fatalf("got %d arrivals, want %v ± %.0f%%", n, tt.want, tt.tol*100)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err   error
		class Class
		state string
	}{
		{nil, OK, ""},
		{&pgconn.PgError{Code: "40001"}, Serialization, "40001"},
		{fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "40P01"}), Deadlock, "40P01"},
		{&pgconn.PgError{Code: "25006"}, ReadOnly, "25006"},
		{&pgconn.PgError{Code: "57P01"}, AdminShutdown, "57P01"},
		{&pgconn.PgError{Code: "57P03"}, AdminShutdown, "57P03"},
		{&pgconn.PgError{Code: "57014"}, Timeout, "57014"},
		{&pgconn.PgError{Code: "08006"}, ConnectionReset, "08006"},
		{&pgconn.PgError{Code: "23505"}, Other, "23505"},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), ConnectionRefused, ""},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), ConnectionReset, ""},
		{fmt.Errorf("write: %w", syscall.EPIPE), ConnectionReset, ""},
		{context.DeadlineExceeded, Timeout, ""},
		{fmt.Errorf("%w: x", ErrPoolExhausted), PoolExhausted, ""},
		{errors.New("conn closed"), ConnectionReset, ""},
		{errors.New("boom"), Other, ""},
	}
	for _, tt := range tests {
		c, s := Classify(tt.err)
		if c != tt.class || s != tt.state {
			t.Errorf("Classify(%v) = %v,%q; want %v,%q", tt.err, c, s, tt.class, tt.state)
		}
	}
}

// fakeWorkload has one read and one write op whose behaviour a test chooses.
type fakeWorkload struct {
	read, write func(ctx context.Context) error
}

func (f *fakeWorkload) Name() string { return "fake" }
func (f *fakeWorkload) Setup(context.Context, *pgxpool.Pool, io.Writer) error {
	return nil
}
func (f *fakeWorkload) Verify(context.Context, *pgxpool.Pool) (result.Integrity, error) {
	return result.Integrity{}, nil
}

func (f *fakeWorkload) Ops() []workload.Op {
	return []workload.Op{
		{Name: "read", Kind: workload.Read, Run: func(ctx context.Context, _ *pgx.Conn, _ *workload.Session, _ *rand.Rand) error {
			return f.read(ctx)
		}},
		{Name: "write", Kind: workload.Write, Run: func(ctx context.Context, _ *pgx.Conn, _ *workload.Session, _ *rand.Rand) error {
			return f.write(ctx)
		}},
	}
}
func (f *fakeWorkload) NewSession(i int, _ *rand.Rand) workload.Session {
	return workload.Session{Customer: int64(i)}
}
func (f *fakeWorkload) Next(s *workload.Session, r *rand.Rand) int { return int(r.Uint32() & 1) }

// directPool runs the op without a connection, for tests.
type directPool struct{}

func (directPool) Run(ctx context.Context, op workload.OpFunc, s *workload.Session, r *rand.Rand) (time.Time, error) {
	return time.Now(), op(ctx, nil, s, r)
}

// sleepCtx waits d in the bubble's fake time, honouring ctx.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type runOut struct {
	stats Stats
	sum   Summary
}

func runFake(t *testing.T, ctx context.Context, wl *fakeWorkload, mutate func(*Config)) runOut {
	t.Helper()
	rec := NewRecorder(wl.Ops(), nil)
	cfg := Config{
		Workload: wl, Writer: directPool{}, Reader: directPool{},
		Pacer:    NewConstant(NewProfile(100, nil, 10*time.Second)),
		Duration: 10 * time.Second, Sessions: 200, Workers: 8,
		Think:     Think{Dist: "exponential", Mean: time.Second},
		OpTimeout: 5 * time.Second, Grace: 2 * time.Second, MaxRetries: 3,
		Seed: 1, Recorder: rec,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	st, err := Run(ctx, cfg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return runOut{st, rec.Summary(cfg.Duration)}
}

func opNamed(s Summary, name string) result.Operation {
	for _, o := range s.Operations {
		if o.Name == name {
			return o
		}
	}
	return result.Operation{}
}

func TestOpenLoopSteady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wl := &fakeWorkload{
			read:  func(ctx context.Context) error { return sleepCtx(ctx, 2*time.Millisecond) },
			write: func(ctx context.Context) error { return sleepCtx(ctx, 5*time.Millisecond) },
		}
		out := runFake(t, t.Context(), wl, nil)
		if out.stats.Arrivals != 1000 {
			t.Errorf("arrivals = %d, want 1000 (10 s at 100/s)", out.stats.Arrivals)
		}
		if got := out.sum.Totals.Succeeded; got != 1000 {
			t.Errorf("succeeded = %d, want 1000", got)
		}
		if n := len(out.sum.Timeline); n != 10 {
			t.Errorf("timeline rows = %d, want 10 (the partial last second joins the 10th)", n)
		}
		w := opNamed(out.sum, "write")
		if w.LatencyMs.P50 < 4.9 || w.LatencyMs.P50 > 5.1 || w.LatencyMs.Max > 5.1 {
			t.Errorf("write latency = %+v, want 5 ms", w.LatencyMs)
		}
		if out.sum.LagP99Ms > 0.001 {
			t.Errorf("schedule lag p99 = %v ms, want 0 in a bubble", out.sum.LagP99Ms)
		}
		if out.sum.Availability.WriteUnavailableMaxMs > 6 {
			t.Errorf("write unavailable max = %v ms, want ≈ one operation's latency", out.sum.Availability.WriteUnavailableMaxMs)
		}
		if len(out.sum.Availability.Windows) != 0 {
			t.Errorf("windows = %+v, want none", out.sum.Availability.Windows)
		}
	})
}

// A stall must not slow the schedule (open loop), and the arrivals it delays must carry
// the delay in their latency (no coordinated omission).
func TestOpenLoopStallCountsQueueing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var t0 time.Time
		stalled := func(ctx context.Context) error {
			el := time.Since(t0)
			if el >= 5*time.Second && el < 6*time.Second {
				return sleepCtx(ctx, 6*time.Second-el)
			}
			return sleepCtx(ctx, time.Millisecond)
		}
		wl := &fakeWorkload{read: stalled, write: stalled}
		t0 = time.Now()
		out := runFake(t, t.Context(), wl, nil)
		if out.stats.Arrivals != 1000 {
			t.Errorf("arrivals = %d, want 1000: the schedule must not wait for the database", out.stats.Arrivals)
		}
		var maxLat float64
		for _, o := range out.sum.Operations {
			maxLat = max(maxLat, o.LatencyMs.Max)
		}
		if maxLat < 990 {
			t.Errorf("max latency = %v ms, want ≈ 1000 ms: the first arrival in the stall waited a full second", maxLat)
		}
		if out.sum.LagMaxMs < 900 {
			t.Errorf("schedule lag max = %v ms, want most of the stall (8 workers all blocked)", out.sum.LagMaxMs)
		}
		if w := out.sum.Availability.WriteUnavailableMaxMs; w < 950 || w > 1001 {
			t.Errorf("write unavailable max = %v ms, want ≈ 1000 less the gap to the first write in the stall", w)
		}
	})
}

func TestOpenLoopFailuresMakeWindows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		wl := &fakeWorkload{
			read: func(ctx context.Context) error { return sleepCtx(ctx, time.Millisecond) },
			write: func(ctx context.Context) error {
				if el := time.Since(t0); el >= 4*time.Second && el < 5500*time.Millisecond {
					return &pgconn.PgError{Code: "25006", Message: "cannot execute UPDATE in a read-only transaction"}
				}
				return sleepCtx(ctx, time.Millisecond)
			},
		}
		out := runFake(t, t.Context(), wl, nil)
		w := out.sum.Availability.WriteUnavailableMaxMs
		if w < 1380 || w > 1600 { // opens at the first write attempted in the outage
			t.Errorf("write unavailable max = %v ms, want ≈ 1500", w)
		}
		if r := out.sum.Availability.ReadUnavailableMaxMs; r > 2 {
			t.Errorf("read unavailable max = %v ms, want ≈ 1", r)
		}
		var found bool
		for _, win := range out.sum.Availability.Windows {
			if win.Kind == "write" && win.Ms >= 1380 {
				found = true
			}
		}
		if !found {
			t.Errorf("no write window listed: %+v", out.sum.Availability.Windows)
		}
		if len(out.sum.Errors) != 1 || out.sum.Errors[0].Class != "read_only" || out.sum.Errors[0].SQLState != "25006" {
			t.Fatalf("errors = %+v, want one read_only/25006 class", out.sum.Errors)
		}
		e := out.sum.Errors[0]
		if e.FirstS < 4 || e.LastS > 5.6 || e.Count < 50 {
			t.Errorf("error class = %+v, want first ≥ 4 s, last ≤ 5.5 s, ~75 errors", e)
		}
		var rowErrs int64
		for _, row := range out.sum.Timeline {
			rowErrs += row.ErrorsByClass["read_only"]
		}
		if rowErrs != e.Count {
			t.Errorf("timeline errors %d != error count %d", rowErrs, e.Count)
		}
	})
}

func TestRetriesSerializationFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		wl := &fakeWorkload{
			read: func(ctx context.Context) error { return nil },
			write: func(ctx context.Context) error {
				calls++
				if calls%3 != 0 {
					return &pgconn.PgError{Code: "40001"}
				}
				return nil
			},
		}
		out := runFake(t, t.Context(), wl, func(c *Config) { c.Workers = 1 })
		if out.sum.Totals.Failed != 0 {
			t.Errorf("failed = %d, want 0: two retries always suffice", out.sum.Totals.Failed)
		}
		w := opNamed(out.sum, "write")
		if out.sum.Totals.Retries != 2*w.Count {
			t.Errorf("retries = %d, want 2 per write (%d writes)", out.sum.Totals.Retries, w.Count)
		}
	})
}

func TestRetriesAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wl := &fakeWorkload{
			read:  func(ctx context.Context) error { return nil },
			write: func(ctx context.Context) error { return &pgconn.PgError{Code: "40P01"} },
		}
		out := runFake(t, t.Context(), wl, func(c *Config) { c.MaxRetries = 2 })
		w := opNamed(out.sum, "write")
		if w.Errors != w.Count || w.Count == 0 {
			t.Errorf("write errors = %d of %d, want all", w.Errors, w.Count)
		}
		if out.sum.Totals.Retries != 2*w.Count {
			t.Errorf("retries = %d, want %d", out.sum.Totals.Retries, 2*w.Count)
		}
	})
}

func TestClosedLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wl := &fakeWorkload{
			read:  func(ctx context.Context) error { return sleepCtx(ctx, 10*time.Millisecond) },
			write: func(ctx context.Context) error { return sleepCtx(ctx, 10*time.Millisecond) },
		}
		out := runFake(t, t.Context(), wl, func(c *Config) { c.Pacer = nil; c.Workers = 2 })
		// 2 connections × 100 ops/s × 10 s.
		if n := out.sum.Totals.Transactions; n < 1998 || n > 2002 {
			t.Errorf("transactions = %d, want 2000", n)
		}
	})
}

func TestInterruptKeepsRecorded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wl := &fakeWorkload{
			read:  func(ctx context.Context) error { return sleepCtx(ctx, time.Millisecond) },
			write: func(ctx context.Context) error { return sleepCtx(ctx, time.Millisecond) },
		}
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(3*time.Second, cancel)
		out := runFake(t, ctx, wl, nil)
		if !out.stats.Interrupted {
			t.Error("not marked interrupted")
		}
		if n := out.sum.Totals.Succeeded; n < 299 || n > 301 {
			t.Errorf("succeeded = %d, want the 300 of the first 3 s", n)
		}
		if n := len(out.sum.Timeline); n < 3 {
			t.Errorf("timeline rows = %d, want ≥ 3", n)
		}
	})
}

func TestPhasesSplitByIntendedStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		wl := &fakeWorkload{
			read:  func(ctx context.Context) error { return sleepCtx(ctx, time.Millisecond) },
			write: func(ctx context.Context) error { return sleepCtx(ctx, time.Millisecond) },
		}
		var rec *Recorder
		out := runFake(t, t.Context(), wl, func(c *Config) {
			rec = c.Recorder
			c.OnTick = func(el time.Duration) {
				switch el {
				case 3 * time.Second:
					rec.MarkPhase(result.PhaseDuring, el)
				case 6 * time.Second:
					rec.MarkPhase(result.PhaseAfter, el)
				}
			}
		})
		var before, during, after int64
		for _, o := range out.sum.Operations {
			before += o.Phases[result.PhaseBefore].Count
			during += o.Phases[result.PhaseDuring].Count
			after += o.Phases[result.PhaseAfter].Count
		}
		if before != 300 || during != 300 || after != 400 {
			t.Errorf("phases before/during/after = %d/%d/%d, want 300/300/400", before, during, after)
		}
	})
}

func TestIdleHeapOrders(t *testing.T) {
	var h idleHeap
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 1000 {
		h.push(done{session: int32(i), ready: r.Int64N(1e6)})
	}
	last := int64(-1)
	for len(h) > 0 {
		d := h.pop()
		if d.ready < last {
			t.Fatalf("heap out of order: %d after %d", d.ready, last)
		}
		last = d.ready
	}
}

func TestIdleHeapInitOrders(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 1000} {
		r := rand.New(rand.NewPCG(uint64(n), 2))
		h := make(idleHeap, 0, n)
		for i := range n {
			h = append(h, done{session: int32(i), ready: r.Int64N(1e6)})
		}
		h.init()
		h.push(done{session: -1, ready: 5e5})
		last := int64(-1)
		for len(h) > 0 {
			d := h.pop()
			if d.ready < last {
				t.Fatalf("n=%d: heap out of order: %d after %d", n, d.ready, last)
			}
			last = d.ready
		}
	}
}
