package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rehearse-dev/rehearse/workload"
)

var (
	errNoSchedule  = errors.New("replay: no schedule is open (Arrivals)")
	errNoStatement = errors.New("replay: the session has no statement to run: the load generator ran an arrival the schedule did not give")
)

// run is every operation's OpFunc: it runs the session's current statement (the
// one Next took) on c, and sets Session.Hold from the capture: the session keeps
// c while the captured session was in a transaction block, or held session state.
func (w *Workload) run(ctx context.Context, c *pgx.Conn, s *workload.Session, _ *rand.Rand) error {
	q := w.active.Load()
	if q == nil {
		return errNoSchedule
	}
	idx := int32(s.Customer)
	st := q.current(idx)
	if st == nil {
		return errNoStatement
	}
	s.Hold = st.hold
	err := execute(ctx, c, s, st)
	if err == nil {
		q.done(idx, st)
	}
	return err
}

// execute sends st as the capture shows it was sent.
func execute(ctx context.Context, c *pgx.Conn, s *workload.Session, st *stmt) error {
	switch st.proto {
	case protoEnd:
		s.Hold = false
		if s.Pinned != 0 {
			// The connection holds the ended session's transaction or state: end
			// it as the server ended that session. The pool drops a closed
			// connection.
			_ = c.Close(ctx)
		}
		return nil
	case protoStandIn:
		return &pgconn.PgError{Severity: "ERROR", Code: st.sqlState,
			Message: "failed in the capture, which logged its error but not its parameters: not sent again, it fails as it did (capture with log_parameter_max_length_on_error = -1 to replay it)"}
	}
	pc := c.PgConn()
	status := pc.TxStatus()
	if st.inBlock && st.a.block != blockClose && status == 'I' {
		// The captured session was in a transaction block, but this connection is
		// not: the block ended with an earlier statement's error (the pool drops a
		// connection whose statement failed) or its connection. PostgreSQL would
		// reject the statement; running it outside the block would commit what
		// the capture did not.
		return &pgconn.PgError{Severity: "ERROR", Code: "25P02",
			Message: "current transaction is aborted, commands ignored until end of transaction block",
			Detail:  "The replay lost this statement's transaction block with an earlier statement's error or connection; the statement was not sent."}
	}
	var err error
	switch st.proto {
	case protoSimple:
		err = simpleQuery(ctx, pc, st.text)
	case protoCopyIn:
		_, err = pc.CopyFrom(ctx, strings.NewReader(""), st.text)
	case protoCopyOut:
		_, err = pc.CopyTo(ctx, io.Discard, st.text)
	case protoUnnamed:
		_, err = pc.ExecParams(ctx, st.text, st.params, nil, nil, nil).Close()
	case protoNamed:
		err = execNamed(ctx, pc, st, status)
	}
	if err == nil {
		if st.a.dropsPrepared {
			forgetPrepared(pc)
		}
		return nil
	}
	var pgErr *pgconn.PgError
	if mayCommit(st, status) && !errors.As(err, &pgErr) && !pgconn.SafeToRetry(err) {
		// The connection broke (or the deadline passed) with the statement in
		// flight: it may or may not have committed.
		return fmt.Errorf("%w: %w", workload.ErrAmbiguous, err)
	}
	return err
}

// mayCommit reports whether st, sent on a connection in transaction status
// status, could commit: COMMIT in a block, a write outside one (but BEGIN or
// ROLLBACK), several statements (an implicit transaction) with a write.
func mayCommit(st *stmt, status byte) bool {
	switch {
	case st.a.stmts > 1:
		return st.a.write
	case status == 'I':
		return st.a.write && !st.a.beginOnly && !st.a.rollbackOnly
	}
	return st.a.commits
}

// simpleQuery sends sql as one simple query and reads every result.
func simpleQuery(ctx context.Context, pc *pgconn.PgConn, sql string) error {
	mrr := pc.Exec(ctx, sql)
	for mrr.NextResult() {
		_, _ = mrr.ResultReader().Close()
	}
	return mrr.Close()
}

// execNamed runs st through a statement prepared on this connection, preparing it
// the first time, as a client with a statement cache does.
func execNamed(ctx context.Context, pc *pgconn.PgConn, st *stmt, status byte) error {
	name, err := prepared(ctx, pc, st.text)
	if err != nil {
		return err
	}
	_, err = pc.ExecPrepared(ctx, name, st.params, nil, nil).Close()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "26000" && status == 'I' {
		// invalid_sql_statement_name: something the replay did not see dropped the
		// connection's prepared statements. Outside a block, prepare again.
		forgetPrepared(pc)
		if name, err = prepared(ctx, pc, st.text); err != nil {
			return err
		}
		_, err = pc.ExecPrepared(ctx, name, st.params, nil, nil).Close()
	}
	return err
}

// preparedKey is where a connection's prepared statements are remembered
// (pgconn.PgConn.CustomData), so they live and die with the connection.
const preparedKey = "rehearse/workload/replay.prepared"

// maxPrepared bounds the statements prepared per connection; past it the oldest
// is deallocated.
const maxPrepared = 512

type preparedCache struct {
	names map[string]string // text → statement name
	order []string          // texts, oldest first
	next  uint64
}

// prepared returns the name of sql's statement on pc, preparing it if needed.
func prepared(ctx context.Context, pc *pgconn.PgConn, sql string) (string, error) {
	data := pc.CustomData()
	if data == nil {
		// No place to remember it: the unnamed statement.
		_, err := pc.Prepare(ctx, "", sql, nil)
		return "", err
	}
	c, _ := data[preparedKey].(*preparedCache)
	if c == nil {
		c = &preparedCache{names: map[string]string{}}
		data[preparedKey] = c
	}
	if name, ok := c.names[sql]; ok {
		return name, nil
	}
	if len(c.order) >= maxPrepared {
		old := c.order[0]
		c.order = c.order[1:]
		name := c.names[old]
		delete(c.names, old)
		// Best effort: a statement left behind costs server memory, not results.
		_ = pc.Deallocate(ctx, name)
	}
	c.next++
	name := "rehearse_replay_" + strconv.FormatUint(c.next, 10)
	if _, err := pc.Prepare(ctx, name, sql, nil); err != nil {
		return "", err
	}
	c.names[sql] = name
	c.order = append(c.order, sql)
	return name, nil
}

// forgetPrepared forgets the connection's prepared statements, which DISCARD ALL
// or DEALLOCATE ALL dropped.
func forgetPrepared(pc *pgconn.PgConn) {
	if data := pc.CustomData(); data != nil {
		delete(data, preparedKey)
	}
}
