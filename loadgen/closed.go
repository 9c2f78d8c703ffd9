package loadgen

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rehearse-dev/rehearse/internal/netconn"
)

// closed runs cfg.Workers connections, each looping as fast as it can (pgbench style).
// Each operation's intended start is when its worker was free to send it. A worker
// owns its connections for the whole run when the pools allow it; a ConnBound
// workload's workers share a few threads (loops), as pgbench's clients share its
// threads.
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
	workers := make([]*worker, r.cfg.Workers)
	owned := r.ownable()
	bound := owned && connBound(r.cfg.Workload)
	for i := range workers {
		w := r.newWorker(i)
		w.opCtx, w.bound = opCtx, bound
		if bound {
			w.boundCtx = context.WithoutCancel(opCtx)
		}
		if owned {
			w.own = r.ownInstance(w, i%len(r.cfg.Instances))
		}
		workers[i] = w
	}
	var arrivals atomic.Int64
	body := func(i int) {
		w := workers[i]
		s := r.cfg.Workload.NewSession(i, w.rnd)
		for runCtx.Err() == nil {
			arrivals.Add(1)
			w.exec(opCtx, &s, i%len(r.cfg.Instances), r.since())
		}
		w.release()
	}
	var wg sync.WaitGroup
	if loops := r.loops(bound); loops > 0 {
		// Leave a P for the rest of the program: each loop holds one (netconn.Loop).
		if procs := runtime.GOMAXPROCS(0); procs < loops+1 {
			runtime.GOMAXPROCS(loops + 1)
			defer runtime.GOMAXPROCS(procs)
		}
		for l := range loops {
			var bodies []func(*netconn.Task)
			for i := l; i < len(workers); i += loops {
				bodies = append(bodies, func(t *netconn.Task) {
					workers[i].task = t
					body(i)
				})
			}
			wg.Go(func() { _ = netconn.Run(bodies) })
		}
	} else {
		for i := range workers {
			wg.Go(func() { body(i) })
		}
	}
	r.busy.Store(int64(r.cfg.Workers))
	<-runCtx.Done()
	elapsed := r.elapsed()
	r.waitGrace(&wg, cancelOps)
	return Stats{Elapsed: elapsed, Arrivals: arrivals.Load(), Interrupted: ctx.Err() != nil}
}

// ownable reports whether every pool can give workers connections of their own.
func (r *runner) ownable() bool {
	for _, in := range r.cfg.Instances {
		for _, p := range []Pool{in.Writer, in.Reader} {
			if _, ok := p.(ownable); !ok {
				return false
			}
		}
	}
	return true
}

// ownInstance is worker w's own connections of instance inst: one per pool, the
// same one when the writer and reader are one pool.
func (r *runner) ownInstance(w *worker, inst int) *Instance {
	in := r.cfg.Instances[inst]
	wr := in.Writer.(ownable).own(w)
	var rd Pool = wr
	if in.Reader != in.Writer {
		rd = in.Reader.(ownable).own(w)
	}
	return &Instance{Writer: wr, Reader: rd}
}

// loops is how many threads share the workers' connections: 0 (a goroutine per
// worker) unless the workload is ConnBound and its pools hand out connections a
// loop can attach; then one per P, as pgbench -j runs a thread per core, and at
// most one per worker.
func (r *runner) loops(bound bool) int {
	if !bound || !netconn.Supported || !r.attachable() {
		return 0
	}
	return min(runtime.GOMAXPROCS(0), r.cfg.Workers)
}

// attachable reports whether the first pool hands out connections a loop can
// attach (every pool of a run is configured alike).
func (r *runner) attachable() bool {
	p, ok := r.cfg.Instances[0].Writer.(*PgxPool)
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.OpTimeout)
	defer cancel()
	c, err := p.pool.Acquire(ctx)
	if err != nil {
		return false
	}
	defer c.Release()
	return netconn.Attachable(c.Conn().PgConn().Conn())
}

// release hands the worker's own connections back to their pools.
func (w *worker) release() {
	if w.own == nil {
		return
	}
	for _, p := range []Pool{w.own.Writer, w.own.Reader} {
		if o, ok := p.(*ownedConn); ok {
			o.drop()
		}
	}
}
