package replay

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
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
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("replay: %w", err)
	}
	s, err := w.newSchedule(ctx, f, st.Size(), f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// newSchedule is the second pass over the size bytes of r; Close closes c.
func (w *Workload) newSchedule(ctx context.Context, r io.ReaderAt, size int64, c io.Closer) (*schedule, error) {
	q := newQueues()
	if !w.active.CompareAndSwap(nil, q) {
		return nil, errors.New("replay: a schedule is already open: close it first")
	}
	s := &schedule{w: w, ctx: ctx, closer: c, at: r, size: size,
		log: newCSVLog(w.cfg.Capture, io.NewSectionReader(r, 0, size)), q: q}
	s.p = newParser(w.cfg.Capture, w.cfg.Filter, true, s)
	if len(w.long) > 0 {
		s.early = slices.Clone(w.long)
		slices.SortFunc(s.early, func(a, b longStmt) int { return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.rec, b.rec)) })
		s.byRec = make(map[int64]int, len(s.early))
		for i, e := range s.early {
			s.byRec[e.rec] = i
		}
	}
	return s, nil
}

// schedule is the second pass: it reads the capture as far as it must to know the
// next statement to start. Statements logged at their end start before the log
// line of a statement logged earlier may have: they wait on a heap until no
// statement still to be read can start before them, that is until the log's time
// is window past their start (window is the most any statement of the capture
// started before the log time at which it was read, measured by the first pass,
// at most lagLimit). A statement that started longer before its log line (a long
// query logged when it ended) is read out of order, from the offset the first
// pass noted, before any statement that started after it goes out.
type schedule struct {
	w       *Workload
	ctx     context.Context
	closer  io.Closer
	at      io.ReaderAt
	size    int64
	early   []longStmt    // by start
	ei      int           // the first of early not yet read
	byRec   map[int64]int // record number → index in early
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
			if s.readEarly(s.pending[0].start) {
				continue
			}
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
		err = s.inOrder()
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

// inOrder feeds the record just read to the parser, unless it was read early.
func (s *schedule) inOrder() error {
	i, ok := s.byRec[s.log.records]
	if !ok {
		return s.p.feed(&s.rec)
	}
	e := &s.early[i]
	if !e.done {
		// Its start came first: it is read in order after all.
		e.done = true
		return s.p.feed(&s.rec)
	}
	if e.first {
		// The session was numbered when read early, with the number it gets here.
		if s.p.next != e.session {
			return changed(s.w.cfg.Capture)
		}
		s.p.next++
	}
	return nil
}

// readEarly reads the next long statement out of log order if it started by
// before; it reports whether it did.
func (s *schedule) readEarly(before int64) bool {
	for s.ei < len(s.early) && s.early[s.ei].done {
		s.ei++
	}
	if s.ei == len(s.early) || s.early[s.ei].start > before {
		return false
	}
	e := &s.early[s.ei]
	e.done = true
	// A small buffer: most records are short, and a long one is read whole anyway.
	log := newCSVLogSize(s.w.cfg.Capture, io.NewSectionReader(s.at, e.off, s.size-e.off), 4096)
	var rec record
	if err := log.next(&rec); err != nil {
		s.err = changed(s.w.cfg.Capture)
		return true
	}
	stmts := s.stmts
	// The log's time stays where the reading in order is.
	maxLog := s.p.maxLog
	s.p.force = e.session
	err := s.p.feed(&rec)
	s.p.force, s.p.maxLog = -1, maxLog
	if err != nil || s.stmts != stmts+1 {
		s.err = changed(s.w.cfg.Capture)
	}
	return true
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
	if sl == nil {
		return nil
	}
	if sl.head == len(sl.q) {
		// Nothing queued: the statement that failed last must not run again.
		sl.cur = nil
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
