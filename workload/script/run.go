package script

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rehearse-dev/rehearse/workload"
)

// frame is one execution's working state. Frames are pooled, so a steady-state
// execution allocates nothing.
type frame struct {
	slots   []value
	arena   []byte   // the bytes of text values (\gset, \aset), reset per execution
	params  [][]byte // the current statement's parameters
	scratch []byte   // their text
	sql     []byte   // a compound command's text
	row     [][]byte // the last row of a result, kept for \gset and \aset
	rowNull []bool
	txid    [36]byte
	rng     splitmix
	ev      evaluator

	// where debug() was called from
	w    *Workload
	file string
	line int
}

func newFrame(n int) *frame {
	f := &frame{slots: make([]value, n)}
	f.ev = evaluator{slots: f.slots, rng: &f.rng, debug: f.debug}
	return f
}

func (f *frame) debug(v value) {
	f.w.debugf("debug(%s:%d): %s\n", f.file, f.line, v)
}

// debugf writes a line of debug() output to the log given to Setup, if any.
func (w *Workload) debugf(format string, args ...any) {
	w.debugMu.Lock()
	defer w.debugMu.Unlock()
	if w.debugOut != nil {
		fmt.Fprintf(w.debugOut, format, args...)
	}
}

// resultError is a failure found in a statement's result after the statement ran
// (a \gset without exactly one row): the statement's outcome is known.
type resultError struct{ msg string }

func (e *resultError) Error() string { return e.msg }

// begin prepares the frame for an execution of session s.
func (f *frame) begin(w *Workload, s *workload.Session, sc *script) {
	clear(f.slots)
	f.arena = f.arena[:0]
	f.w, f.file = w, sc.file
	f.rng = splitmix{uint64(s.Token)}
	f.slots[slotClientID] = intValue(s.Customer)
	f.slots[slotSessionID] = intValue(s.Customer)
	f.slots[slotScale] = intValue(w.scale)
	f.slots[slotRandomSeed] = intValue(int64(w.seed))
	f.slots[slotDefaultSeed] = intValue(w.defaultSeed)
	if w.store != nil {
		w.store.load(s.Customer, f.slots)
	}
}

// run executes one script from start to end on c: the operation of each script.
// An execution is acknowledged when the whole script completed; a tracked script's
// txid is then recorded, or recorded as ambiguous when the connection broke while
// a statement that could have committed was in flight.
func (w *Workload) run(ctx context.Context, c *pgx.Conn, s *workload.Session, sc *script) error {
	f := w.frames.Get().(*frame)
	defer w.frames.Put(f)
	f.begin(w, s, sc)
	start := f.rng.s
	var key [16]byte
	if sc.usesTxid {
		key = w.newKey()
		hexUUID(f.txid[:], key)
		f.slots[slotTxid] = value{k: kText, b: f.txid[:]}
	}
	touched, err := w.exec(ctx, c, f, sc)
	if err == nil && c.PgConn().TxStatus() != 'I' {
		rollback(ctx, c)
		err = fmt.Errorf("%s: the script ended inside a transaction block: end it with COMMIT or END (nothing was committed)", sc.file)
	}
	s.Token = int64(f.rng.s)
	if w.store != nil {
		w.store.save(s.Customer, f.slots)
	}
	switch {
	case err == nil:
		if sc.tracked && touched {
			w.log.add(key, false)
		}
	case errors.Is(err, workload.ErrAmbiguous):
		if sc.tracked && touched {
			w.log.add(key, true)
		}
	default:
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") {
			// A retried transaction draws the same values again, as pgbench's do.
			s.Token = int64(start)
		}
		rollback(ctx, c)
	}
	return err
}

// rollback leaves the connection outside any transaction after a failure.
func rollback(ctx context.Context, c *pgx.Conn) {
	if !c.IsClosed() && c.PgConn().TxStatus() != 'I' {
		_, _ = c.PgConn().Exec(ctx, "ROLLBACK").ReadAll()
	}
}

// exec runs the script's instructions. touched reports whether a statement using
// :txid ran or was in flight.
func (w *Workload) exec(ctx context.Context, c *pgx.Conn, f *frame, sc *script) (touched bool, err error) {
	prog := sc.prog
	for pc := 0; pc < len(prog); pc++ {
		in := &prog[pc]
		f.line = in.line
		switch in.op {
		case opSet:
			v, err := f.ev.eval(in.expr)
			if err != nil {
				return touched, fmt.Errorf("%s:%d: \\set %s: %w", sc.file, in.line, w.sym.names[in.slot], err)
			}
			f.slots[in.slot] = v
		case opBranch:
			v, err := f.ev.eval(in.expr)
			if err != nil {
				return touched, fmt.Errorf("%s:%d: condition: %w", sc.file, in.line, err)
			}
			if !v.truth() {
				pc = in.target - 1
			}
		case opJump:
			pc = in.target - 1
		case opSleep:
			if err := w.sleep(ctx, f, in); err != nil {
				return touched, fmt.Errorf("%s:%d: \\sleep: %w", sc.file, in.line, err)
			}
		case opSQL:
			st := in.stmt
			status := c.PgConn().TxStatus()
			// Could this statement commit? COMMIT in a transaction block, anything
			// but BEGIN and ROLLBACK outside one, and a compound command always.
			mayCommit := st.compound ||
				status == 'I' && st.txn != txnBegin && st.txn != txnRollback ||
				status == 'T' && st.txn == txnCommit
			touched = touched || st.usesTxid
			var sent bool
			if st.compound {
				sent, err = w.simple(ctx, c, f, st)
			} else {
				sent, err = w.prepared(ctx, c, f, st)
			}
			if err == nil {
				continue
			}
			var re *resultError
			var pgErr *pgconn.PgError
			if sent && mayCommit && sc.kind == workload.Write && !errors.As(err, &re) && !errors.As(err, &pgErr) {
				// The connection broke (or the deadline passed) with the statement
				// in flight: it may or may not have committed.
				return touched, fmt.Errorf("%s:%d: %w: %w", sc.file, in.line, workload.ErrAmbiguous, err)
			}
			return touched, fmt.Errorf("%s:%d: %s: %w", sc.file, in.line, st.first, err)
		}
	}
	return touched, nil
}

func (w *Workload) sleep(ctx context.Context, f *frame, in *instr) error {
	n := in.sleepN
	if in.slot >= 0 {
		v := f.slots[in.slot]
		switch v.k {
		case kInt:
			n = v.int()
		case kDouble:
			n = int64(v.float()) // pgbench reads the number's integer part
		case kText:
			i, err := strconv.ParseInt(leadingInt(v.b), 10, 64)
			if err != nil {
				return fmt.Errorf("invalid sleep time %q for variable %q: it must be an integer", v.b, w.sym.names[in.slot])
			}
			n = i
		default:
			return fmt.Errorf("invalid sleep time (%s) for variable %q: it must be an integer", v.typeName(), w.sym.names[in.slot])
		}
	}
	if n <= 0 {
		return nil
	}
	if n > math.MaxInt64/int64(in.sleepUnit) {
		return fmt.Errorf("sleep time %d is too long", n)
	}
	t := time.NewTimer(time.Duration(n) * in.sleepUnit)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// leadingInt returns the optionally signed digits at the start of b.
func leadingInt(b []byte) string {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	j := i
	if j < len(b) && (b[j] == '+' || b[j] == '-') {
		j++
	}
	for j < len(b) && isDigit(b[j]) {
		j++
	}
	return string(b[i:j])
}

// layoutParams lays out the statement's parameters as text; NULL is a nil parameter.
func (f *frame) layoutParams(st *stmt, names []string) ([][]byte, error) {
	f.params = f.params[:0]
	f.scratch = f.scratch[:0]
	for _, slot := range st.params {
		v := f.slots[slot]
		switch v.k {
		case kUndef:
			return nil, &resultError{fmt.Sprintf("undefined variable %q", names[slot])}
		case kNull:
			f.params = append(f.params, nil)
		case kText:
			f.params = append(f.params, v.b)
		default:
			// Earlier parameters keep pointing at the old array if this append
			// reallocates, which is fine: nothing writes to it again.
			from := len(f.scratch)
			f.scratch = v.appendText(f.scratch)
			f.params = append(f.params, f.scratch[from:len(f.scratch):len(f.scratch)])
		}
	}
	return f.params, nil
}

// prepared runs a command as `pgbench -M prepared` does: a statement prepared once
// per connection, then one round trip (Bind, Execute, Sync) with text parameters.
// On a connection whose exec mode keeps no statements (through PgBouncer in
// transaction pooling, where a named statement may be gone by the next
// transaction) it runs as `pgbench -M extended` does instead: the unnamed
// statement, parsed, bound and executed in one round trip. sent reports whether
// the statement may have reached the server.
func (w *Workload) prepared(ctx context.Context, c *pgx.Conn, f *frame, st *stmt) (sent bool, err error) {
	params, err := f.layoutParams(st, w.sym.names)
	if err != nil {
		return false, err
	}
	var rr *pgconn.ResultReader
	if keepsStatements(c) {
		// Preparing under the SQL text as name lets pgx name the statement after
		// its hash and find it again on this connection without a round trip.
		sd, err := c.Prepare(ctx, st.sql, st.sql)
		if err != nil {
			return false, err
		}
		rr = c.PgConn().ExecStatement(ctx, sd, params, nil, nil)
	} else {
		rr = c.PgConn().ExecParams(ctx, st.sql, params, nil, nil, nil)
	}
	if st.result == resultNone {
		_, err = rr.Close()
		return mayHaveRun(err), err
	}
	rows := f.keepLastRow(rr)
	if _, err := rr.Close(); err != nil {
		return mayHaveRun(err), err
	}
	return true, f.store(st, rr.FieldDescriptions(), rows, w.sym.names)
}

// simple runs a compound command (joined with \;) in one round trip over the
// simple protocol, the only one that takes several commands at once, with the
// variables inlined as quoted literals; \gset applies to the last query's result,
// \aset to every query's that returned rows.
func (w *Workload) simple(ctx context.Context, c *pgx.Conn, f *frame, st *stmt) (sent bool, err error) {
	f.sql = f.sql[:0]
	for i, piece := range st.pieces {
		f.sql = append(f.sql, piece...)
		if i < len(st.params) {
			v := f.slots[st.params[i]]
			if v.k == kUndef {
				return false, &resultError{fmt.Sprintf("undefined variable %q", w.sym.names[st.params[i]])}
			}
			f.sql = appendLiteral(f.sql, v)
		}
	}
	mrr := c.PgConn().Exec(ctx, string(f.sql))
	var (
		lastRows   = -1
		lastFields []pgconn.FieldDescription
		storeErr   error
	)
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		rows := f.keepLastRow(rr)
		fields := rr.FieldDescriptions()
		if _, err := rr.Close(); err != nil {
			break
		}
		if st.result == resultAset && rows > 0 && storeErr == nil {
			storeErr = f.store(st, fields, 1, w.sym.names)
		}
		lastRows, lastFields = rows, append(lastFields[:0], fields...)
	}
	if err := mrr.Close(); err != nil {
		return mayHaveRun(err), err
	}
	if storeErr != nil {
		return true, storeErr
	}
	if st.result == resultGset {
		return true, f.store(st, lastFields, max(lastRows, 0), w.sym.names)
	}
	return true, nil
}

// keepsStatementsKey marks, in a connection's custom data, whether its exec mode
// keeps prepared statements.
const keepsStatementsKey = "rehearse/workload/script: keeps statements"

// keepsStatements reports whether c's pgx exec mode keeps prepared statements
// (pgx's default). It is worked out once per connection: Conn.Config copies the
// whole configuration.
func keepsStatements(c *pgx.Conn) bool {
	data := c.PgConn().CustomData()
	if keeps, ok := data[keepsStatementsKey].(bool); ok {
		return keeps
	}
	mode := c.Config().DefaultQueryExecMode
	keeps := mode == pgx.QueryExecModeCacheStatement || mode == pgx.QueryExecModeCacheDescribe
	data[keepsStatementsKey] = keeps
	return keeps
}

// mayHaveRun reports whether a statement that ended with err may have reached the
// server. (SafeToRetry allocates, so it is asked only on failure.)
func mayHaveRun(err error) bool { return err == nil || !pgconn.SafeToRetry(err) }

// keepLastRow reads a result's rows, keeping a copy of the last, and returns how
// many there were.
func (f *frame) keepLastRow(rr *pgconn.ResultReader) int {
	n := 0
	mark := len(f.arena)
	for rr.NextRow() {
		n++
		vals := rr.Values()
		// Each row replaces the one before in the arena; what is below mark belongs
		// to variables set earlier and is never overwritten.
		f.arena = f.arena[:mark]
		f.row = f.row[:0]
		f.rowNull = f.rowNull[:0]
		for _, v := range vals {
			from := len(f.arena)
			f.arena = append(f.arena, v...)
			f.row = append(f.row, f.arena[from:len(f.arena):len(f.arena)])
			f.rowNull = append(f.rowNull, v == nil)
		}
	}
	return n
}

// store sets the variables named after the result's columns from its last row.
// \gset needs exactly one row.
func (f *frame) store(st *stmt, fields []pgconn.FieldDescription, rows int, names []string) error {
	if st.result == resultGset && rows != 1 {
		return &resultError{fmt.Sprintf("\\gset expected one row, got %d", rows)}
	}
	if rows == 0 {
		return nil
	}
	for i, fd := range fields {
		slot, ok := st.columns[fd.Name]
		if !ok || i >= len(f.row) {
			continue // no script reads this variable
		}
		if f.rowNull[i] {
			f.slots[slot] = nullValue()
		} else {
			f.slots[slot] = value{k: kText, b: f.row[i]}
		}
	}
	return nil
}

// appendLiteral inlines a value in SQL text: NULL, or a quoted literal, which the
// server types from its context as it types a text parameter.
func appendLiteral(b []byte, v value) []byte {
	if v.k == kNull {
		return append(b, "NULL"...)
	}
	text := v.appendText(nil)
	escape := false
	for _, c := range text {
		escape = escape || c == '\\'
	}
	if escape {
		b = append(b, " E'"...)
	} else {
		b = append(b, " '"...)
	}
	for _, c := range text {
		switch c {
		case '\'':
			b = append(b, "''"...)
		case '\\':
			b = append(b, `\\`...)
		default:
			b = append(b, c)
		}
	}
	return append(b, "' "...)
}

// newKey returns a fresh txid: unique within the run by a counter, and across runs
// by a random salt.
func (w *Workload) newKey() [16]byte {
	n := w.seq.Add(1)
	var k [16]byte
	binary.BigEndian.PutUint64(k[:8], w.saltHi^mix64(n))
	binary.BigEndian.PutUint64(k[8:], w.saltLo^n)
	k[6] = k[6]&0x0f | 0x40 // version 4
	k[8] = k[8]&0x3f | 0x80 // RFC 4122 variant
	return k
}

// hexUUID writes k in the canonical 8-4-4-4-12 form.
func hexUUID(dst []byte, k [16]byte) {
	hex.Encode(dst[0:8], k[0:4])
	dst[8] = '-'
	hex.Encode(dst[9:13], k[4:6])
	dst[13] = '-'
	hex.Encode(dst[14:18], k[6:8])
	dst[18] = '-'
	hex.Encode(dst[19:23], k[8:10])
	dst[23] = '-'
	hex.Encode(dst[24:36], k[10:16])
}

// sessionStore keeps the variables that carry over from one execution of a session
// to its next: only those some script may read before setting, and only for
// sessions that set one, in a slice per session inside sharded maps (a run may have
// a million sessions; most scripts need none of this).
type sessionStore struct {
	slots  []int // the persistent slots
	shards [64]storeShard
}

type storeShard struct {
	mu sync.Mutex
	m  map[int64][]value
	_  [40]byte // keep neighbouring shards' locks off one cache line
}

func newSessionStore(slots []int) *sessionStore {
	st := &sessionStore{slots: slots}
	for i := range st.shards {
		st.shards[i].m = map[int64][]value{}
	}
	return st
}

func (st *sessionStore) shard(session int64) *storeShard {
	return &st.shards[uint64(session)%uint64(len(st.shards))]
}

// load copies the session's saved values into slots.
func (st *sessionStore) load(session int64, slots []value) {
	sh := st.shard(session)
	sh.mu.Lock()
	saved := sh.m[session]
	for i, slot := range st.slots {
		if i < len(saved) && saved[i].k != kUndef {
			slots[slot] = saved[i]
		}
	}
	sh.mu.Unlock()
}

// save keeps the session's persistent values, copying their text (which lives in
// the frame's arena).
func (st *sessionStore) save(session int64, slots []value) {
	any := false
	for _, slot := range st.slots {
		any = any || slots[slot].k != kUndef
	}
	if !any {
		return
	}
	sh := st.shard(session)
	sh.mu.Lock()
	saved := sh.m[session]
	if saved == nil {
		saved = make([]value, len(st.slots))
		sh.m[session] = saved
	}
	for i, slot := range st.slots {
		v := slots[slot]
		if v.k == kText {
			v.b = append(saved[i].b[:0:0], v.b...)
		}
		saved[i] = v
	}
	sh.mu.Unlock()
}
