package loadgen

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/rehearse-dev/rehearse/internal/netconn"
	"github.com/rehearse-dev/rehearse/workload"
)

// Which pool holds a session's connection (workload.Session.Pinned).
const (
	pinnedWriter uint8 = iota + 1
	pinnedReader
)

// worker holds one goroutine's private state: its RNG and recording handle, and
// in the closed loop the connections it owns.
type worker struct {
	r   *runner
	rnd *rand.Rand
	h   *Handle

	// own is the worker's own connections (closed loop), nil when every operation
	// takes one from the instance's pools.
	own *Instance
	// bound: the workload is ConnBound and own bounds each operation by its
	// connection's deadline; operations then get boundCtx, which is never
	// cancelled, and opCtx is what cancels the run's operations.
	bound    bool
	opCtx    context.Context
	boundCtx context.Context
	// task is the worker's coroutine when its connections share a thread with
	// other workers' (netconn.Loop); nil when it is a goroutine of its own.
	task *netconn.Task
}

func (r *runner) newWorker(i int) *worker {
	return &worker{r: r, rnd: rand.New(rand.NewPCG(r.cfg.Seed, uint64(i)+1)), h: r.cfg.Recorder.NewHandle()}
}

// exec runs one action of session s that was due at intended, through the pools of
// application instance inst, and records it. Serialization failures and deadlocks are
// retried at once, up to MaxRetries times (the application's transaction retry);
// other failures follow the client's retry policy, after a backoff. Every failed
// attempt is recorded by class; the operation's latency runs from intended to its
// final outcome.
func (w *worker) exec(ctx context.Context, s *workload.Session, inst int, intended int64) {
	cfg := &w.r.cfg
	start := w.r.since()
	opIdx := cfg.Workload.Next(s, w.rnd)
	op := &w.r.ops[opIdx]
	in := &cfg.Instances[inst]
	if w.own != nil {
		in = w.own
	}
	pool := in.Reader
	var flags uint8
	switch {
	case s.Pinned == pinnedWriter:
		// The session holds a connection (an open transaction block): stay on it.
		pool = in.Writer
	case s.Pinned == pinnedReader:
	case op.Kind == workload.Write:
		pool = in.Writer
		if cfg.MisroutedWrites > 0 && w.rnd.Float64() < cfg.MisroutedWrites {
			pool = in.Reader
			flags |= flagMisrouted
		}
	}
	var (
		err         error
		sent        time.Time
		class       Class
		tries       int
		serializing int
		failedTries uint8
	)
	for {
		tries++
		var s0 time.Time
		if w.bound {
			// The connection's deadline bounds the operation (ownedConn).
			s0, err = pool.Run(w.boundCtx, op.Run, s, w.rnd)
			if err != nil && ctx.Err() != nil {
				// Cut off by the run, as a cancelled ctx would have been.
				err = ctx.Err()
			}
		} else {
			octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
			s0, err = pool.Run(octx, op.Run, s, w.rnd)
			cancel()
		}
		if sent.IsZero() {
			sent = s0 // service time spans every retry
		}
		class, _ = Classify(err)
		if class == OK {
			break
		}
		if failedTries < 255 {
			failedTries++
		}
		ambiguous := errors.Is(err, workload.ErrAmbiguous)
		last := ambiguous || ctx.Err() != nil || tries >= 255
		switch {
		case last:
		case class.Retryable() && serializing < cfg.MaxRetries:
			serializing++
			w.h.failed(w.r.since(), uint16(opIdx), class, err)
			continue
		case cfg.Retry.again(class, tries-serializing):
			at := w.r.since()
			if w.retryWait(ctx, tries-serializing) {
				w.h.failed(at, uint16(opIdx), class, err)
				continue
			}
			// Stopped while backing off: this attempt's error is the outcome.
		}
		if ambiguous {
			// A COMMIT whose outcome is unknown is never retried blindly.
			flags |= flagAmbiguous
		}
		break
	}
	s.Pinned = 0
	if s.Hold {
		s.Pinned = pinnedReader
		if pool == in.Writer {
			s.Pinned = pinnedWriter
		}
	}
	end := w.r.since()
	sentNs := end
	if !sent.IsZero() {
		sentNs = int64(sent.Sub(w.r.t0))
	}
	w.h.record(sample{intended: intended, start: start, sent: sentNs, end: end, op: uint16(opIdx), class: class, flags: flags,
		tries: uint8(min(tries, 255)), failed: failedTries}, err)
}

// block runs f, which may wait on something else than the worker's connections,
// off its loop's thread when it has one.
func (w *worker) block(f func()) {
	if w.task != nil {
		w.task.Block(f)
		return
	}
	f()
}

// retryWait waits the retry policy's backoff before attempt tries+1 (see
// Retry.wait), off the loop's thread in a loop.
func (w *worker) retryWait(ctx context.Context, tries int) bool {
	if w.task == nil {
		return w.r.cfg.Retry.wait(ctx, tries, w.rnd)
	}
	var again bool
	w.task.Block(func() { again = w.r.cfg.Retry.wait(ctx, tries, w.rnd) })
	return again
}

// serve is an open-loop worker's goroutine: it runs each job the scheduler hands it
// and returns the session with the time its think time ends, until jobs is closed.
func (w *worker) serve(ctx context.Context, jobs <-chan job, returned chan<- done) {
	r := w.r
	sessions := r.sessions
	for j := range jobs {
		s := &sessions[j.session]
		r.busy.Add(1)
		w.exec(ctx, s, int(j.session)%len(r.cfg.Instances), j.intended)
		r.busy.Add(-1)
		returned <- done{session: j.session, ready: r.since() + int64(r.cfg.Think.Sample(w.rnd))}
	}
}
