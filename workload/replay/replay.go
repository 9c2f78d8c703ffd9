// Package replay is the replay workload: traffic captured from a production
// PostgreSQL server, replayed as a rehearsal's load, as pgreplay does before an
// upgrade, but inside a rehearsal: open loop, through the load generator's pools,
// while a cutover runs.
//
// The capture is a PostgreSQL csvlog written with log_min_duration_statement = 0
// (or log_statement = 'all'), log_connections and log_disconnections. Each
// captured session (csvlog session_id) becomes a simulated session that replays
// its statements in order, each due at its captured start (the logged time, less
// the logged duration when the statement was logged at its end) relative to the
// first replayed statement's, divided by Config.Speed. The load generator starts
// each statement when it is due, or when the session's previous statement has
// finished if that is later, and counts latency from when it was due.
//
// Simple queries are replayed as simple queries (several statements in one text
// are one round trip); extended-protocol statements with their captured
// parameters, as text, through the unnamed statement or a statement prepared once
// per connection, as the client did. A session keeps its connection
// (workload.Session.Hold) from BEGIN or START TRANSACTION to COMMIT, END,
// ROLLBACK, ABORT or PREPARE TRANSACTION, and from a statement that creates
// session state later statements depend on (SQL PREPARE, CREATE TEMP,
// DECLARE … WITH HOLD, LISTEN, SET search_path, SET ROLE, SET SESSION
// AUTHORIZATION, a session-level advisory lock) to the session's end or DISCARD
// ALL; a session that ends holding its connection closes it, as the server ended
// it. COMMIT PREPARED and ROLLBACK PREPARED are ordinary statements.
//
// A statement the capture shows failing is replayed too (a failed statement
// logged with log_min_duration_statement is only in its ERROR record; its
// parameters come from its bind line or from the error's context), and counted
// in CapturedErrors. One whose parameters the log does not hold is not sent: it
// fails with the captured SQLSTATE. When a statement of a transaction block
// fails, the load generator hands its connection back and the block is lost with
// it; the block's later statements are then not sent but fail as PostgreSQL
// fails them in an aborted block (25P02), until the statement that ended the
// block in the capture, which is sent.
//
// Operations are statement fingerprints (constants as ?, keywords in capitals,
// other words in lower case, whitespace collapsed, IN lists and repeated VALUES
// rows collapsed): the MaxOps most frequent, then "other (reads)" and "other
// (writes)". A statement is a read when it is a SELECT (or WITH … SELECT,
// VALUES, TABLE, SHOW, EXPLAIN without ANALYZE) without a locking clause, without
// SELECT … INTO and without a call to a function in writeFuncs (nextval, setval,
// the advisory lock functions, the large-object writers, txid_current,
// pg_current_xact_id, pg_notify, pg_logical_emit_message, pg_switch_wal,
// pg_create_restore_point); everything else is a write. An operation is a write
// when any statement of its fingerprint is.
//
// The engine's sequence is Open (it reads the capture once, validating it and
// counting), Setup (nothing), then per run Arrivals, loadgen.Run with Sessions()
// sessions and the schedule as Config.Arrivals, the schedule's Err and Close, and
// Verify. The application's retries are in the capture: the load generator should
// retry nothing (MaxRetries 0, no retry policy), and its operation timeout should
// exceed Summary.Longest. The replay runs as the DSN's user against the target;
// the captured database and user only select statements through the filter.
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/workload"
)

// Config mirrors the scenario's workload section for name: replay.
type Config struct {
	// Capture is the path of the PostgreSQL csvlog (already resolved).
	Capture string
	// Speed divides the captured gaps: 2 replays twice as fast. 0 means 1.
	Speed float64
	// Filter selects the statements to replay.
	Filter Filter
	// Seed is accepted for symmetry with the other workloads; a replay draws
	// nothing at random.
	Seed uint64
}

// Filter selects captured statements by the database, user and application
// name logged with each; an empty field matches everything.
type Filter struct {
	Database, User, Application string
}

// MaxOps is the number of statement fingerprints reported as operations of their
// own; less frequent statements are reported as "other (reads)" and "other
// (writes)", so results stay readable.
const MaxOps = 200

// Names of the operations that are not a fingerprint.
const (
	OpOtherReads  = "other (reads)"
	OpOtherWrites = "other (writes)"
	// OpSessionEnd closes the connection of a session that ended holding it.
	OpSessionEnd = "(session end)"
)

// Summary is what Open found in the capture.
type Summary struct {
	// Records is the number of csvlog records read.
	Records int64
	// Statements and Sessions are Statements() and Sessions().
	Statements int64
	Sessions   int
	// Fingerprints is the number of distinct fingerprints (an estimate past
	// 100,000: rare ones are then forgotten).
	Fingerprints int
	// Simple and Extended count statements by protocol; FromErrors those known
	// only from their ERROR record (a failed statement logged by
	// log_min_duration_statement), of which StandIns had parameters the log does
	// not hold: they are not sent, and fail with the captured error.
	Simple, Extended, FromErrors, StandIns int64
	// CopyIn counts COPY … FROM STDIN statements, replayed with no rows.
	CopyIn int64
	// CapturedErrors is the number of statements the capture shows failing;
	// Unattributed the ERRORs logged without their statement
	// (log_min_error_statement above error).
	CapturedErrors, Unattributed int64
	// SessionEnds is the number of sessions that ended holding their connection
	// (an open transaction block or session state): each adds one arrival, which
	// closes the connection.
	SessionEnds int64
	// Long counts statements logged so long after they started (over a second)
	// that the schedule reads them again, out of log order, when they are due.
	Long int64
	// Fetches counts "execute fetch from" lines: more rows of a portal already
	// replayed, not replayed again.
	Fetches int64
	// Span is the captured time from the first replayed statement's start to the
	// last arrival, before Speed.
	Span time.Duration
	// Longest is the longest duration logged with a statement (0 when the
	// capture logged none, as with log_statement alone): an operation timeout
	// shorter than it fails statements the capture ran to the end.
	Longest time.Duration
}

// Workload is the replay workload. It is safe for concurrent use; one schedule
// (Arrivals) is open at a time.
type Workload struct {
	cfg   Config
	speed float64

	ops        []workload.Op
	opIndex    map[string]uint16 // fingerprint → operation
	otherRead  int
	otherWrite int
	endOp      int
	captured   map[string]int64

	summary Summary
	origin  int64 // Unix nanoseconds of offset 0: the first replayed statement's start
	last    int64 // the last arrival's
	window  int64 // how far behind the log a statement's start may be (see schedule)
	long    []longStmt
	records int64

	active atomic.Pointer[queues]
}

var _ workload.Workload = (*Workload)(nil)

// Open reads the capture once, streaming: it validates every record, counts
// statements and sessions after the filter, and collects the statement
// fingerprints. Problems with the input wrap ErrInvalid, naming the file and line.
func Open(ctx context.Context, cfg Config) (*Workload, error) {
	if cfg.Capture == "" {
		return nil, invalidf("replay: no capture given: name a PostgreSQL csvlog; %s", captureHowTo)
	}
	speed := cfg.Speed
	if speed == 0 {
		speed = 1
	}
	if speed < 0 || math.IsNaN(speed) || math.IsInf(speed, 0) {
		return nil, invalidf("%s: speed %g: must be a positive factor (2 replays twice as fast)", cfg.Capture, cfg.Speed)
	}
	f, err := openCapture(cfg.Capture)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return load(ctx, cfg, speed, f)
}

// load is Open's first pass over r.
func load(ctx context.Context, cfg Config, speed float64, r io.Reader) (*Workload, error) {
	c := newCensus()
	p := newParser(cfg.Capture, cfg.Filter, false, c)
	p.seen = &seenCounts{databases: map[string]int64{}, users: map[string]int64{}, applications: map[string]int64{}}
	c.p = p
	log := newCSVLog(cfg.Capture, r)
	c.log = log
	var rec record
	for {
		if log.records&1023 == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("replay: reading %s: %w", cfg.Capture, ctx.Err())
		}
		err := log.next(&rec)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := p.feed(&rec); err != nil {
			return nil, err
		}
	}
	p.finish()
	if c.statements == 0 {
		return nil, nothingToReplay(cfg, log.records, p.seen)
	}
	w := &Workload{cfg: cfg, speed: speed, records: log.records, origin: c.first, last: c.last,
		window: c.maxLag, long: c.long}
	w.buildOps(c)
	w.summary = c.summary
	w.summary.Records = log.records
	w.summary.Statements = c.statements
	w.summary.Sessions = int(p.next)
	w.summary.Fingerprints = c.distinct
	w.summary.SessionEnds = c.ends
	w.summary.Unattributed = p.unattributed
	w.summary.Fetches = p.fetches
	w.summary.Long = int64(len(c.long))
	w.summary.Longest = time.Duration(p.longest)
	w.summary.Span = time.Duration(c.last - c.first)
	return w, nil
}

// openCapture opens the capture, telling a missing or empty file apart.
func openCapture(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, invalidf("%s: the capture does not exist; give the path of a PostgreSQL csvlog (relative to the scenario file); %s", path, captureHowTo)
		}
		return nil, invalidf("%s: the capture cannot be read: %v", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, invalidf("%s: the capture cannot be read: %v", path, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, invalidf("%s: the capture is a directory; give the csvlog file in it (postgresql-….csv)", path)
	}
	if st.Size() == 0 {
		f.Close()
		return nil, invalidf("%s:1: the capture is empty: the server wrote nothing to it; %s", path, captureHowTo)
	}
	return f, nil
}

// nothingToReplay explains a capture without a statement to replay.
func nothingToReplay(cfg Config, records int64, seen *seenCounts) error {
	if seen.total == 0 {
		return invalidf("%s: the capture holds no statement (%d log records): it was taken without statement logging; %s",
			cfg.Capture, records, captureHowTo)
	}
	var f []string
	for _, kv := range [][2]string{{"database", cfg.Filter.Database}, {"user", cfg.Filter.User}, {"application", cfg.Filter.Application}} {
		if kv[1] != "" {
			f = append(f, fmt.Sprintf("%s %q", kv[0], kv[1]))
		}
	}
	return invalidf("%s: the filter (%s) matches none of the capture's %d statements; it holds databases %s; users %s; applications %s: set workload.filter to match some, or leave it empty",
		cfg.Capture, strings.Join(f, ", "), seen.total, listSeen(seen.databases), listSeen(seen.users), listSeen(seen.applications))
}

// listSeen lists names with their statement counts, most frequent first.
func listSeen(m map[string]int64) string {
	type kv struct {
		k string
		n int64
	}
	var l []kv
	for k, n := range m {
		l = append(l, kv{k, n})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].n > l[j].n || l[i].n == l[j].n && l[i].k < l[j].k })
	var parts []string
	for i, e := range l {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("and %d more", len(l)-10))
			break
		}
		parts = append(parts, fmt.Sprintf("%q (%d)", e.k, e.n))
	}
	return strings.Join(parts, ", ")
}

// buildOps makes the operations: the MaxOps most frequent fingerprints, then the
// others by kind, then the session end when some session needs one.
func (w *Workload) buildOps(c *census) {
	type entry struct {
		fp string
		*fpStat
	}
	all := make([]entry, 0, len(c.fps))
	for fp, e := range c.fps {
		all = append(all, entry{fp, e})
	}
	sort.Slice(all, func(i, j int) bool {
		return all[i].count > all[j].count || all[i].count == all[j].count && all[i].fp < all[j].fp
	})
	top := all[:min(len(all), MaxOps)]
	w.opIndex = make(map[string]uint16, len(top))
	w.captured = map[string]int64{}
	var inTop int64
	for i, e := range top {
		kind := workload.Read
		if e.write {
			kind = workload.Write
		}
		name := opName(e.fp)
		w.ops = append(w.ops, workload.Op{Name: name, Kind: kind, Run: w.run})
		w.opIndex[e.fp] = uint16(i)
		inTop += e.count
		if e.errs > 0 {
			w.captured[name] += e.errs
		}
	}
	w.otherRead, w.otherWrite, w.endOp = -1, -1, -1
	if inTop < c.statements {
		w.otherRead = len(w.ops)
		w.ops = append(w.ops, workload.Op{Name: OpOtherReads, Kind: workload.Read, Run: w.run})
		w.otherWrite = len(w.ops)
		w.ops = append(w.ops, workload.Op{Name: OpOtherWrites, Kind: workload.Write, Run: w.run})
		for _, e := range all[len(top):] {
			if e.errs > 0 {
				name := OpOtherReads
				if e.write {
					name = OpOtherWrites
				}
				w.captured[name] += e.errs
			}
		}
	}
	if c.ends > 0 {
		w.endOp = len(w.ops)
		w.ops = append(w.ops, workload.Op{Name: OpSessionEnd, Kind: workload.Write, Run: w.run})
	}
}

// Name returns "replay".
func (w *Workload) Name() string { return "replay" }

// Setup does nothing: a replay runs against a target that already holds the
// captured database's schema and data (restored from a snapshot, or a dump taken
// when the capture began); it creates and seeds nothing.
func (w *Workload) Setup(_ context.Context, _ *pgxpool.Pool, log io.Writer) error {
	if log != nil {
		fmt.Fprintf(log, "replay: no setup: the target must already hold the schema and data the capture %s ran against (%d statements from %d sessions)\n",
			w.cfg.Capture, w.summary.Statements, w.summary.Sessions)
	}
	return nil
}

// Ops lists the operations: one per frequent statement fingerprint, the others by
// kind, and the session end (see the package documentation).
func (w *Workload) Ops() []workload.Op { return w.ops }

// NewSession returns captured session i's state: Customer holds its index.
func (w *Workload) NewSession(i int, _ *rand.Rand) workload.Session {
	return workload.Session{Customer: int64(i)}
}

// Next takes the session's next statement from the open schedule, in capture
// order, and returns its operation. The load generator calls it when the
// session's next arrival runs, after the schedule returned that arrival.
func (w *Workload) Next(s *workload.Session, _ *rand.Rand) int {
	q := w.active.Load()
	if q == nil {
		return 0 // run reports that no schedule is open
	}
	st := q.pop(int32(s.Customer))
	if st == nil {
		return 0
	}
	return int(st.op)
}

// Verify checks nothing it could not: a replay cannot tell which writes were
// acknowledged, so no lost write is counted (LostWriteCheck "none").
func (w *Workload) Verify(context.Context, *pgxpool.Pool) (result.Integrity, error) {
	return result.Integrity{
		Checked:          true,
		BalanceConserved: true,
		LostWriteCheck:   result.LostWriteCheckNone,
		Details: []string{
			fmt.Sprintf("A replay of %d captured statements from %d sessions: it cannot tell its acknowledged writes apart, so lost writes were not counted.",
				w.summary.Statements, w.summary.Sessions),
		},
	}, nil
}

// Sessions is the number of captured sessions with a statement after the filter:
// the load generator's Config.Sessions.
func (w *Workload) Sessions() int { return w.summary.Sessions }

// Statements is the number of captured statements after the filter, each
// replayed once (a session ending while it holds its connection adds one arrival
// more: Summary.SessionEnds).
func (w *Workload) Statements() int64 { return w.summary.Statements }

// Duration is the capture's span at Speed: when the last arrival is due.
func (w *Workload) Duration() time.Duration {
	return time.Duration(float64(w.last-w.origin) / w.speed)
}

// CapturedErrors returns, per operation name, how many of its statements the
// capture itself shows failing (an ERROR of the statement's session right after
// it, or the ERROR that is all the log holds of a failed statement). Set beside
// the replay's own errors per operation, it tells errors the capture already had
// from new ones. The map is a fresh copy.
func (w *Workload) CapturedErrors() map[string]int64 {
	out := make(map[string]int64, len(w.captured))
	for k, v := range w.captured {
		out[k] = v
	}
	return out
}

// Summary returns what Open found in the capture.
func (w *Workload) Summary() Summary { return w.summary }
