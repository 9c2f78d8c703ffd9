package loadgen

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/rehearse-dev/rehearse/workload"
)

// worker holds one goroutine's private state: its RNG and recording handle.
type worker struct {
	r   *runner
	rnd *rand.Rand
	h   *Handle
}

func (r *runner) newWorker(i int) *worker {
	return &worker{r: r, rnd: rand.New(rand.NewPCG(r.cfg.Seed, uint64(i)+1)), h: r.cfg.Recorder.NewHandle()}
}

// exec runs one action of session s that was due at intended, and records it.
func (w *worker) exec(ctx context.Context, s *workload.Session, intended int64) {
	cfg := &w.r.cfg
	start := w.r.since()
	opIdx := cfg.Workload.Next(s, w.rnd)
	op := &w.r.ops[opIdx]
	pool := cfg.Reader
	var flags uint8
	if op.Kind == workload.Write {
		pool = cfg.Writer
		if cfg.MisroutedWrites > 0 && w.rnd.Float64() < cfg.MisroutedWrites {
			pool = cfg.Reader
			flags |= flagMisrouted
		}
	}
	var (
		err     error
		sent    time.Time
		class   Class
		retries uint8
	)
	for attempt := 0; ; attempt++ {
		octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
		var s0 time.Time
		s0, err = pool.Run(octx, op.Run, s, w.rnd)
		cancel()
		if sent.IsZero() {
			sent = s0 // service time spans every retry
		}
		class, _ = Classify(err)
		if !class.Retryable() || attempt >= cfg.MaxRetries || ctx.Err() != nil {
			break
		}
		retries++
	}
	if errors.Is(err, workload.ErrAmbiguous) {
		flags |= flagAmbiguous
	}
	end := w.r.since()
	sentNs := end
	if !sent.IsZero() {
		sentNs = int64(sent.Sub(w.r.t0))
	}
	w.h.record(sample{intended: intended, start: start, sent: sentNs, end: end, op: uint16(opIdx), class: class, flags: flags, retries: retries}, err)
}

// serve is an open-loop worker's goroutine: it runs each job the scheduler hands it
// and returns the session with the time its think time ends, until jobs is closed.
func (w *worker) serve(ctx context.Context, jobs <-chan job, returned chan<- done) {
	r := w.r
	sessions := r.sessions
	for j := range jobs {
		s := &sessions[j.session]
		r.busy.Add(1)
		w.exec(ctx, s, j.intended)
		r.busy.Add(-1)
		returned <- done{session: j.session, ready: r.since() + int64(r.cfg.Think.Sample(w.rnd))}
	}
}
