package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rehearse-dev/rehearse/workload"
)

// Pool runs one operation on a connection from an endpoint's pool. It returns when the
// operation was sent (after a connection was acquired) so service time can be told
// apart from waiting for a connection.
type Pool interface {
	Run(ctx context.Context, op workload.OpFunc, s *workload.Session, r *rand.Rand) (sent time.Time, err error)
}

// Config is one load run.
type Config struct {
	// Workload supplies the operations and the session lifecycle.
	Workload workload.Workload
	// Writer and Reader are the endpoints writes and reads go to.
	Writer, Reader Pool
	// Instances are application instances, each with its own writer and reader
	// pools; session i uses instance i % len(Instances). Empty: one instance,
	// Writer and Reader.
	Instances []Instance
	// Retry is the application's retry policy (zero: no retries).
	Retry Retry
	// Pacer schedules arrivals (open loop). Nil selects the closed loop, unless
	// Arrivals is set.
	Pacer Pacer
	// Arrivals replays a schedule of arrivals that belong to given sessions (a
	// captured log): open loop, each session running its arrivals in order.
	Arrivals Arrivals
	// Duration is how long arrivals run. 0 means until Prepared.Stop is called (or
	// ctx is cancelled): a caller that must outlast something it watches, such as a
	// cutover, stops the run itself.
	Duration time.Duration
	// Sessions is the number of simulated sessions (open loop).
	Sessions int
	// SessionOffset is the index of the first session in the workload's numbering
	// (open loop): a shard of a run spread over several processes runs sessions
	// SessionOffset … SessionOffset+Sessions-1 of the run's, so no two shards
	// play the same user.
	SessionOffset int
	// Workers is the number of goroutines executing due actions (open loop), or the
	// number of connections looping (closed loop).
	Workers int
	// Think is the pause a session takes after each action before it is eligible again.
	Think Think
	// OpTimeout bounds one operation from when a worker picks it up.
	OpTimeout time.Duration
	// Grace is how long in-flight operations may run after arrivals stop.
	Grace time.Duration
	// MaxRetries bounds retries of serialization failures and deadlocks.
	MaxRetries int
	// MisroutedWrites is the fraction of writes sent to the reader endpoint.
	MisroutedWrites float64
	// Seed makes session and operation choices reproducible.
	Seed uint64
	// Recorder receives every operation's outcome.
	Recorder *Recorder
	// Progress, if set, gets one line per second.
	Progress io.Writer
	// OnTick, if set, is called after each one-second flush with the elapsed time.
	OnTick func(elapsed time.Duration)
}

// Instance is one application instance's pools.
type Instance struct {
	Writer, Reader Pool
}

// Stats is what the run itself (not the recorder) observed.
type Stats struct {
	// Start is when the run's clock started (offset 0 of every recorded time).
	Start time.Time
	// Elapsed is how long arrivals were generated.
	Elapsed time.Duration
	// Arrivals is the number of arrivals dispatched.
	Arrivals int64
	// Interrupted is true when ctx was cancelled before the run ended by its
	// duration or by Stop.
	Interrupted bool
}

// ErrNoSessions is returned when an open-loop run has no sessions to dispatch to.
var ErrNoSessions = errors.New("no sessions")

// Run generates load until cfg.Duration has passed (or, with no duration, until
// Prepared.Stop) or ctx is cancelled, then waits up to cfg.Grace for in-flight
// operations. Every finished operation is in cfg.Recorder,
// including those of an interrupted run. The clock starts at start. It is Prepare
// followed by Prepared.Run.
func Run(ctx context.Context, cfg Config, start time.Time) (Stats, error) {
	p, err := Prepare(cfg)
	if err != nil {
		return Stats{}, err
	}
	return p.Run(ctx, start)
}

// Prepared is a run whose sessions are built, so starting it makes no arrival late:
// a million sessions take tens of milliseconds to build.
type Prepared struct {
	r *runner
}

// Stop ends arrivals now, as the duration would: in-flight operations get the grace
// period and the run is not marked interrupted. It may be called at any time, more
// than once, and from any goroutine; before Run it makes Run end at once.
func (p *Prepared) Stop() { p.r.stopOnce.Do(func() { close(p.r.stop) }) }

// Prepare checks cfg and builds the sessions.
func Prepare(cfg Config) (*Prepared, error) {
	if len(cfg.Instances) == 0 && cfg.Writer != nil && cfg.Reader != nil {
		cfg.Instances = []Instance{{Writer: cfg.Writer, Reader: cfg.Reader}}
	}
	if cfg.Recorder == nil || cfg.Workload == nil || len(cfg.Instances) == 0 {
		return nil, errors.New("loadgen: Config needs Workload, Writer and Reader (or Instances) and Recorder")
	}
	for _, in := range cfg.Instances {
		if in.Writer == nil || in.Reader == nil {
			return nil, errors.New("loadgen: every instance needs a Writer and a Reader")
		}
	}
	if cfg.Retry.MaxAttempts < 1 {
		cfg.Retry.MaxAttempts = 1
	}
	if cfg.Workers <= 0 {
		return nil, errors.New("loadgen: Workers must be positive")
	}
	if cfg.Pacer != nil && cfg.Arrivals != nil {
		return nil, errors.New("loadgen: Config takes a Pacer or Arrivals, not both")
	}
	if (cfg.Pacer != nil || cfg.Arrivals != nil) && cfg.Sessions <= 0 {
		return nil, ErrNoSessions
	}
	if cfg.Duration < 0 {
		return nil, errors.New("loadgen: Duration must not be negative")
	}
	r := &runner{cfg: cfg, ops: cfg.Workload.Ops(), stop: make(chan struct{})}
	switch {
	case cfg.Pacer != nil:
		r.buildSessions()
	case cfg.Arrivals != nil:
		r.sessions = make([]workload.Session, cfg.Sessions)
		seedRnd := rand.New(rand.NewPCG(cfg.Seed, 0xabcdef))
		for i := range r.sessions {
			r.sessions[i] = cfg.Workload.NewSession(i, seedRnd)
		}
	}
	return &Prepared{r: r}, nil
}

// Run generates the load with the clock started at start (see Run).
func (p *Prepared) Run(ctx context.Context, start time.Time) (Stats, error) {
	r, cfg := p.r, p.r.cfg
	r.t0 = start
	// opCtx outlives ctx by the grace period, so in-flight work can finish.
	opCtx, cancelOps := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelOps()

	tickDone := make(chan struct{})
	stopTick := make(chan struct{})
	go r.tick(stopTick, tickDone)

	var stats Stats
	switch {
	case cfg.Arrivals != nil:
		stats = r.replay(ctx, opCtx, cancelOps)
	case cfg.Pacer == nil:
		stats = r.closed(ctx, opCtx, cancelOps)
	default:
		stats = r.open(ctx, opCtx, cancelOps)
	}
	close(stopTick)
	<-tickDone
	r.releaseHeld()
	stats.Start = start
	cfg.Recorder.FlushFinal(time.Since(start))
	return stats, nil
}

type runner struct {
	cfg      Config
	sessions []workload.Session
	idle     idleHeap
	ops      []workload.Op
	t0       time.Time
	busy     atomic.Int64
	stop     chan struct{}
	stopOnce sync.Once
}

func (r *runner) since() int64 { return int64(time.Since(r.t0)) }

func (r *runner) stopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// tick flushes the recorder once a second on the run's timeline.
func (r *runner) tick(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	next := time.Second
	t := time.NewTimer(time.Until(r.t0.Add(next)))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		row := r.cfg.Recorder.Flush(next)
		if r.cfg.Progress != nil {
			fmt.Fprintf(r.cfg.Progress, "%5.0fs  %7d ops/s  p50 %7.2f ms  p99 %8.2f ms  max %8.2f ms  errors %5d  sessions %d (busy %d)\n",
				next.Seconds(), row.Ops, row.P50Ms, row.P99Ms, row.MaxMs, row.Errors, r.cfg.Sessions, r.busy.Load())
		}
		if r.cfg.OnTick != nil {
			r.cfg.OnTick(next)
		}
		next += time.Second
		t.Reset(time.Until(r.t0.Add(next)))
	}
}

// elapsed is how long the run has lasted, capped at its duration (a run stopped by
// its duration ends exactly there, however late the scheduler noticed).
func (r *runner) elapsed() time.Duration {
	e := time.Since(r.t0)
	if r.cfg.Duration > 0 {
		e = min(e, r.cfg.Duration)
	}
	return e
}

// releaseHeld hands back the connections sessions still hold at the run's end.
func (r *runner) releaseHeld() {
	type releaser interface{ ReleaseHeld() }
	for _, in := range r.cfg.Instances {
		for _, p := range []Pool{in.Writer, in.Reader} {
			if h, ok := p.(releaser); ok {
				h.ReleaseHeld()
			}
		}
	}
}

// waitGrace waits for in-flight work, cancelling it after the grace period.
func (r *runner) waitGrace(wg *sync.WaitGroup, cancelOps context.CancelFunc) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(r.cfg.Grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		cancelOps()
		<-done
	}
}

// buildSessions creates the sessions and orders them by first readiness, staggered
// over one think time so they start spread out.
func (r *runner) buildSessions() {
	cfg := &r.cfg
	r.sessions = make([]workload.Session, cfg.Sessions)
	seedRnd := rand.New(rand.NewPCG(cfg.Seed, 0xabcdef))
	r.idle = make(idleHeap, 0, cfg.Sessions)
	for i := range r.sessions {
		r.sessions[i] = cfg.Workload.NewSession(cfg.SessionOffset+i, seedRnd)
		r.idle = append(r.idle, done{session: int32(i), ready: int64(cfg.Think.Sample(seedRnd))})
	}
	// Linear-time heap construction rather than n pushes.
	r.idle.init()
}

// open runs the open-loop schedule: the pacer says when each arrival is due, the idle
// session whose think time ends first takes it, and a bounded pool of workers runs it.
// Sessions are data on a heap, never goroutines.
func (r *runner) open(ctx, opCtx context.Context, cancelOps context.CancelFunc) Stats {
	cfg := &r.cfg
	jobs := make(chan job, cfg.Workers)
	// Workers never block returning a session: between two collects the scheduler
	// takes out one session at a time, so at most one in its hand, cfg.Workers queued
	// in jobs and cfg.Workers running can come back before it drains this channel.
	returned := make(chan done, min(cfg.Sessions, 2*cfg.Workers+1))
	var wg sync.WaitGroup
	for i := range cfg.Workers {
		w := r.newWorker(i)
		wg.Go(func() { w.serve(opCtx, jobs, returned) })
	}
	arrivals := r.dispatch(ctx, jobs, returned)
	interrupted := ctx.Err() != nil
	elapsed := r.elapsed()
	close(jobs)
	r.waitGrace(&wg, cancelOps)
	return Stats{Elapsed: elapsed, Arrivals: arrivals, Interrupted: interrupted}
}

// job is one due action handed from the scheduler to a worker.
type job struct {
	session  int32
	intended int64
}

// dispatch is the open loop's scheduler. It hands each arrival the pacer schedules,
// when it is due, to a worker with the idle session that has been ready longest,
// until the schedule or the run ends, the run is stopped or ctx is cancelled. It
// returns the number of arrivals handed out.
func (r *runner) dispatch(ctx context.Context, jobs chan<- job, returned <-chan done) int64 {
	cfg := &r.cfg
	idle := r.idle
	var arrivals int64
	prev := time.Duration(-1)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	end := cfg.Duration
	if end == 0 {
		end = -1 // until stopped
	}
loop:
	for {
		due, ok := cfg.Pacer.Next(prev)
		if !ok || (end >= 0 && due >= end) {
			// The schedule has ended, or the run does before the next arrival: hold
			// until the run's end.
			r.waitUntil(ctx, timer, end)
			break
		}
		prev = due
		if !r.waitUntil(ctx, timer, due) {
			break
		}
		idle.collect(returned)
		if len(idle) == 0 {
			// Every session is busy: this arrival waits, and its latency keeps counting.
			select {
			case <-ctx.Done():
				break loop
			case <-r.stop:
				break loop
			case d := <-returned:
				idle.push(d)
			}
		}
		d := idle.pop()
		select {
		case jobs <- job{session: d.session, intended: int64(due)}:
			arrivals++
		case <-ctx.Done():
			idle.push(d)
			break loop
		case <-r.stop:
			// Stopped while every worker was busy: this arrival is past the run's end.
			idle.push(d)
			break loop
		}
	}
	return arrivals
}

// waitUntil waits until offset d of the run (forever when d < 0) and reports
// whether arrivals go on: false once the run is stopped or ctx is cancelled. It
// reuses timer, so waiting for an arrival allocates nothing.
func (r *runner) waitUntil(ctx context.Context, timer *time.Timer, d time.Duration) bool {
	var tc <-chan time.Time
	if d >= 0 {
		wait := time.Until(r.t0.Add(d))
		if wait <= 0 {
			return ctx.Err() == nil && !r.stopped()
		}
		timer.Reset(wait)
		tc = timer.C
	}
	select {
	case <-ctx.Done():
		return false
	case <-r.stop:
		return false
	case <-tc:
		return true
	}
}

// collect puts every session the workers have returned so far back on the heap,
// without waiting for more, so the next arrival goes to the one ready longest.
func (h *idleHeap) collect(returned <-chan done) {
	for {
		select {
		case d := <-returned:
			h.push(d)
		default:
			return
		}
	}
}
