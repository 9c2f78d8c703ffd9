package banking

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// schemaVersion changes whenever the schema or the seeding scheme does, forcing a
// re-seed of data written by an older version.
const schemaVersion = "1"

// metaKey is the rehearse_meta row that records the seeding parameters.
const metaKey = "banking.seed"

var schemaDDL = []string{
	`CREATE TABLE IF NOT EXISTS rehearse_meta (key text PRIMARY KEY, value text NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS customers (
  id bigint PRIMARY KEY,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now())`,
	`CREATE TABLE IF NOT EXISTS accounts (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL,
  balance bigint NOT NULL,
  opening_balance bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now())`,
	`CREATE TABLE IF NOT EXISTS ledger_entries (
  id bigserial PRIMARY KEY,
  account_id bigint NOT NULL,
  amount bigint NOT NULL,
  kind text NOT NULL,
  ref uuid,
  created_at timestamptz NOT NULL DEFAULT now())`,
	`CREATE INDEX IF NOT EXISTS ledger_entries_account_id_id_idx ON ledger_entries (account_id, id DESC)`,
	`CREATE TABLE IF NOT EXISTS transfers (
  id uuid PRIMARY KEY,
  from_account bigint,
  to_account bigint,
  amount bigint NOT NULL,
  kind text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now())`,
	`CREATE TABLE IF NOT EXISTS user_sessions (
  id bigserial PRIMARY KEY,
  customer_id bigint NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  ended_at timestamptz)`,
}

// params describes the seeding parameters as stored in rehearse_meta.
func (w *Workload) params() string {
	return "v" + schemaVersion +
		" customers=" + strconv.FormatInt(w.customers, 10) +
		" accounts_per_customer=" + strconv.FormatInt(w.perCustomer, 10) +
		" opening_balance=" + strconv.FormatInt(w.openingBalance, 10)
}

// Setup creates the schema if needed and seeds customers and accounts with COPY. Data
// seeded earlier with the same parameters is reused (balances, ledger and transfers
// carry over, and the integrity invariants still hold); data seeded with different
// parameters is truncated and re-seeded, which is said on log.
func (w *Workload) Setup(ctx context.Context, pool *pgxpool.Pool, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	for _, ddl := range schemaDDL {
		if _, err := pool.Exec(ctx, ddl); err != nil {
			return fmt.Errorf("banking: create schema: %w", err)
		}
	}
	want := w.params()
	var have string
	err := pool.QueryRow(ctx, `SELECT value FROM rehearse_meta WHERE key = $1`, metaKey).Scan(&have)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("banking: read rehearse_meta: %w", err)
	}
	var nAccounts, nCustomers int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM customers)`).Scan(&nAccounts, &nCustomers); err != nil {
		return fmt.Errorf("banking: count accounts: %w", err)
	}
	switch {
	case have == want && nAccounts == w.accounts && nCustomers == w.customers:
		fmt.Fprintf(log, "banking: reusing seeded data (%d customers, %d accounts)\n", nCustomers, nAccounts)
		return w.seedSessions(ctx, pool, log)
	case have == want:
		fmt.Fprintf(log, "banking: seeded data is incomplete (%d of %d accounts); re-seeding\n", nAccounts, w.accounts)
	case have != "":
		fmt.Fprintf(log, "banking: data was seeded with %q, this run needs %q; truncating and re-seeding\n", have, want)
	case nAccounts > 0 || nCustomers > 0:
		fmt.Fprintf(log, "banking: tables hold data without seeding parameters; truncating and re-seeding\n")
	}
	if err := w.seed(ctx, pool, log, want); err != nil {
		return err
	}
	return w.seedSessions(ctx, pool, log)
}

// seedSessions gives every session that starts logged in its user_sessions row
// (id = session index + 1), replacing the rows of earlier runs.
func (w *Workload) seedSessions(ctx context.Context, pool *pgxpool.Pool, log io.Writer) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("banking: seed sessions: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `TRUNCATE user_sessions RESTART IDENTITY`); err != nil {
		return fmt.Errorf("banking: truncate user_sessions: %w", err)
	}
	if w.active > 0 {
		now := time.Now()
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"user_sessions"}, []string{"id", "customer_id", "started_at"},
			&rowSource{n: w.active, row: func(i int64, v []any) {
				v[0], v[1], v[2] = i+1, w.sessionCustomer(i), now
			}, vals: make([]any, 3)}); err != nil {
			return fmt.Errorf("banking: copy user_sessions: %w", err)
		}
		if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('user_sessions', 'id'), $1)`, w.active); err != nil {
			return fmt.Errorf("banking: user_sessions sequence: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("banking: commit sessions: %w", err)
	}
	if w.active > 0 {
		fmt.Fprintf(log, "banking: %d sessions start logged in\n", w.active)
	}
	return nil
}

func (w *Workload) seed(ctx context.Context, pool *pgxpool.Pool, log io.Writer, params string) error {
	start := time.Now()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("banking: seed: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `TRUNCATE customers, accounts, ledger_entries, transfers, user_sessions RESTART IDENTITY`); err != nil {
		return fmt.Errorf("banking: truncate: %w", err)
	}
	now := time.Now()
	fmt.Fprintf(log, "banking: seeding %d customers\n", w.customers)
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"customers"}, []string{"id", "name", "created_at"},
		&rowSource{n: w.customers, row: func(i int64, v []any) {
			v[0], v[1], v[2] = i+1, "customer "+strconv.FormatInt(i+1, 10), now
		}, vals: make([]any, 3)})
	if err != nil {
		return fmt.Errorf("banking: copy customers: %w", err)
	}
	fmt.Fprintf(log, "banking: seeded %d customers in %s; seeding %d accounts\n", n, time.Since(start).Round(time.Millisecond), w.accounts)
	per, bal := w.perCustomer, w.openingBalance
	n, err = tx.CopyFrom(ctx, pgx.Identifier{"accounts"}, []string{"id", "customer_id", "balance", "opening_balance", "updated_at"},
		&rowSource{n: w.accounts, row: func(i int64, v []any) {
			v[0], v[1], v[2], v[3], v[4] = i+1, i/per+1, bal, bal, now
		}, vals: make([]any, 5)})
	if err != nil {
		return fmt.Errorf("banking: copy accounts: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO rehearse_meta (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, metaKey, params); err != nil {
		return fmt.Errorf("banking: write rehearse_meta: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("banking: commit seed: %w", err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE customers, accounts, ledger_entries, transfers, user_sessions`); err != nil {
		return fmt.Errorf("banking: analyze: %w", err)
	}
	fmt.Fprintf(log, "banking: seeded %d accounts; setup took %s\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}

// rowSource generates n COPY rows without materialising them.
type rowSource struct {
	n, i int64
	row  func(i int64, v []any)
	vals []any
}

func (s *rowSource) Next() bool {
	if s.i >= s.n {
		return false
	}
	s.row(s.i, s.vals)
	s.i++
	return true
}

func (s *rowSource) Values() ([]any, error) { return s.vals, nil }
func (s *rowSource) Err() error             { return nil }
