package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/workload"
)

// Reconnect backoff bounds: after a failed connect, operations on the endpoint wait
// before the next attempt, doubling up to the maximum, so an outage is not met with a
// connect storm at the arrival rate.
const (
	minBackoff = 20 * time.Millisecond
	maxBackoff = 500 * time.Millisecond
)

// PgxPool runs operations on a pgxpool, with reconnect backoff. A session whose
// operation sets Hold keeps its connection for its next operation (a transaction
// block stays on one connection).
type PgxPool struct {
	pool      *pgxpool.Pool
	failUntil atomic.Int64 // unix nanoseconds before which no connect is attempted
	backoff   atomic.Int64
	held      sync.Map // *workload.Session → *pgxpool.Conn
}

var _ Pool = (*PgxPool)(nil)

// NewPgxPool wraps p.
func NewPgxPool(p *pgxpool.Pool) *PgxPool { return &PgxPool{pool: p} }

// Run implements Pool.
func (p *PgxPool) Run(ctx context.Context, op workload.OpFunc, s *workload.Session, r *rand.Rand) (time.Time, error) {
	if s.Pinned != 0 {
		if c, ok := p.held.LoadAndDelete(s); ok {
			return p.run(ctx, c.(*pgxpool.Conn), op, s, r)
		}
	}
	c, err := p.acquire(ctx)
	if err != nil {
		return time.Time{}, err
	}
	return p.run(ctx, c, op, s, r)
}

// acquire takes a connection from the pool, waiting out the reconnect backoff first
// and extending it when the endpoint refuses.
func (p *PgxPool) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	if fu := p.failUntil.Load(); fu > 0 {
		if wait := time.Until(time.Unix(0, fu)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("waiting to reconnect: %w", ctx.Err())
			case <-t.C:
			}
		}
	}
	c, err := p.pool.Acquire(ctx)
	if err != nil {
		var ce *pgconn.ConnectError
		if !errors.As(err, &ce) && errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: %w", ErrPoolExhausted, err)
		}
		if class, _ := Classify(err); class == ConnectionRefused || class == ConnectionReset {
			b := min(max(2*p.backoff.Load(), int64(minBackoff)), int64(maxBackoff))
			p.backoff.Store(b)
			p.failUntil.Store(time.Now().Add(time.Duration(b)).UnixNano())
		}
		return nil, err
	}
	if p.backoff.Load() != 0 {
		p.backoff.Store(0)
		p.failUntil.Store(0)
	}
	return c, nil
}

// run runs op on c, then keeps c for the session when it asked to hold it, else
// releases it (a connection left in a transaction is closed by the pool).
func (p *PgxPool) run(ctx context.Context, c *pgxpool.Conn, op workload.OpFunc, s *workload.Session, r *rand.Rand) (time.Time, error) {
	sent := time.Now()
	err := op(ctx, c.Conn(), s, r)
	if s.Hold && err == nil && !c.Conn().IsClosed() {
		p.held.Store(s, c)
		return sent, nil
	}
	s.Hold = false
	c.Release()
	return sent, err
}

// ReleaseHeld releases every connection a session still holds: the run is over.
func (p *PgxPool) ReleaseHeld() {
	p.held.Range(func(k, v any) bool {
		p.held.Delete(k)
		v.(*pgxpool.Conn).Release()
		return true
	})
}
