package tpcb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rehearse-dev/rehearse/workload"
)

// The statements of pgbench's built-in scripts, with pgbench's :variables as
// parameters. Constant text lets pgx prepare each once per connection.
const (
	sqlBegin         = `BEGIN`
	sqlUpdateAccount = `UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2`
	sqlSelectBalance = `SELECT abalance FROM pgbench_accounts WHERE aid = $1`
	sqlUpdateTeller  = `UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2`
	sqlUpdateBranch  = `UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2`
	sqlInsertHistory = `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)`
	sqlCommit        = `END`
)

// tpcbTx holds one transaction's parameters, its pipelined batch and its
// text-encoded statement parameters. It is pooled, and the batch's arguments point at
// its fields, so a transaction boxes no integers and allocates nothing.
type tpcbTx struct {
	aid, bid, tid, delta int64

	queries [6]pgx.QueuedQuery
	ptrs    [6]*pgx.QueuedQuery
	args    [7]any
	history [4]any
	batch   pgx.Batch

	// Text-format parameters, as pgbench sends them: num holds the digits, params the
	// per-statement argument lists (slices of num).
	num    [4][24]byte
	params [11][]byte
}

func newTPCBTx() any {
	t := &tpcbTx{}
	t.args = [7]any{&t.delta, &t.aid, &t.aid, &t.delta, &t.tid, &t.delta, &t.bid}
	t.history = [4]any{&t.tid, &t.bid, &t.aid, &t.delta}
	for i := range t.ptrs {
		t.ptrs[i] = &t.queries[i]
	}
	return t
}

// Indexes of the parameters in tpcbTx.num.
const (
	numDelta = iota
	numAid
	numTid
	numBid
)

// encode writes the transaction's parameters as text and lays out each statement's
// argument list in params.
func (t *tpcbTx) encode() {
	delta := strconv.AppendInt(t.num[numDelta][:0], t.delta, 10)
	aid := strconv.AppendInt(t.num[numAid][:0], t.aid, 10)
	tid := strconv.AppendInt(t.num[numTid][:0], t.tid, 10)
	bid := strconv.AppendInt(t.num[numBid][:0], t.bid, 10)
	t.params = [11][]byte{
		delta, aid, // update account
		aid,        // select balance
		delta, tid, // update teller
		delta, bid, // update branch
		tid, bid, aid, delta, // insert history
	}
}

// reset queues pgbench's statements afresh. Assigning whole QueuedQuery values also
// clears the statement description pgx caches in them, which belongs to the
// connection the batch last ran on.
func (t *tpcbTx) reset() *pgx.Batch {
	t.queries = [6]pgx.QueuedQuery{
		{SQL: sqlBegin},
		{SQL: sqlUpdateAccount, Arguments: t.args[0:2]},
		{SQL: sqlSelectBalance, Arguments: t.args[2:3]},
		{SQL: sqlUpdateTeller, Arguments: t.args[3:5]},
		{SQL: sqlUpdateBranch, Arguments: t.args[5:7]},
		{SQL: sqlInsertHistory, Arguments: t.history[:]},
	}
	t.batch.QueuedQueries = t.ptrs[:]
	return &t.batch
}

// draw picks the transaction's parameters exactly as pgbench's built-in script does.
func (w *Workload) draw(r *rand.Rand) *tpcbTx {
	t := w.txPool.Get().(*tpcbTx)
	t.aid = r.Int64N(nAccounts*w.scale) + 1
	t.bid = r.Int64N(nBranches*w.scale) + 1
	t.tid = r.Int64N(nTellers*w.scale) + 1
	t.delta = r.Int64N(10001) - 5000
	return t
}

// Prepared statement names. They are prepared once per connection, on first use, the
// way `pgbench -M prepared` prepares its script's commands.
const (
	stmtBegin         = "rehearse_tpcb_begin"
	stmtUpdateAccount = "rehearse_tpcb_update_account"
	stmtSelectBalance = "rehearse_tpcb_select_balance"
	stmtUpdateTeller  = "rehearse_tpcb_update_teller"
	stmtUpdateBranch  = "rehearse_tpcb_update_branch"
	stmtInsertHistory = "rehearse_tpcb_insert_history"
	stmtCommit        = "rehearse_tpcb_end"
)

// execPrepared runs one prepared statement with text parameters, preparing it on
// this connection first if needed, and discards any rows, as pgbench does. pgx's
// Prepare returns the connection's existing description when the name is already
// prepared with the same text, so after the first transaction this is one round trip
// (Bind, Execute, Sync) with no allocation.
func execPrepared(ctx context.Context, c *pgx.Conn, name, sql string, params [][]byte) (pgconn.CommandTag, error) {
	sd, err := c.Prepare(ctx, name, sql)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	return c.PgConn().ExecStatement(ctx, sd, params, nil, nil).Close()
}

// unwatched returns context.Background() for a ctx that can never be cancelled,
// else ctx. pgx then skips watching it for every statement; a ctx that cannot be
// cancelled has nothing to watch (the operation's deadline is then on the
// connection: see ConnBound).
func unwatched(ctx context.Context) context.Context {
	if ctx.Done() == nil {
		return context.Background()
	}
	return ctx
}

// tpcb runs pgbench's built-in "TPC-B (sort of)" transaction the way
// `pgbench -M prepared` does: seven prepared statements (BEGIN, three updates, a
// select, an insert, END), each in its own round trip, parameters as text. Only the
// END can leave the outcome unknown.
func (w *Workload) tpcb(ctx context.Context, c *pgx.Conn, _ *workload.Session, r *rand.Rand) error {
	ctx = unwatched(ctx)
	t := w.draw(r)
	defer w.txPool.Put(t)
	t.encode()
	p := t.params[:]
	steps := [...]struct {
		name, sql string
		params    [][]byte
	}{
		{stmtBegin, sqlBegin, nil},
		{stmtUpdateAccount, sqlUpdateAccount, p[0:2]},
		{stmtSelectBalance, sqlSelectBalance, p[2:3]},
		{stmtUpdateTeller, sqlUpdateTeller, p[3:5]},
		{stmtUpdateBranch, sqlUpdateBranch, p[5:7]},
		{stmtInsertHistory, sqlInsertHistory, p[7:11]},
	}
	for _, s := range steps {
		if _, err := execPrepared(ctx, c, s.name, s.sql, s.params); err != nil {
			rollback(ctx, c)
			return err
		}
	}
	tag, err := execPrepared(ctx, c, stmtCommit, sqlCommit, nil)
	return w.concluded(tag, err)
}

// tpcbPipelined runs the same transaction with BEGIN and the five statements sent as
// one pipelined batch and END on its own: two round trips instead of seven. It is the
// Pipelined option, not pgbench's wire behaviour.
func (w *Workload) tpcbPipelined(ctx context.Context, c *pgx.Conn, _ *workload.Session, r *rand.Rand) error {
	ctx = unwatched(ctx)
	t := w.draw(r)
	defer w.txPool.Put(t)
	if err := c.SendBatch(ctx, t.reset()).Close(); err != nil {
		rollback(ctx, c)
		return err
	}
	tag, err := c.Exec(ctx, sqlCommit)
	return w.concluded(tag, err)
}

// rollback leaves the connection outside any transaction after a failed statement:
// nothing is committed without the END.
func rollback(ctx context.Context, c *pgx.Conn) {
	if !c.IsClosed() && c.PgConn().TxStatus() != 'I' {
		_, _ = c.Exec(ctx, "ROLLBACK")
	}
}

// concluded interprets END's answer: acknowledged, rolled back, failed, or unknown.
func (w *Workload) concluded(tag pgconn.CommandTag, err error) error {
	if err == nil && tag.String() == "COMMIT" {
		w.acked.Add(1)
		return nil
	}
	if err == nil {
		return fmt.Errorf("tpcb: transaction rolled back (%s)", tag.String())
	}
	// A server error in answer to END means nothing was committed (see the banking
	// workload's commit for why that holds even for FATAL); only a broken connection
	// or an expired deadline leaves the outcome unknown.
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return err
	}
	w.ambiguous.Add(1)
	return fmt.Errorf("%w: %w", workload.ErrAmbiguous, err)
}

// selectOp is pgbench -S: one prepared primary-key read with a text parameter.
func (w *Workload) selectOp(ctx context.Context, c *pgx.Conn, _ *workload.Session, r *rand.Rand) error {
	ctx = unwatched(ctx)
	var num [24]byte
	params := [1][]byte{strconv.AppendInt(num[:0], r.Int64N(nAccounts*w.scale)+1, 10)}
	_, err := execPrepared(ctx, c, stmtSelectBalance, sqlSelectBalance, params[:])
	return err
}
