package banking

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/rehearse-dev/rehearse/workload"
)

// ErrMissingAccount is returned when an account the workload expects does not exist:
// the data was changed behind its back.
var ErrMissingAccount = errors.New("banking: account missing")

// The SQL is constant so that pgx's statement cache prepares each statement once per
// connection.
const (
	sqlLogin     = `INSERT INTO user_sessions (customer_id, started_at) VALUES ($1, now()) RETURNING id`
	sqlLogout    = `UPDATE user_sessions SET ended_at = now() WHERE id = $1`
	sqlBalance   = `SELECT id, balance FROM accounts WHERE id BETWEEN $1 AND $2 ORDER BY id`
	sqlStatement = `SELECT id, amount, kind, ref, created_at FROM ledger_entries WHERE account_id = $1 ORDER BY id DESC LIMIT 20`
	sqlDashboard = `SELECT (SELECT coalesce(sum(balance), 0)::bigint FROM accounts WHERE id BETWEEN $1 AND $2),
       count(*), coalesce(sum(amount), 0)::bigint
  FROM ledger_entries
 WHERE account_id BETWEEN $1 AND $2 AND created_at > now() - interval '1 hour'`
	// sqlLockPair locks both accounts in id order (LockRows sits above the sort), so two
	// transfers between the same accounts cannot deadlock.
	sqlLockPair = `SELECT id, balance FROM accounts WHERE id IN ($1, $2) ORDER BY id FOR UPDATE`
	sqlTransfer = `WITH a AS (
  UPDATE accounts SET balance = balance + CASE WHEN id = $1 THEN -$3::bigint ELSE $3::bigint END, updated_at = now()
   WHERE id IN ($1, $2)
), l AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref)
  VALUES ($1, -$3::bigint, 'transfer_out', $4), ($2, $3::bigint, 'transfer_in', $4)
)
INSERT INTO transfers (id, from_account, to_account, amount, kind, created_at)
VALUES ($4, $1, $2, $3, 'transfer', now())`
	// sqlDeposit writes the ledger and transfers rows only for an account it updated,
	// so a missing account shows as zero rows affected.
	sqlDeposit = `WITH a AS (
  UPDATE accounts SET balance = balance + $2::bigint, updated_at = now() WHERE id = $1 RETURNING id
), l AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref) SELECT id, $2::bigint, 'deposit', $3::uuid FROM a
)
INSERT INTO transfers (id, from_account, to_account, amount, kind, created_at)
SELECT $3::uuid, NULL, id, $2::bigint, 'deposit', now() FROM a`
	// The batch jobs lock their range in id order in d, compute each account's delta
	// from the locked (latest) balance, apply exactly that delta, write it to the
	// ledger, and record the batch total in one transfers row.
	sqlInterest = `WITH d AS (
  SELECT id, balance / 10000 AS delta FROM accounts WHERE id BETWEEN $1 AND $2 ORDER BY id FOR UPDATE
), u AS (
  UPDATE accounts a SET balance = a.balance + d.delta, updated_at = now()
    FROM d WHERE a.id = d.id AND a.id BETWEEN $1 AND $2 AND d.delta <> 0
  RETURNING a.id, d.delta
), l AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref) SELECT id, delta, 'interest', $3 FROM u
)
INSERT INTO transfers (id, from_account, to_account, amount, kind, created_at)
SELECT $3, NULL, NULL, coalesce(sum(delta), 0)::bigint, 'interest', now() FROM u
RETURNING amount`
	sqlFee = `WITH d AS (
  SELECT id, -least(balance, 25) AS delta FROM accounts WHERE id BETWEEN $1 AND $2 ORDER BY id FOR UPDATE
), u AS (
  UPDATE accounts a SET balance = a.balance + d.delta, updated_at = now()
    FROM d WHERE a.id = d.id AND a.id BETWEEN $1 AND $2 AND d.delta <> 0
  RETURNING a.id, d.delta
), l AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref) SELECT id, delta, 'fee', $3 FROM u
)
INSERT INTO transfers (id, from_account, to_account, amount, kind, created_at)
SELECT $3, NULL, NULL, coalesce(sum(delta), 0)::bigint, 'fee', now() FROM u
RETURNING amount`
)

func (w *Workload) login(ctx context.Context, c *pgx.Conn, s *workload.Session, _ *rand.Rand) error {
	var id int64
	if err := c.QueryRow(ctx, sqlLogin, s.Customer).Scan(&id); err != nil {
		return err
	}
	s.Token = id
	return nil
}

func (w *Workload) logout(ctx context.Context, c *pgx.Conn, s *workload.Session, _ *rand.Rand) error {
	if s.Token != 0 {
		if _, err := c.Exec(ctx, sqlLogout, s.Token); err != nil {
			return err
		}
	}
	s.Token = 0
	s.Left = 0
	return nil
}

// drain reads a result set without decoding it, as a client rendering a page would
// read it, and returns the number of rows.
func drain(rows pgx.Rows) (int, error) {
	n := 0
	for rows.Next() {
		_ = rows.RawValues()
		n++
	}
	rows.Close()
	return n, rows.Err()
}

func (w *Workload) balance(ctx context.Context, c *pgx.Conn, s *workload.Session, _ *rand.Rand) error {
	first := w.firstAccount(s.Customer)
	rows, err := c.Query(ctx, sqlBalance, first, first+w.perCustomer-1)
	if err != nil {
		return err
	}
	_, err = drain(rows)
	return err
}

func (w *Workload) statement(ctx context.Context, c *pgx.Conn, s *workload.Session, r *rand.Rand) error {
	acct := w.firstAccount(s.Customer) + r.Int64N(w.perCustomer)
	rows, err := c.Query(ctx, sqlStatement, acct)
	if err != nil {
		return err
	}
	_, err = drain(rows)
	return err
}

func (w *Workload) dashboard(ctx context.Context, c *pgx.Conn, s *workload.Session, _ *rand.Rand) error {
	first := w.firstAccount(s.Customer)
	var total, n, sum int64
	return c.QueryRow(ctx, sqlDashboard, first, first+w.perCustomer-1).Scan(&total, &n, &sum)
}

func (w *Workload) transfer(ctx context.Context, c *pgx.Conn, s *workload.Session, r *rand.Rand) error {
	from := w.firstAccount(s.Customer) + r.Int64N(w.perCustomer)
	to := r.Int64N(w.accounts-1) + 1
	if to >= from {
		to++
	}
	amount := r.Int64N(max(w.openingBalance/4, 1)) + 1
	key := w.newKey(r)

	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	rows, err := tx.Query(ctx, sqlLockPair, from, to)
	if err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	var id, bal, fromBal int64
	n := 0
	for rows.Next() {
		if err := rows.Scan(&id, &bal); err != nil {
			rows.Close()
			_ = tx.Rollback(ctx)
			return err
		}
		if id == from {
			fromBal = bal
		}
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	if n != 2 {
		_ = tx.Rollback(ctx)
		return fmt.Errorf("%w: transfer %d → %d found %d of 2 accounts", ErrMissingAccount, from, to, n)
	}
	if fromBal < amount {
		// Declined: a business outcome. Nothing was written.
		w.insufficient.Add(1)
		return tx.Rollback(ctx)
	}
	if _, err := tx.Exec(ctx, sqlTransfer, from, to, amount, uuidArg(key)); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return w.commit(ctx, tx, key, kindTransfer, amount)
}

func (w *Workload) deposit(ctx context.Context, c *pgx.Conn, s *workload.Session, r *rand.Rand) error {
	acct := w.firstAccount(s.Customer) + r.Int64N(w.perCustomer)
	amount := r.Int64N(max(w.openingBalance/10, 1)) + 1
	key := w.newKey(r)
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, sqlDeposit, acct, amount, uuidArg(key))
	if err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	if tag.RowsAffected() != 1 {
		_ = tx.Rollback(ctx)
		return fmt.Errorf("%w: deposit to %d", ErrMissingAccount, acct)
	}
	return w.commit(ctx, tx, key, kindDeposit, amount)
}

func (w *Workload) backgroundJob(ctx context.Context, c *pgx.Conn, _ *workload.Session, r *rand.Rand) error {
	lo := r.Int64N(max(w.accounts-jobSize+1, 1)) + 1
	hi := min(lo+jobSize-1, w.accounts)
	sql, kind := sqlInterest, kindInterest
	if r.IntN(4) == 0 {
		sql, kind = sqlFee, kindFee
	}
	key := w.newKey(r)
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	var total int64
	if err := tx.QueryRow(ctx, sql, lo, hi, uuidArg(key)).Scan(&total); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	return w.commit(ctx, tx, key, kind, total)
}

// commit commits tx and records the write's outcome. A COMMIT the server answered
// with an error (including a FATAL such as 57P01 when the backend was terminated while
// idle in the transaction) committed nothing: a server that has committed always
// reports CommandComplete first, and when it is terminated while waiting for a
// synchronous standby after committing locally it closes the connection without an
// ErrorResponse. Anything else — the connection broke, the deadline expired — leaves the
// outcome unknown; it is recorded as ambiguous and resolved by idempotency key in Verify.
func (w *Workload) commit(ctx context.Context, tx pgx.Tx, key [16]byte, kind byte, amount int64) error {
	err := tx.Commit(ctx)
	if err == nil {
		w.log.add(key, kind, amount, false)
		return nil
	}
	if definitelyFailed(err) {
		return err
	}
	w.log.add(key, kind, amount, true)
	return fmt.Errorf("%w: %w", workload.ErrAmbiguous, err)
}

// definitelyFailed reports whether a COMMIT error proves nothing was committed.
func definitelyFailed(err error) bool {
	var pgErr *pgconn.PgError
	return errors.Is(err, pgx.ErrTxCommitRollback) || errors.As(err, &pgErr)
}

// uuidArg passes an idempotency key as a typed UUID, so it encodes in every pgx exec
// mode, including the exec mode used through PgBouncer (no prepared statement tells
// pgx the parameter's type there).
func uuidArg(key [16]byte) pgtype.UUID { return pgtype.UUID{Bytes: key, Valid: true} }
