package loadgen

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// closed runs cfg.Workers connections, each looping as fast as it can (pgbench style).
// Each operation's intended start is when its worker was free to send it.
func (r *runner) closed(ctx, opCtx context.Context, cancelOps context.CancelFunc) Stats {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if r.cfg.Duration > 0 {
		t := time.AfterFunc(time.Until(r.t0.Add(r.cfg.Duration)), cancel)
		defer t.Stop()
	}
	go func() {
		select {
		case <-r.stop:
			cancel()
		case <-runCtx.Done():
		}
	}()
	var wg sync.WaitGroup
	var arrivals atomic.Int64
	for i := range r.cfg.Workers {
		w := r.newWorker(i)
		s := r.cfg.Workload.NewSession(i, w.rnd)
		wg.Go(func() {
			for runCtx.Err() == nil {
				arrivals.Add(1)
				w.exec(opCtx, &s, i%len(r.cfg.Instances), r.since())
			}
		})
	}
	r.busy.Store(int64(r.cfg.Workers))
	<-runCtx.Done()
	elapsed := r.elapsed()
	r.waitGrace(&wg, cancelOps)
	return Stats{Elapsed: elapsed, Arrivals: arrivals.Load(), Interrupted: ctx.Err() != nil}
}
