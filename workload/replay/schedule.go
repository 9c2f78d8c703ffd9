package replay

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Arrivals is a replay's schedule: the captured statements in the order they are
// due, each belonging to a session. It is what loadgen.Config.Arrivals takes.
type Arrivals interface {
	// Next returns the next statement's session (0 ≤ session < Sessions()) and
	// when it is due (its captured start, relative to the first replayed
	// statement's, divided by Speed); ok is false when the schedule has ended.
	// Due times do not decrease.
	Next() (session int32, due time.Duration, ok bool)
	// Err returns what ended the schedule early: a read error, the context's
	// cancellation, or a capture that changed since Open. Nil after a complete
	// schedule.
	Err() error
	// Close ends the schedule and frees what it holds; the statements not yet
	// run are dropped.
	Close() error
}

// maxPending bounds the statements the schedule holds back to put them in start
// order: past it, the earliest goes out even if one that started earlier may
// follow (it is then scheduled late, not early).
const maxPending = 100_000

// Arrivals opens the schedule: a second pass over the capture, streaming, which
// yields each statement when the one before it has been taken. Only one schedule
// is open at a time; close it before opening another. The statements of each
// session wait in a queue for the load generator to run them (Next), so memory
// holds the statements due but not yet run, and those read ahead of their due
// time to put starts in order (see Workload.window).
func (w *Workload) Arrivals(ctx context.Context) (Arrivals, error) {
	f, err := openCapture(w.cfg.Capture)
	if err != nil {
		return nil, err
	}
	s, err := w.newSchedule(ctx, f, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// newSchedule is the second pass over r; Close closes c.
func (w *Workload) newSchedule(ctx context.Context, r io.Reader, c io.Closer) (*schedule, error) {
	q := newQueues()
	if !w.active.CompareAndSwap(nil, q) {
		return nil, errors.New("replay: a schedule is already open: close it first")
	}
	s := &schedule{w: w, ctx: ctx, closer: c, log: newCSVLog(w.cfg.Capture, r), q: q}
	s.p = newParser(w.cfg.Capture, w.cfg.Filter, true, s)
	return s, nil
}

// schedule is the second pass: it reads the capture as far as it must to know the
// next statement to start. Statements logged at their end start before the log
// line of a statement logged earlier may have: they wait on a heap until no
// statement still to be read can start before them, that is until the log's time
// is window past their start (window is the most any statement of the capture
// started before the log time at which it was read, measured by the first pass,
// at most maxWindow).
type schedule struct {
	w       *Workload
	ctx     context.Context
	closer  io.Closer
	log     *csvlog
	p       *parser
	q       *queues
	pending stmtHeap
	rec     record
	eof     bool
	err     error
	lastDue time.Duration
	stmts   int64
	closed  bool
}

// Next implements Arrivals.
func (s *schedule) Next() (int32, time.Duration, bool) {
	for s.err == nil {
		if n := len(s.pending); n > 0 && (s.eof || n >= maxPending || s.p.maxLog-s.pending[0].start >= s.w.window) {
			st := heap.Pop(&s.pending).(*stmt)
			due := time.Duration(float64(st.start-s.w.origin) / s.w.speed)
			if due < s.lastDue {
				due = s.lastDue
			}
			s.lastDue = due
			s.q.push(st.session, st)
			return st.session, due, true
		}
		if s.eof {
			return 0, 0, false
		}
		s.read()
	}
	return 0, 0, false
}

// read reads one record; at the end it ends the sessions still open and checks
// the pass found what the first did.
func (s *schedule) read() {
	if s.closed {
		s.err = errors.New("replay: the schedule is closed")
		return
	}
	if s.log.records&1023 == 0 && s.ctx.Err() != nil {
		s.err = fmt.Errorf("replay: reading %s: %w", s.w.cfg.Capture, s.ctx.Err())
		return
	}
	// The first pass counted the records; any appended since are not replayed.
	var err error
	if s.log.records >= s.w.records {
		err = io.EOF
	} else {
		err = s.log.next(&s.rec)
	}
	if err == nil {
		err = s.p.feed(&s.rec)
	}
	switch {
	case err == io.EOF:
		s.p.finish()
		s.eof = true
		if s.stmts != s.w.summary.Statements+s.w.summary.SessionEnds {
			s.err = changed(s.w.cfg.Capture)
		}
	case err != nil:
		s.err = err
	}
}

func changed(path string) error {
	return fmt.Errorf("replay: %s changed since it was opened: replay a capture that is no longer written to", path)
}

// statement is the sink of the second pass: it gives each statement its
// operation and holds it until it is due in order.
func (s *schedule) statement(st *stmt, fp []byte, _ *session) {
	w := s.w
	s.stmts++
	if int(st.session) >= w.summary.Sessions {
		s.err = changed(w.cfg.Capture)
		return
	}
	op := w.endOp
	if st.proto != protoEnd {
		if i, ok := w.opIndex[string(fp)]; ok {
			op = int(i)
		} else if st.a.write {
			op = w.otherWrite
		} else {
			op = w.otherRead
		}
	}
	if op < 0 {
		// A statement the first pass did not see.
		s.err = changed(w.cfg.Capture)
		return
	}
	st.op = uint16(op)
	heap.Push(&s.pending, st)
}

func (s *schedule) capturedError(*session, string) {}

// Err implements Arrivals.
func (s *schedule) Err() error { return s.err }

// Close implements Arrivals.
func (s *schedule) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.w.active.CompareAndSwap(s.q, nil)
	s.pending = nil
	return s.closer.Close()
}

// stmtHeap orders statements by start, then log order.
type stmtHeap []*stmt

func (h stmtHeap) Len() int { return len(h) }
func (h stmtHeap) Less(i, j int) bool {
	return h[i].start < h[j].start || h[i].start == h[j].start && h[i].seq < h[j].seq
}
func (h stmtHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *stmtHeap) Push(x any)   { *h = append(*h, x.(*stmt)) }
func (h *stmtHeap) Pop() any {
	old := *h
	n := len(old)
	x := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return x
}

// queues hold each session's statements between the schedule, which hands them
// out, and the workers that run them: a queue per session with statements due
// but not yet run, and the statement a worker is running (kept for its retries).
// A session without either has no entry, so memory follows the statements
// waiting, not the capture.
type queues struct {
	shards [64]queueShard
}

type queueShard struct {
	mu sync.Mutex
	m  map[int32]*slot
	// free holds slots of sessions that had nothing left, for reuse: most
	// sessions have one statement waiting at a time.
	free []*slot
}

type slot struct {
	q    []*stmt
	head int
	cur  *stmt
}

func newQueues() *queues {
	q := &queues{}
	for i := range q.shards {
		q.shards[i].m = map[int32]*slot{}
	}
	return q
}

func (q *queues) shard(s int32) *queueShard { return &q.shards[uint32(s)%uint32(len(q.shards))] }

// push queues st, due next after the session's statements already queued.
func (q *queues) push(s int32, st *stmt) {
	sh := q.shard(s)
	sh.mu.Lock()
	sl := sh.m[s]
	if sl == nil {
		if n := len(sh.free); n > 0 {
			sl = sh.free[n-1]
			sh.free = sh.free[:n-1]
		} else {
			sl = &slot{}
		}
		sh.m[s] = sl
	}
	sl.q = append(sl.q, st)
	sh.mu.Unlock()
}

// pop makes the session's next statement the one it runs, and returns it (nil if
// none is queued).
func (q *queues) pop(s int32) *stmt {
	sh := q.shard(s)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sl := sh.m[s]
	if sl == nil || sl.head == len(sl.q) {
		return nil
	}
	st := sl.q[sl.head]
	sl.q[sl.head] = nil
	sl.head++
	if sl.head == len(sl.q) {
		sl.q, sl.head = sl.q[:0], 0
	}
	sl.cur = st
	return st
}

// current returns the statement the session runs.
func (q *queues) current(s int32) *stmt {
	sh := q.shard(s)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sl := sh.m[s]; sl != nil {
		return sl.cur
	}
	return nil
}

// done forgets st, which ran: it will not be retried.
func (q *queues) done(s int32, st *stmt) {
	sh := q.shard(s)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sl := sh.m[s]
	if sl == nil || sl.cur != st {
		return
	}
	sl.cur = nil
	if sl.head == len(sl.q) {
		delete(sh.m, s)
		if len(sh.free) < 64 && cap(sl.q) <= 16 {
			sl.q, sl.head = sl.q[:0], 0
			sh.free = append(sh.free, sl)
		}
	}
}
