package loadgen

import (
	"context"
	"io"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/workload"
)

// captured is a schedule of arrivals: session, due.
type captured struct {
	rows []struct {
		s   int32
		due time.Duration
	}
	i int
}

func (c *captured) add(s int32, due time.Duration) {
	c.rows = append(c.rows, struct {
		s   int32
		due time.Duration
	}{s, due})
}

func (c *captured) Next() (int32, time.Duration, bool) {
	if c.i >= len(c.rows) {
		return 0, 0, false
	}
	r := c.rows[c.i]
	c.i++
	return r.s, r.due, true
}

func TestReplayRunsEachSessionInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sched := &captured{}
		// Session 0: four statements 1 s apart, each taking 2.5 s: it falls behind.
		// Session 1: four statements 1 s apart, fast: it keeps its schedule.
		for i := range 4 {
			sched.add(0, time.Duration(i)*time.Second)
			sched.add(1, time.Duration(i)*time.Second+100*time.Millisecond)
		}
		var mu sync.Mutex
		starts := map[int64][]time.Duration{}
		var t0 time.Time
		op := func(ctx context.Context, _ *pgx.Conn, s *workload.Session, _ *rand.Rand) error {
			mu.Lock()
			starts[s.Customer] = append(starts[s.Customer], time.Since(t0))
			mu.Unlock()
			d := time.Millisecond
			if s.Customer == 0 {
				d = 2500 * time.Millisecond
			}
			return sleepCtx(ctx, d)
		}
		wl := &opWorkload{op: workload.Op{Name: "stmt", Kind: workload.Write, Run: op}}
		rec := NewRecorder(wl.Ops(), nil)
		t0 = time.Now()
		st, err := Run(t.Context(), Config{
			Workload: wl, Writer: directPool{}, Reader: directPool{}, Arrivals: sched,
			Sessions: 2, Workers: 8, OpTimeout: 10 * time.Second, Grace: 5 * time.Second, Recorder: rec,
		}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if st.Arrivals != 8 || st.Interrupted {
			t.Fatalf("arrivals %d interrupted %v", st.Arrivals, st.Interrupted)
		}
		// The fast session kept its schedule; the slow one ran its statements one
		// after the other.
		want1 := []time.Duration{100 * time.Millisecond, 1100 * time.Millisecond, 2100 * time.Millisecond, 3100 * time.Millisecond}
		want0 := []time.Duration{0, 2500 * time.Millisecond, 5000 * time.Millisecond, 7500 * time.Millisecond}
		for s, want := range map[int64][]time.Duration{0: want0, 1: want1} {
			got := starts[s]
			sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
			if len(got) != len(want) {
				t.Fatalf("session %d ran %v", s, got)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("session %d statement %d started at %v, want %v", s, i, got[i], want[i])
				}
			}
		}
		// Latency counts from the intended start: session 0's last statement was due
		// at 3 s, started at 7.5 s and took 2.5 s: 7 s.
		sum := rec.Summary(st.Elapsed)
		if max := sum.Operations[0].LatencyMs.Max; max < 6990 || max > 7010 {
			t.Errorf("max latency %v ms, want 7000", max)
		}
		if st.Elapsed < 10*time.Second || st.Elapsed > 10*time.Second+10*time.Millisecond {
			t.Errorf("the replay ended after %v, want when the last statement finished (10 s)", st.Elapsed)
		}
	})
}

// A run's duration cuts a replay short.
func TestReplayEndsAtTheDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sched := &captured{}
		for i := range 100 {
			sched.add(int32(i%5), time.Duration(i)*100*time.Millisecond)
		}
		wl := &opWorkload{op: workload.Op{Name: "stmt", Kind: workload.Read, Run: func(ctx context.Context, _ *pgx.Conn, _ *workload.Session, _ *rand.Rand) error {
			return sleepCtx(ctx, time.Millisecond)
		}}}
		rec := NewRecorder(wl.Ops(), nil)
		st, err := Run(t.Context(), Config{Workload: wl, Writer: directPool{}, Reader: directPool{}, Arrivals: sched,
			Sessions: 5, Workers: 4, Duration: 5 * time.Second, OpTimeout: time.Second, Grace: time.Second, Recorder: rec}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// Arrivals due at or after 5 s are not run; the replay ends when the last one
		// before it has (at 4.9 s, plus 1 ms).
		if st.Arrivals != 50 || st.Elapsed != 4901*time.Millisecond {
			t.Errorf("arrivals %d elapsed %v, want 50 ending at 4.901 s", st.Arrivals, st.Elapsed)
		}
	})
}

// opWorkload has one operation; session i's Customer is i.
type opWorkload struct{ op workload.Op }

func (w *opWorkload) Name() string { return "op" }
func (w *opWorkload) Setup(context.Context, *pgxpool.Pool, io.Writer) error {
	return nil
}
func (w *opWorkload) Ops() []workload.Op { return []workload.Op{w.op} }
func (w *opWorkload) NewSession(i int, _ *rand.Rand) workload.Session {
	return workload.Session{Customer: int64(i)}
}
func (w *opWorkload) Next(*workload.Session, *rand.Rand) int { return 0 }
func (w *opWorkload) Verify(context.Context, *pgxpool.Pool) (result.Integrity, error) {
	return result.Integrity{}, nil
}
