package loadgen

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/workload"
)

// ConnBound is implemented by a workload whose operations wait on nothing but the
// connection they are given (no sleeps, no timers, no other goroutines) and that
// need nothing from their ctx but its values. The closed loop then gives them a
// ctx that is never cancelled, bounds each operation by a deadline on its
// connection instead (so the driver watches no context per statement), and runs
// several connections on one thread, as pgbench's threads do (see
// internal/netconn).
type ConnBound interface {
	// ConnBound reports whether every operation waits only on its connection.
	ConnBound() bool
}

func connBound(w workload.Workload) bool {
	b, ok := w.(ConnBound)
	return ok && b.ConnBound()
}

// ownable is a Pool that can give a worker a connection of its own for the whole
// run, as pgbench's clients keep theirs (the closed loop).
type ownable interface {
	Pool
	own(w *worker) *ownedConn
}

var _ ownable = (*PgxPool)(nil)

func (p *PgxPool) own(w *worker) *ownedConn {
	o := &ownedConn{pool: p, w: w}
	if w.bound {
		// The operations' ctx is never cancelled: when the run cancels what is
		// still in flight, the connection's deadline is moved to now instead.
		context.AfterFunc(w.opCtx, o.interrupt)
	}
	return o
}

// ownedConn is one worker's connection of a pool, taken on its first operation and
// kept until the run ends or the connection breaks (then the next operation takes
// another). A session's transaction block stays on it as a matter of course.
type ownedConn struct {
	pool *PgxPool
	w    *worker
	// mu guards c against interrupt; the worker reads c without it, as only the
	// worker changes it.
	mu sync.Mutex
	c  *pgxpool.Conn
}

var _ Pool = (*ownedConn)(nil)

// Run implements Pool. For a ConnBound workload it sets the connection's deadline
// to the operation timeout; otherwise ctx bounds the operation.
func (o *ownedConn) Run(ctx context.Context, op workload.OpFunc, s *workload.Session, r *rand.Rand) (time.Time, error) {
	if o.c == nil {
		if err := o.connect(ctx); err != nil {
			return time.Time{}, err
		}
	}
	c := o.c
	if o.w.bound {
		nc := c.Conn().PgConn().Conn()
		if err := nc.SetDeadline(time.Now().Add(o.w.r.cfg.OpTimeout)); err != nil {
			o.drop()
			return time.Time{}, err
		}
		// Cancelled before the deadline was set: interrupt may have come first.
		if err := o.w.opCtx.Err(); err != nil {
			return time.Time{}, err
		}
	}
	sent := time.Now()
	err := op(ctx, c.Conn(), s, r)
	pc := c.Conn().PgConn()
	keep := s.Hold && err == nil && !pc.IsClosed()
	if !keep {
		s.Hold = false
	}
	if pc.IsClosed() || !keep && pc.TxStatus() != 'I' {
		// Broken, or left in a transaction nobody will end: the pool closes it.
		o.drop()
	}
	return sent, err
}

// connect takes a connection from the pool (with the pool's reconnect backoff),
// bounded by the operation timeout, and attaches it to the worker's loop task. In a
// loop, the wait happens off the loop's thread.
func (o *ownedConn) connect(ctx context.Context) error {
	var (
		c   *pgxpool.Conn
		err error
	)
	o.w.block(func() {
		actx, cancel := context.WithTimeout(o.w.opCtx, o.w.r.cfg.OpTimeout)
		defer cancel()
		c, err = o.pool.acquire(actx)
	})
	if err != nil {
		return err
	}
	if t := o.w.task; t != nil {
		// A connection that cannot be attached still works: its waits then hold
		// the loop's thread.
		_ = t.Attach(c.Conn().PgConn().Conn())
	}
	o.mu.Lock()
	o.c = c
	o.mu.Unlock()
	return ctx.Err()
}

// drop gives the connection back to the pool, which closes it if it is broken or in
// a transaction.
func (o *ownedConn) drop() {
	o.mu.Lock()
	c := o.c
	o.c = nil
	o.mu.Unlock()
	if c == nil {
		return
	}
	nc := c.Conn().PgConn().Conn()
	if t := o.w.task; t != nil {
		t.Detach(nc)
	}
	if o.w.bound && !c.Conn().IsClosed() {
		_ = nc.SetDeadline(time.Time{})
	}
	c.Release()
}

// interrupt ends the operation in flight on the connection, if any: the run is
// cancelling what is left.
func (o *ownedConn) interrupt() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.c != nil {
		_ = o.c.Conn().PgConn().Conn().SetDeadline(time.Now())
	}
}
