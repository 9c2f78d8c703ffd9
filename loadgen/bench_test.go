package loadgen

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rehearse-dev/rehearse/workload"
)

// The hot paths of a run, each per operation: recording a finished operation,
// folding it into the histograms at the once-a-second flush, the pacer, the idle
// session heap, the whole per-operation path of a worker, open-loop dispatch through
// the scheduler and error classification. None of them should allocate in steady
// state (allocs/op 0).

func benchOps() []workload.Op {
	nop := func(context.Context, *pgx.Conn, *workload.Session, *rand.Rand) error { return nil }
	return []workload.Op{{Name: "read", Kind: workload.Read, Run: nop}, {Name: "write", Kind: workload.Write, Run: nop}}
}

// BenchmarkRecord is a worker recording one finished operation into its handle,
// with the recorder's flush (histogram recording, availability, lag) amortised over
// 2,000 operations, the samples of one second at 2,000 tx/s.
func BenchmarkRecord(b *testing.B) {
	rec := NewRecorder(benchOps(), nil)
	h := rec.NewHandle()
	r := rand.New(rand.NewPCG(1, 2))
	now := int64(0)
	flushAt := time.Second
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		lat := 200_000 + r.Int64N(5_000_000)
		h.record(sample{intended: now, start: now + 1000, sent: now + 2000, end: now + lat, op: uint16(i & 1)}, nil)
		now += 500_000 // 2,000 per second
		if time.Duration(now) >= flushAt {
			rec.Flush(flushAt)
			flushAt += time.Second
		}
	}
}

// BenchmarkFlush is the once-a-second flush of 2,000 recorded operations from 8
// worker handles into per-operation interval, run, phase and service histograms,
// reported per operation.
func BenchmarkFlush(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []RecorderOption
	}{{"plain", nil}, {"retained", []RecorderOption{Retain(RetainAll)}}} {
		b.Run(bc.name, func(b *testing.B) {
			rec := NewRecorder(benchOps(), nil, bc.opts...)
			handles := make([]*Handle, 8)
			for i := range handles {
				handles[i] = rec.NewHandle()
			}
			r := rand.New(rand.NewPCG(1, 2))
			const perSecond = 2000
			b.ReportAllocs()
			sec := time.Duration(0)
			for b.Loop() {
				base := int64(sec)
				for i := range perSecond {
					at := base + int64(i)*int64(time.Second)/perSecond
					handles[i%len(handles)].record(sample{intended: at, start: at, sent: at, end: at + 100_000 + r.Int64N(2_000_000), op: uint16(i & 1)}, nil)
				}
				sec += time.Second
				rec.Flush(sec)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/perSecond, "ns/recorded-op")
			if len(rec.intervals) > 0 {
				var bytes int
				for _, iv := range rec.intervals {
					for _, p := range iv.ops {
						if p != nil {
							bytes += p.GetMemorySize()
						}
					}
				}
				b.ReportMetric(float64(bytes)/float64(len(rec.intervals)), "retained-B/s")
			}
		})
	}
}

// BenchmarkPacer is one arrival's due time from each pacer.
func BenchmarkPacer(b *testing.B) {
	ramp := []Stage{{Duration: time.Hour, Rate: 10_000}, {Duration: time.Hour, Rate: 1000}}
	for _, tc := range []struct {
		name string
		new  func() Pacer
	}{
		{"constant", func() Pacer { return NewConstant(NewProfile(2000, nil, 1000*time.Hour)) }},
		{"poisson", func() Pacer { return NewPoisson(NewProfile(2000, nil, 1000*time.Hour), 1) }},
		{"poisson-ramp", func() Pacer { return NewPoisson(NewProfile(0, ramp, 1000*time.Hour), 1) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := tc.new()
			prev := time.Duration(-1)
			b.ReportAllocs()
			for b.Loop() {
				d, ok := p.Next(prev)
				if !ok {
					p, prev = tc.new(), -1
					continue
				}
				prev = d
			}
		})
	}
}

// BenchmarkIdleHeap is one dispatch's heap work: pop the session whose think time
// ends first, push it back with its next ready time.
func BenchmarkIdleHeap(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			h := make(idleHeap, 0, n)
			for i := range n {
				h.push(done{session: int32(i), ready: r.Int64N(int64(4 * time.Second))})
			}
			b.ReportAllocs()
			for b.Loop() {
				d := h.pop()
				d.ready += r.Int64N(int64(8 * time.Second))
				h.push(d)
			}
		})
	}
}

// BenchmarkExec is a worker's whole per-operation path around the database call:
// choose the operation, pick the endpoint, bound it with the operation timeout, run
// it (a no-op here), classify the outcome and record it. ctx-timeout bounds it with
// a context per operation (the open loop, and workloads that are not ConnBound);
// conn-deadline leaves the bound to the connection's deadline (a ConnBound
// workload in the closed loop; the no-op pool sets none).
func BenchmarkExec(b *testing.B) {
	for _, bound := range []bool{false, true} {
		name := "ctx-timeout"
		if bound {
			name = "conn-deadline"
		}
		b.Run(name, func(b *testing.B) {
			wl := &fakeWorkload{read: func(context.Context) error { return nil }, write: func(context.Context) error { return nil }}
			rec := NewRecorder(wl.Ops(), nil)
			r := &runner{cfg: Config{Workload: wl, Instances: []Instance{{Writer: directPool{}, Reader: directPool{}}}, OpTimeout: 5 * time.Second,
				MaxRetries: 3, Recorder: rec}, ops: wl.Ops(), t0: time.Now()}
			w := r.newWorker(0)
			ctx := context.Background()
			if bound {
				w.bound, w.opCtx, w.boundCtx = true, ctx, context.WithoutCancel(ctx)
			}
			s := wl.NewSession(0, w.rnd)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				w.exec(ctx, &s, 0, r.since())
				if n++; n%4096 == 0 {
					rec.Flush(time.Since(r.t0))
				}
			}
		})
	}
}

// BenchmarkOpenLoopDispatch runs the open-loop scheduler flat out: every arrival is
// already due, so each iteration is one pacer step, one heap pop, one hand-off to a
// worker over a channel, a no-op operation, its recording and the session's return.
func BenchmarkOpenLoopDispatch(b *testing.B) {
	for _, sessions := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			wl := &fakeWorkload{read: func(context.Context) error { return nil }, write: func(context.Context) error { return nil }}
			rec := NewRecorder(wl.Ops(), nil)
			n := b.N
			// A rate so high that the schedule is always behind: dispatch is the limit.
			const rate = 1e9
			d := time.Duration(float64(n)/rate*float64(time.Second)) + time.Nanosecond
			cfg := Config{
				Workload: wl, Writer: directPool{}, Reader: directPool{},
				Pacer:    NewConstant(NewProfile(rate, nil, d)),
				Duration: d, Sessions: sessions, Workers: 4,
				Think:     Think{Dist: "constant", Mean: 0},
				OpTimeout: 5 * time.Second, Grace: time.Minute, MaxRetries: 3, Seed: 1, Recorder: rec,
			}
			b.ReportAllocs()
			b.ResetTimer()
			st, err := Run(context.Background(), cfg, time.Now())
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if st.Arrivals < int64(n)*9/10 {
				b.Fatalf("dispatched %d of %d arrivals", st.Arrivals, n)
			}
		})
	}
}

// BenchmarkClassify classifies the outcomes an operation can have.
func BenchmarkClassify(b *testing.B) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"ok", nil},
		{"serialization", fmt.Errorf("transfer: %w", &pgconn.PgError{Code: "40001"})},
		{"read_only", &pgconn.PgError{Code: "25006"}},
		{"reset", fmt.Errorf("read: %w", io.ErrUnexpectedEOF)},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED)},
		{"timeout", fmt.Errorf("op: %w", context.DeadlineExceeded)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Classify(tc.err)
			}
		})
	}
}
