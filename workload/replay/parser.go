package replay

import (
	"hash/maphash"
	"math"
	"sort"
	"strings"
)

// proto is how a captured statement is replayed.
type proto uint8

const (
	// protoSimple: a simple query (several statements in one text are one round
	// trip, as they were).
	protoSimple proto = iota
	// protoUnnamed: the extended protocol with the unnamed statement (parse, bind,
	// execute every time), with the captured parameters as text.
	protoUnnamed
	// protoNamed: the extended protocol with a statement prepared under a name once
	// per connection, as the client did, with the captured parameters as text.
	protoNamed
	// protoCopyIn: COPY … FROM STDIN, replayed with no rows (the log holds none).
	protoCopyIn
	// protoCopyOut: COPY … TO STDOUT, its rows read and discarded.
	protoCopyOut
	// protoStandIn: a statement known only from its ERROR record, whose
	// parameters were not logged: it is not sent and fails with the captured
	// SQLSTATE, so that a transaction block it aborted is aborted in the replay too.
	protoStandIn
	// protoEnd: the end of a captured session that still held its connection (an
	// open transaction block, or session state): the connection is closed, as the
	// server ended that session.
	protoEnd
)

// stmt is one arrival of the replay: a captured statement, or a session's end.
type stmt struct {
	seq      uint64 // log order, to break ties between equal starts
	start    int64  // when it started in the capture, Unix nanoseconds
	session  int32
	op       uint16
	proto    proto
	first    bool // the first statement of its session (the first pass's scratch)
	inBlock  bool // the captured session was in a transaction block before it
	hold     bool // the session keeps its connection after it (block or session state)
	a        analysis
	sqlState string // protoStandIn: the captured error
	text     string
	params   [][]byte
}

// session is a captured session's state while the log is read.
type session struct {
	idx       int32 // its index in the replay; -1 until a statement of it is replayed
	lastStart int64
	pending   int64 // start of an extended statement's parse or bind; 0 if none
	inBlock   bool
	pinned    bool
	// awaiting: its last statement was logged when it started (log_statement), so
	// an ERROR of the session right after it is that statement's outcome.
	awaiting bool
	lastHash uint64
	// bound holds the parameters of the last bind logged, as logged, for an
	// execute that fails: boundHash is its text's hash.
	bound      string
	boundNamed bool
	boundHash  uint64
	fp         *fpStat // the first pass's entry for its last statement
}

// sink receives what the parser finds: the first pass counts, the second schedules.
type sink interface {
	// statement receives a statement (or a session's end: st.proto == protoEnd,
	// fp nil) with its fingerprint. st and fp are only valid during the call when
	// the parser does not keep statements.
	statement(st *stmt, fp []byte, s *session)
	// capturedError receives an error the capture recorded for the session's
	// last statement.
	capturedError(s *session, sqlState string)
}

// parser turns csvlog records into statements, session by session. Both passes
// run it over the same records, so they find the same statements, sessions and
// indexes.
type parser struct {
	path     string
	filter   Filter
	keep     bool
	sink     sink
	sessions map[string]*session
	next     int32
	seq      uint64
	maxLog   int64 // the latest log_time read
	fp       []byte
	lx       lexer
	seed     maphash.Seed
	scratch  stmt
	seen     *seenCounts // first pass: what the capture holds, for error messages
	pvals    [][]byte    // first pass: scratch for parameters
	pbuf     []byte

	// force, when not negative, is the number of a session first seen in a
	// record read out of log order.
	force int32

	longest      int64 // the longest duration logged with a statement
	unattributed int64 // ERRORs with no statement to attribute them to
	fetches      int64 // "execute fetch from" lines: rows of a portal already replayed
}

func newParser(path string, filter Filter, keep bool, s sink) *parser {
	return &parser{path: path, filter: filter, keep: keep, sink: s, sessions: map[string]*session{},
		seed: maphash.MakeSeed(), maxLog: math.MinInt64, force: -1}
}

// session returns the state of session id, creating it.
func (p *parser) session(id string) *session {
	s := p.sessions[id]
	if s == nil {
		s = &session{idx: -1}
		// The key is cloned: the record's strings share one allocation.
		p.sessions[strings.Clone(id)] = s
	}
	return s
}

// feed reads one record.
func (p *parser) feed(rec *record) error {
	if rec.logTime > p.maxLog {
		p.maxLog = rec.logTime
	}
	// Only client sessions replay: not the postmaster, background workers or
	// walsenders (pg_cron jobs, replication commands).
	if rec.session == "" || rec.backendType != "" && rec.backendType != "client backend" {
		return nil
	}
	switch rec.severity {
	case "LOG":
		m := parseLogMessage(rec.message)
		switch m.kind {
		case msgStatement, msgExecute:
			return p.logged(rec, m)
		case msgParseBind:
			if p.filter.match(rec) {
				p.begun(rec, m)
			}
		case msgFetch:
			p.fetches++
		case msgDisconnect:
			p.disconnect(rec)
		}
	case "ERROR":
		return p.failed(rec)
	}
	return nil
}

// params reads a parameter list: into fresh memory when statements are kept,
// else into the parser's scratch buffers.
func (p *parser) params(list string) ([][]byte, error) {
	if p.keep {
		vals, _, err := parseParams(list)
		return vals, err
	}
	if cap(p.pbuf) < len(list) {
		p.pbuf = make([]byte, 0, 2*len(list))
	}
	vals, _, err := parseParamsInto(p.pvals, p.pbuf[:0], list)
	if err == nil {
		p.pvals = vals
	}
	return vals, err
}

// begun handles the parse or bind of an extended-protocol statement, logged with
// their durations before its execute: the statement started with the first. A
// bind's parameters are kept for an execute that fails, which only its ERROR
// record then shows.
func (p *parser) begun(rec *record, m logMsg) {
	s := p.session(rec.session)
	if start := rec.logTime - m.duration; s.pending == 0 || start < s.pending {
		s.pending = start
	}
	if !m.bind {
		return
	}
	// Only kept, not read: most binds are followed by their execute, which logs
	// the parameters again.
	s.bound, s.boundNamed, s.boundHash = "", false, 0
	if d, ok := strings.CutPrefix(rec.detail, "parameters: "); ok {
		s.bound, s.boundNamed, s.boundHash = d, m.named, maphash.String(p.seed, m.text)
	}
}

// logged handles a statement logged by log_min_duration_statement (at its end,
// with its duration) or by log_statement (at its start).
func (p *parser) logged(rec *record, m logMsg) error {
	if p.seen != nil {
		p.seen.add(rec)
	}
	if !p.filter.match(rec) {
		return nil
	}
	s := p.session(rec.session)
	start := rec.logTime
	if m.duration >= 0 {
		start -= m.duration
		p.longest = max(p.longest, m.duration)
	}
	pr := protoSimple
	var params [][]byte
	if m.kind == msgExecute {
		pr = protoUnnamed
		if m.named {
			pr = protoNamed
		}
		if d, ok := strings.CutPrefix(rec.detail, "parameters: "); ok {
			var err error
			if params, err = p.params(d); err != nil {
				return invalidf("%s:%d: the parameters of this statement cannot be read (%v): %q; the replay needs them as PostgreSQL logs them",
					p.path, rec.line, err, clip(d, 80))
			}
		}
		if s.pending != 0 && s.pending < start {
			start = s.pending
		}
	}
	s.pending, s.bound = 0, ""
	st, fp, err := p.build(rec, s, start, pr, m.text, params, "")
	if err != nil {
		return err
	}
	if st.proto != protoSimple && st.proto != protoCopyIn && st.proto != protoCopyOut && st.a.params > len(params) {
		return invalidf("%s:%d: this statement takes %d parameters but the log holds %d: the capture was taken with log_parameter_max_length set to 0; capture again with log_parameter_max_length = -1 (the default)",
			p.path, rec.line, st.a.params, len(params))
	}
	s.awaiting = m.duration < 0
	s.lastHash = maphash.String(p.seed, m.text)
	p.sink.statement(st, fp, s)
	return nil
}

// failed handles an ERROR record: the outcome of the session's statement logged
// when it started, or else a statement that failed and was logged only here (a
// statement logged by log_min_duration_statement is not logged when it fails).
func (p *parser) failed(rec *record) error {
	s := p.sessions[rec.session]
	if s != nil && s.awaiting && (rec.query == "" || maphash.String(p.seed, rec.query) == s.lastHash) {
		s.awaiting = false
		p.sink.capturedError(s, rec.sqlState)
		return nil
	}
	if rec.query == "" {
		// log_min_error_statement is above ERROR: the statement is not in the log.
		p.unattributed++
		return nil
	}
	if p.seen != nil {
		p.seen.add(rec)
	}
	if !p.filter.match(rec) {
		return nil
	}
	s = p.session(rec.session)
	start := rec.logTime
	if s.pending != 0 && s.pending < start {
		start = s.pending
	}
	params, found := errorParams(rec.context)
	pr := protoSimple
	switch {
	case found:
		pr = protoUnnamed
	case s.bound != "" && s.boundHash == maphash.String(p.seed, rec.query):
		// The statement was bound, with its parameters logged, and failed running.
		if bound, err := p.params(s.bound); err == nil {
			params, pr = bound, protoUnnamed
			if s.boundNamed {
				pr = protoNamed
			}
		}
	}
	s.pending, s.bound = 0, ""
	st, fp, err := p.build(rec, s, start, pr, rec.query, params, rec.sqlState)
	if err != nil {
		return err
	}
	if st.proto == protoSimple && st.a.params > 0 {
		// Sent with parameters the log does not hold (log_parameter_max_length_on_error
		// was 0): it cannot be sent again, but its error can be.
		st.proto = protoStandIn
	}
	s.awaiting = false
	p.sink.statement(st, fp, s)
	p.sink.capturedError(s, rec.sqlState)
	return nil
}

// build makes the statement text of session s that started at start, updating the
// session's transaction block and session state.
func (p *parser) build(rec *record, s *session, start int64, pr proto, text string, params [][]byte, sqlState string) (*stmt, []byte, error) {
	a, fp := p.lx.analyze(text, p.fp)
	p.fp = fp
	first := s.idx < 0
	if first && p.force >= 0 {
		// Read out of log order: the session's number is the one it got in order.
		s.idx = p.force
	} else if first {
		if p.next == math.MaxInt32 {
			return nil, nil, invalidf("%s:%d: the capture holds more than %d sessions; narrow it with the filter", p.path, rec.line, math.MaxInt32)
		}
		s.idx = p.next
		p.next++
	}
	// A session's statements run in log order: rounding in the logged times must
	// not put one before the statement it followed.
	if start < s.lastStart {
		start = s.lastStart
	}
	s.lastStart = start
	switch {
	case a.copyIn:
		pr = protoCopyIn
	case a.copyOut:
		pr = protoCopyOut
	}
	inBlock := s.inBlock
	switch a.block {
	case blockOpen:
		s.inBlock = true
	case blockClose:
		s.inBlock = false
	}
	switch a.pin {
	case pinSet:
		s.pinned = true
	case pinClear:
		s.pinned = false
	}
	st := &p.scratch
	if p.keep {
		st = &stmt{text: strings.Clone(text), params: params}
	}
	p.seq++
	st.seq, st.start, st.session, st.proto = p.seq, start, s.idx, pr
	st.inBlock, st.hold, st.a, st.sqlState, st.first = inBlock, s.inBlock || s.pinned, a, sqlState, first
	if p.keep && sqlState != "" {
		st.sqlState = strings.Clone(sqlState)
	}
	return st, fp, nil
}

// disconnect ends a session.
func (p *parser) disconnect(rec *record) {
	s := p.sessions[rec.session]
	if s == nil {
		return
	}
	delete(p.sessions, rec.session)
	p.end(s, rec.logTime)
}

// end schedules the end of session s at at when it still holds its connection.
func (p *parser) end(s *session, at int64) {
	if s.idx < 0 || !s.inBlock && !s.pinned {
		return
	}
	at = max(at, s.lastStart)
	st := &p.scratch
	if p.keep {
		st = &stmt{}
	}
	p.seq++
	*st = stmt{seq: p.seq, start: at, session: s.idx, proto: protoEnd, inBlock: s.inBlock}
	s.inBlock, s.pinned = false, false
	p.sink.statement(st, nil, s)
}

// finish ends, at the end of the log, the sessions that still hold their
// connection (their disconnection is not in the log), in index order.
func (p *parser) finish() {
	var open []*session
	for _, s := range p.sessions {
		if s.idx >= 0 && (s.inBlock || s.pinned) {
			open = append(open, s)
		}
	}
	sort.Slice(open, func(i, j int) bool { return open[i].idx < open[j].idx })
	for _, s := range open {
		p.end(s, p.maxLog)
	}
	p.sessions = map[string]*session{}
}

// match reports whether a record passes the filter.
func (f Filter) match(rec *record) bool {
	return (f.Database == "" || f.Database == rec.db) &&
		(f.User == "" || f.User == rec.user) &&
		(f.Application == "" || f.Application == rec.app)
}

// seenCounts counts statements per database, user and application, to say what a
// capture holds when the filter matches none of it.
type seenCounts struct {
	databases, users, applications map[string]int64
	total                          int64
}

// maxSeen bounds each map: the message lists the most frequent.
const maxSeen = 64

func (c *seenCounts) add(rec *record) {
	c.total++
	countSeen(c.databases, rec.db)
	countSeen(c.users, rec.user)
	countSeen(c.applications, rec.app)
}

func countSeen(m map[string]int64, k string) {
	if _, ok := m[k]; ok {
		m[k]++
	} else if len(m) < maxSeen {
		m[strings.Clone(k)] = 1
	}
}
