// Package tpcb is pgbench's built-in TPC-B-like workload (and its select-only
// variant, pgbench -S) on pgbench's own tables, so results compare with pgbench runs
// and existing pgbench data sets can be reused.
package tpcb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/workload"
)

// ErrScaleMismatch is returned by Setup when pgbench tables exist at another scale;
// the tables are never dropped without the user's say-so.
var ErrScaleMismatch = errors.New("tpcb: pgbench tables exist at a different scale")

// ErrConfig is returned by New for an unusable configuration.
var ErrConfig = errors.New("tpcb: invalid workload configuration")

// DefaultScale is the pgbench scale factor used when the configuration has none.
const DefaultScale = 10

// pgbench's sizes per unit of scale.
const (
	nBranches = 1
	nTellers  = 10
	nAccounts = 100000
	// scale32BitThreshold is pgbench's SCALE_32BIT_THRESHOLD: from this scale on,
	// account ids need bigint.
	scale32BitThreshold = 20000
)

// Operation names.
const (
	OpTPCB   = "tpcb"
	OpSelect = "select"
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

// Workload is the pgbench TPC-B-like workload. It is safe for concurrent use.
type Workload struct {
	scale      int64
	selectOnly bool
	pipelined  bool
	ops        []workload.Op

	historyAtSetup int64
	txPool         sync.Pool
	acked          atomic.Int64
	ambiguous      atomic.Int64
}

var _ workload.Workload = (*Workload)(nil)

// Option tunes the workload beyond what a scenario file says.
type Option func(*Workload)

// Pipelined sends BEGIN and the TPC-B transaction's five statements as one pipelined
// batch and END on its own: two round trips per transaction instead of pgbench's
// seven. It measures what pipelining buys; it is not pgbench's wire behaviour, so
// results taken with it do not compare with `pgbench -M prepared`.
func Pipelined() Option { return func(w *Workload) { w.pipelined = true } }

// Config sizes the workload.
type Config struct {
	// Scale is pgbench's scale factor: 100,000 accounts per unit (default 10).
	Scale int
}

// New builds the workload at cfg.Scale (default 10). selectOnly gives pgbench -S.
// By default every statement is prepared and sent in its own round trip, exactly the
// wire work of `pgbench -M prepared`.
func New(cfg Config, selectOnly bool, opts ...Option) (*Workload, error) {
	w := &Workload{scale: int64(cfg.Scale), selectOnly: selectOnly}
	for _, o := range opts {
		o(w)
	}
	w.txPool.New = newTPCBTx
	if w.scale == 0 {
		w.scale = DefaultScale
	}
	if w.scale < 0 {
		return nil, fmt.Errorf("%w: scale must be positive, got %d", ErrConfig, w.scale)
	}
	if selectOnly {
		w.ops = []workload.Op{{Name: OpSelect, Kind: workload.Read, Run: w.selectOp}}
	} else {
		run := w.tpcb
		if w.pipelined {
			run = w.tpcbPipelined
		}
		w.ops = []workload.Op{{Name: OpTPCB, Kind: workload.Write, Run: run}}
	}
	return w, nil
}

// Name returns "tpcb" or "tpcb-select".
func (w *Workload) Name() string {
	if w.selectOnly {
		return "tpcb-select"
	}
	return "tpcb"
}

// Ops returns the single operation.
func (w *Workload) Ops() []workload.Op { return w.ops }

// NewSession returns an empty session: pgbench clients carry no state.
func (w *Workload) NewSession(int, *rand.Rand) workload.Session { return workload.Session{} }

// Next always returns the single operation.
func (w *Workload) Next(*workload.Session, *rand.Rand) int { return 0 }

// Acknowledged is the number of committed TPC-B transactions so far.
func (w *Workload) Acknowledged() int64 { return w.acked.Load() }

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

// tpcb runs pgbench's built-in "TPC-B (sort of)" transaction the way
// `pgbench -M prepared` does: seven prepared statements (BEGIN, three updates, a
// select, an insert, END), each in its own round trip, parameters as text. Only the
// END can leave the outcome unknown.
func (w *Workload) tpcb(ctx context.Context, c *pgx.Conn, _ *workload.Session, r *rand.Rand) error {
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
	var num [24]byte
	params := [1][]byte{strconv.AppendInt(num[:0], r.Int64N(nAccounts*w.scale)+1, 10)}
	_, err := execPrepared(ctx, c, stmtSelectBalance, sqlSelectBalance, params[:])
	return err
}

var pgbenchTables = []string{"pgbench_accounts", "pgbench_branches", "pgbench_history", "pgbench_tellers"}

// Setup reuses pgbench tables at the configured scale, or creates them as
// `pgbench -i -s scale` does when none exist. Tables at another scale are an error.
func (w *Workload) Setup(ctx context.Context, pool *pgxpool.Pool, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	var present []string
	for _, t := range pgbenchTables {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, t).Scan(&exists); err != nil {
			return fmt.Errorf("tpcb: look for %s: %w", t, err)
		}
		if exists {
			present = append(present, t)
		}
	}
	switch len(present) {
	case 0:
		if err := w.initialise(ctx, pool, log); err != nil {
			return err
		}
	case len(pgbenchTables):
		if err := w.checkScale(ctx, pool); err != nil {
			return err
		}
		fmt.Fprintf(log, "tpcb: reusing pgbench tables at scale %d\n", w.scale)
	default:
		return fmt.Errorf("%w: only %s exist; drop them or run `pgbench -i -s %d`", ErrScaleMismatch, strings.Join(present, ", "), w.scale)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pgbench_history`).Scan(&w.historyAtSetup); err != nil {
		return fmt.Errorf("tpcb: count history: %w", err)
	}
	return nil
}

func (w *Workload) checkScale(ctx context.Context, pool *pgxpool.Pool) error {
	var branches, tellers, maxAid int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pgbench_branches), (SELECT count(*) FROM pgbench_tellers),
       (SELECT coalesce(max(aid), 0) FROM pgbench_accounts)`).Scan(&branches, &tellers, &maxAid); err != nil {
		return fmt.Errorf("tpcb: check scale: %w", err)
	}
	if branches != w.scale*nBranches {
		return fmt.Errorf("%w: pgbench tables hold scale %d but the scenario asks for %d; set workload.scale: %d, or drop them (DROP TABLE %s) to let rehearse initialise scale %d",
			ErrScaleMismatch, branches, w.scale, branches, strings.Join(pgbenchTables, ", "), w.scale)
	}
	if tellers != w.scale*nTellers || maxAid != w.scale*nAccounts {
		return fmt.Errorf("%w: pgbench tables are inconsistent with scale %d (%d tellers, highest aid %d); re-run `pgbench -i -s %d` or drop them",
			ErrScaleMismatch, w.scale, tellers, maxAid, w.scale)
	}
	return nil
}

// initialise follows pgbench -i's default steps "dtgvp": create tables, generate data
// client-side (COPY ... FREEZE for accounts), vacuum analyze, primary keys.
func (w *Workload) initialise(ctx context.Context, pool *pgxpool.Pool, log io.Writer) error {
	start := time.Now()
	fmt.Fprintf(log, "tpcb: initialising pgbench tables at scale %d (%d accounts)\n", w.scale, w.scale*nAccounts)
	aidType := "int"
	if w.scale >= scale32BitThreshold {
		aidType = "bigint"
	}
	ddl := []string{
		`create table pgbench_history(tid int,bid int,aid ` + aidType + `,delta int,mtime timestamp,filler char(22))`,
		`create table pgbench_tellers(tid int not null,bid int,tbalance int,filler char(84)) with (fillfactor=100)`,
		`create table pgbench_accounts(aid ` + aidType + ` not null,bid int,abalance int,filler char(84)) with (fillfactor=100)`,
		`create table pgbench_branches(bid int not null,bbalance int,filler char(88)) with (fillfactor=100)`,
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("tpcb: initialise: %w", err)
	}
	defer conn.Release()
	pc := conn.Conn().PgConn()
	exec := func(sql string) error {
		_, err := pc.Exec(ctx, sql).ReadAll()
		return err
	}
	for _, q := range ddl {
		if err := exec(q); err != nil {
			return fmt.Errorf("tpcb: create tables: %w", err)
		}
	}
	if err := exec("begin"); err != nil {
		return fmt.Errorf("tpcb: generate: %w", err)
	}
	fail := func(step string, err error) error {
		_ = exec("rollback")
		return fmt.Errorf("tpcb: %s: %w", step, err)
	}
	if err := exec(`truncate table pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers`); err != nil {
		return fail("truncate", err)
	}
	if err := exec(`insert into pgbench_branches(bid,bbalance) select bid, 0 from generate_series(1, ` +
		strconv.FormatInt(nBranches*w.scale, 10) + `) as bid`); err != nil {
		return fail("generate branches", err)
	}
	if err := exec(`insert into pgbench_tellers(tid,bid,tbalance) select tid, (tid - 1) / ` + strconv.Itoa(nTellers) +
		` + 1, 0 from generate_series(1, ` + strconv.FormatInt(nTellers*w.scale, 10) + `) as tid`); err != nil {
		return fail("generate tellers", err)
	}
	if _, err := pc.CopyFrom(ctx, &accountRows{n: w.scale * nAccounts}, `copy pgbench_accounts from stdin with (freeze on)`); err != nil {
		return fail("copy accounts", err)
	}
	if err := exec("commit"); err != nil {
		return fmt.Errorf("tpcb: generate: %w", err)
	}
	fmt.Fprintf(log, "tpcb: generated data in %s; vacuuming\n", time.Since(start).Round(time.Millisecond))
	for _, q := range []string{
		`vacuum analyze pgbench_branches`, `vacuum analyze pgbench_tellers`,
		`vacuum analyze pgbench_accounts`, `vacuum analyze pgbench_history`,
	} {
		if err := exec(q); err != nil {
			return fmt.Errorf("tpcb: vacuum: %w", err)
		}
	}
	fmt.Fprintf(log, "tpcb: creating primary keys\n")
	for _, q := range []string{
		`alter table pgbench_branches add primary key (bid)`,
		`alter table pgbench_tellers add primary key (tid)`,
		`alter table pgbench_accounts add primary key (aid)`,
	} {
		if err := exec(q); err != nil {
			return fmt.Errorf("tpcb: primary keys: %w", err)
		}
	}
	fmt.Fprintf(log, "tpcb: initialised scale %d in %s\n", w.scale, time.Since(start).Round(time.Millisecond))
	return nil
}

// accountRows streams pgbench's account rows in COPY text format: aid, bid, 0 and an
// empty filler, exactly as pgbench's client-side generator writes them.
type accountRows struct {
	n, next int64
	pending []byte
	buf     []byte
}

func (a *accountRows) Read(p []byte) (int, error) {
	if len(a.pending) == 0 {
		if a.next >= a.n {
			return 0, io.EOF
		}
		a.buf = a.buf[:0]
		for a.next < a.n && len(a.buf) < 64<<10 {
			k := a.next
			a.buf = strconv.AppendInt(a.buf, k+1, 10)
			a.buf = append(a.buf, '\t')
			a.buf = strconv.AppendInt(a.buf, k/nAccounts+1, 10)
			a.buf = append(a.buf, "\t0\t\n"...)
			a.next++
		}
		a.pending = a.buf
	}
	n := copy(p, a.pending)
	a.pending = a.pending[n:]
	return n, nil
}

// Verify checks that the branch, teller and account balances sum to the same total
// (each transaction adds its delta to one of each) and, for the read-write workload,
// that every acknowledged transaction left its history row.
func (w *Workload) Verify(ctx context.Context, pool *pgxpool.Pool) (result.Integrity, error) {
	res := result.Integrity{Checked: true}
	var a, b, t string
	var equal bool
	if err := pool.QueryRow(ctx, `SELECT a::text, b::text, t::text, a = b AND b = t FROM
  (SELECT coalesce(sum(abalance), 0) AS a FROM pgbench_accounts) x,
  (SELECT coalesce(sum(bbalance), 0) AS b FROM pgbench_branches) y,
  (SELECT coalesce(sum(tbalance), 0) AS t FROM pgbench_tellers) z`).Scan(&a, &b, &t, &equal); err != nil {
		return res, fmt.Errorf("tpcb: verify balances: %w", err)
	}
	res.BalanceConserved = equal
	if !equal {
		res.Details = append(res.Details, fmt.Sprintf("Balances disagree: accounts sum to %s, branches to %s, tellers to %s.", a, b, t))
	}
	if w.selectOnly {
		return res, nil
	}
	// Read the client's counts before the server's: a transaction is counted as
	// acknowledged only after its commit, so under load (a mid-run validation) the
	// history has at least every transaction counted here.
	acked, amb := w.acked.Load(), w.ambiguous.Load()
	var history int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pgbench_history`).Scan(&history); err != nil {
		return res, fmt.Errorf("tpcb: verify history: %w", err)
	}
	grew := history - w.historyAtSetup
	res.AcknowledgedWrites = acked
	res.Ambiguous = amb
	res.LostAcknowledgedWrites = max(0, acked-grew)
	res.AmbiguousCommitted = min(max(grew-acked, 0), amb)
	res.DuplicateWrites = max(0, grew-acked-amb)
	if res.LostAcknowledgedWrites > 0 {
		res.Details = append(res.Details, fmt.Sprintf("%d transactions were acknowledged but pgbench_history grew by only %d rows: %d acknowledged transactions are missing.", acked, grew, res.LostAcknowledgedWrites))
	}
	if res.DuplicateWrites > 0 {
		res.Details = append(res.Details, fmt.Sprintf("pgbench_history grew by %d rows, more than the %d acknowledged plus %d ambiguous transactions (another client may be writing).", grew, acked, amb))
	}
	return res, nil
}
