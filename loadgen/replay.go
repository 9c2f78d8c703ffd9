package loadgen

import (
	"context"
	"sync"
	"time"
)

// Arrivals is a schedule of arrivals that belong to given sessions, such as the
// statements of a captured log: each session runs its arrivals in order, one at a
// time. A session still busy when its next arrival is due keeps that arrival waiting
// (its latency counts from when it was due); other sessions are not held up.
type Arrivals interface {
	// Next returns the next arrival: its session (0 ≤ session < Config.Sessions)
	// and its intended start; ok is false when the schedule has ended. Due times
	// do not decrease.
	Next() (session int32, due time.Duration, ok bool)
}

// replay runs an Arrivals schedule open loop: arrivals start when due, whatever the
// database does, except that a session's arrivals run one after the other. It ends
// when the schedule has ended and every arrival has run, or at the run's end.
func (r *runner) replay(ctx, opCtx context.Context, cancelOps context.CancelFunc) Stats {
	cfg := &r.cfg
	jobs := make(chan job, cfg.Workers)
	returned := make(chan done, 2*cfg.Workers+1)
	var wg sync.WaitGroup
	for i := range cfg.Workers {
		w := r.newWorker(i)
		wg.Go(func() { w.replay(opCtx, jobs, returned) })
	}
	arrivals := r.replayDispatch(ctx, jobs, returned)
	interrupted := ctx.Err() != nil
	elapsed := r.elapsed()
	close(jobs)
	r.waitGrace(&wg, cancelOps)
	return Stats{Elapsed: elapsed, Arrivals: arrivals, Interrupted: interrupted}
}

// replay is a replaying worker's goroutine: it runs each job and hands its session
// back at once (a captured session has no think time: its gaps are in the schedule).
func (w *worker) replay(ctx context.Context, jobs <-chan job, returned chan<- done) {
	r := w.r
	sessions := r.sessions
	n := len(r.cfg.Instances)
	for j := range jobs {
		r.busy.Add(1)
		w.exec(ctx, &sessions[j.session], int(j.session)%n, j.intended)
		r.busy.Add(-1)
		returned <- done{session: j.session}
	}
}

// replayDispatch is the replay's scheduler, an event loop over the next arrival's
// due time, the jobs ready to hand out, and the sessions coming back. A session's
// arrivals that come due while it is busy wait in its queue; arrivals ready while
// every worker is busy wait in order. It returns the number of arrivals handed out.
func (r *runner) replayDispatch(ctx context.Context, jobs chan<- job, returned <-chan done) int64 {
	cfg := &r.cfg
	busy := make([]bool, len(r.sessions)) // the session has an arrival ready, running or waiting
	waiting := map[int32][]int64{}        // per busy session, the intended starts still to run
	var ready []job                       // due arrivals of sessions that were idle, in order
	var handed, outstanding int64         // handed to workers; not yet finished
	arrive := func(s int32, intended int64) {
		outstanding++
		if busy[s] {
			waiting[s] = append(waiting[s], intended)
			return
		}
		busy[s] = true
		ready = append(ready, job{session: s, intended: intended})
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var endC <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(time.Until(r.t0.Add(cfg.Duration)))
		defer t.Stop()
		endC = t.C
	}
	next, nextDue, more := cfg.Arrivals.Next()
	for {
		if more && cfg.Duration > 0 && nextDue >= cfg.Duration {
			more = false // the run ends before this arrival
		}
		if more && time.Until(r.t0.Add(nextDue)) <= 0 {
			arrive(next, int64(nextDue))
			next, nextDue, more = cfg.Arrivals.Next()
			continue
		}
		if !more && len(ready) == 0 && outstanding == 0 {
			return handed
		}
		var tc <-chan time.Time
		if more {
			timer.Reset(time.Until(r.t0.Add(nextDue)))
			tc = timer.C
		}
		var out chan<- job
		var head job
		if len(ready) > 0 {
			out, head = jobs, ready[0]
		}
		select {
		case <-ctx.Done():
			return handed
		case <-r.stop:
			return handed
		case <-endC:
			return handed
		case <-tc:
		case out <- head:
			ready = ready[1:]
			handed++
		case d := <-returned:
			outstanding--
			if q := waiting[d.session]; len(q) > 0 {
				ready = append(ready, job{session: d.session, intended: q[0]})
				if len(q) == 1 {
					delete(waiting, d.session)
				} else {
					waiting[d.session] = q[1:]
				}
			} else {
				busy[d.session] = false
			}
		}
		timer.Stop()
	}
}
