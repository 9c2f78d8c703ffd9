package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rehearse-dev/rehearse/workload"
)

// outage fails every operation with err until the run's clock passes until.
func outage(start *time.Time, until time.Duration, err error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if time.Since(*start) < until {
			return err
		}
		return sleepCtx(ctx, time.Millisecond)
	}
}

// A retry policy whose backoffs span an outage turns failed attempts into
// operations that succeed: users see no failure, the database saw many, and each
// operation's latency runs across its backoffs.
func TestRetriesSpanAnOutage(t *testing.T) {
	refused := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	readOnly := &pgconn.PgError{Code: "25006", Message: "cannot execute UPDATE in a read-only transaction"}
	tests := []struct {
		name       string
		err        error
		retry      Retry
		wantFailed bool // some operations still fail after the retries
	}{
		{"no retries: users see the outage", refused, Retry{MaxAttempts: 1}, true},
		{"retries span the outage", refused, Retry{MaxAttempts: 8, Backoff: 250 * time.Millisecond, MaxBackoff: 2 * time.Second, On: mustClasses(t, "connection")}, false},
		{"a class not retried is not", readOnly, Retry{MaxAttempts: 8, Backoff: 250 * time.Millisecond, MaxBackoff: 2 * time.Second, On: mustClasses(t, "connection")}, true},
		{"read_only retried", readOnly, Retry{MaxAttempts: 8, Backoff: 250 * time.Millisecond, MaxBackoff: 2 * time.Second, On: mustClasses(t, "read_only")}, false},
		{"too few attempts", refused, Retry{MaxAttempts: 2, Backoff: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, On: mustClasses(t, "connection")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var start time.Time
				wl := &fakeWorkload{read: outage(&start, 3*time.Second, tt.err), write: outage(&start, 3*time.Second, tt.err)}
				start = time.Now()
				out := runFake(t, t.Context(), wl, func(c *Config) {
					c.Retry = tt.retry
					c.Workers = 64
				})
				tot := out.sum.Totals
				if (tot.Failed > 0) != tt.wantFailed {
					t.Errorf("failed %d, want failures: %v (totals %+v)", tot.Failed, tt.wantFailed, tot)
				}
				if tot.FailedAttempts == 0 || tot.FailedAttempts < tot.Failed {
					t.Errorf("failed attempts %d, failed %d", tot.FailedAttempts, tot.Failed)
				}
				var byClass int64
				for _, e := range out.sum.Errors {
					byClass += e.Count
				}
				if byClass != tot.FailedAttempts {
					t.Errorf("errors[] count %d failed attempts, totals say %d", byClass, tot.FailedAttempts)
				}
				if tot.Attempts != tot.Transactions+tot.Retries {
					t.Errorf("attempts %d, transactions %d + retries %d", tot.Attempts, tot.Transactions, tot.Retries)
				}
				var retried int64
				maxTries := 0
				var rows int64
				for _, o := range out.sum.Operations {
					retried += o.Attempts.Retried
					maxTries = max(maxTries, o.Attempts.Max)
				}
				for _, row := range out.sum.Timeline {
					rows += row.FailedAttempts
				}
				if rows != tot.FailedAttempts {
					t.Errorf("timeline holds %d failed attempts, totals %d", rows, tot.FailedAttempts)
				}
				if tt.retry.MaxAttempts > 1 && tt.retry.On.Has(mustClass(tt.err)) {
					if retried == 0 || maxTries < 2 || maxTries > tt.retry.MaxAttempts {
						t.Errorf("retried %d, max tries %d (policy %d)", retried, maxTries, tt.retry.MaxAttempts)
					}
					if !tt.wantFailed && opNamed(out.sum, "write").LatencyMs.Max < 2000 {
						t.Errorf("max latency %v ms: latency must run across the backoffs", opNamed(out.sum, "write").LatencyMs.Max)
					}
				} else if retried != 0 {
					t.Errorf("retried %d without a policy for the class", retried)
				}
			})
		})
	}
}

// A COMMIT whose outcome is unknown is never retried blindly.
func TestAmbiguousIsNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		amb := func(context.Context) error {
			calls.Add(1)
			return fmt.Errorf("%w: %w", workload.ErrAmbiguous, syscall.ECONNRESET)
		}
		wl := &fakeWorkload{read: amb, write: amb}
		out := runFake(t, t.Context(), wl, func(c *Config) {
			c.Retry = Retry{MaxAttempts: 5, Backoff: time.Millisecond, MaxBackoff: time.Millisecond, On: mustClasses(t, "connection")}
		})
		if tot := out.sum.Totals; tot.Ambiguous != tot.Transactions || tot.Retries != 0 || calls.Load() != tot.Transactions {
			t.Errorf("totals %+v after %d calls", tot, calls.Load())
		}
	})
}

// Sessions are spread over the application instances' pools.
func TestInstancesSpreadSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		op := func(ctx context.Context) error { return sleepCtx(ctx, time.Millisecond) }
		wl := &fakeWorkload{read: op, write: op}
		pools := make([]countingPool, 4)
		out := runFake(t, t.Context(), wl, func(c *Config) {
			c.Writer, c.Reader = nil, nil
			for i := range pools {
				c.Instances = append(c.Instances, Instance{Writer: &pools[i], Reader: &pools[i]})
			}
		})
		var sum int64
		for i := range pools {
			n := pools[i].n.Load()
			sum += n
			if n < out.sum.Totals.Transactions/8 {
				t.Errorf("instance %d ran %d of %d operations", i, n, out.sum.Totals.Transactions)
			}
		}
		if sum != out.sum.Totals.Transactions {
			t.Errorf("instances ran %d operations, the run %d", sum, out.sum.Totals.Transactions)
		}
	})
}

func TestParseClasses(t *testing.T) {
	s, err := ParseClasses([]string{"connection", "read_only"})
	if err != nil || !s.Has(ConnectionRefused) || !s.Has(ConnectionReset) || !s.Has(ReadOnly) || s.Has(Timeout) {
		t.Errorf("set %b, err %v", s, err)
	}
	if _, err := ParseClasses([]string{"gremlins"}); err == nil {
		t.Error("an unknown class was accepted")
	}
}

type countingPool struct{ n atomic.Int64 }

func (p *countingPool) Run(ctx context.Context, op workload.OpFunc, s *workload.Session, r *rand.Rand) (time.Time, error) {
	p.n.Add(1)
	return time.Now(), op(ctx, nil, s, r)
}

func mustClasses(t *testing.T, names ...string) ClassSet {
	t.Helper()
	s, err := ParseClasses(names)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustClass(err error) Class {
	c, _ := Classify(err)
	return c
}
