package banking

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rehearse-dev/rehearse/result"
)

const (
	// sqlAccountViolations counts accounts whose balance is not their opening balance
	// plus the sum of their ledger.
	sqlAccountViolations = `SELECT count(*) FROM accounts a
  LEFT JOIN (SELECT account_id, sum(amount) AS s FROM ledger_entries GROUP BY account_id) l ON l.account_id = a.id
 WHERE a.balance <> a.opening_balance + coalesce(l.s, 0)`
	// sqlTotals returns total balance, total opening balance and the money that entered
	// or left the bank (deposits, interest, fees).
	sqlTotals = `SELECT (SELECT coalesce(sum(balance), 0) FROM accounts)::text,
       (SELECT coalesce(sum(opening_balance), 0) FROM accounts)::text,
       (SELECT coalesce(sum(amount), 0) FROM transfers WHERE kind <> 'transfer')::text,
       (SELECT coalesce(sum(balance), 0) FROM accounts) =
         (SELECT coalesce(sum(opening_balance), 0) FROM accounts) +
         (SELECT coalesce(sum(amount), 0) FROM transfers WHERE kind <> 'transfer')`
	// sqlLedgerVsTransfers checks every transfers row against the ledger rows that
	// reference it, and finds ledger rows referencing no transfers row.
	sqlLedgerVsTransfers = `WITH l AS (
  SELECT ref, count(*) AS n, sum(amount) AS s,
         coalesce(sum(amount) FILTER (WHERE kind = 'transfer_in'), 0) AS inflow
    FROM ledger_entries WHERE ref IS NOT NULL GROUP BY ref)
SELECT count(*) FILTER (WHERE t.id IS NULL),
       coalesce(sum(l.n) FILTER (WHERE t.id IS NULL), 0)::bigint,
       count(*) FILTER (WHERE t.kind = 'transfer' AND l.ref IS NOT NULL AND (l.s <> 0 OR l.n <> 2 OR l.inflow <> t.amount)),
       count(*) FILTER (WHERE t.kind = 'deposit' AND l.ref IS NOT NULL AND (l.n <> 1 OR l.s <> t.amount)),
       count(*) FILTER (WHERE t.kind IN ('interest', 'fee') AND l.ref IS NOT NULL AND l.s <> t.amount),
       count(*) FILTER (WHERE l.ref IS NULL AND (t.kind IN ('transfer', 'deposit') OR t.amount <> 0))
  FROM l FULL JOIN transfers t ON t.id = l.ref`
	// sqlAcknowledged resolves the client's outcome log against the database.
	sqlAcknowledged = `SELECT
       count(*) FILTER (WHERE NOT k.ambiguous AND t.id IS NULL),
       count(*) FILTER (WHERE k.ambiguous AND t.id IS NOT NULL),
       coalesce(sum(greatest(l.n - CASE k.kind WHEN 'transfer' THEN 2 WHEN 'deposit' THEN 1 ELSE l.n END, 0)), 0)::bigint,
       count(*) FILTER (WHERE NOT k.ambiguous AND t.id IS NOT NULL AND (t.amount <> k.amount OR t.kind <> k.kind)),
       count(*) - count(DISTINCT k.id)
  FROM rehearse_ack k
  LEFT JOIN transfers t ON t.id = k.id
  LEFT JOIN (SELECT ref, count(*) AS n FROM ledger_entries WHERE ref IN (SELECT id FROM rehearse_ack) GROUP BY ref) l
         ON l.ref = k.id`
)

// Verify checks the bank's integrity after the run:
//   - every account's balance equals its opening balance plus its ledger;
//   - every transfer's ledger rows sum to zero and move its amount; every deposit,
//     interest and fee row matches its ledger rows; no ledger row is orphaned;
//   - total balance equals total opening balance plus the money that entered or left
//     the bank through deposits, interest and fees;
//   - every acknowledged key is present exactly once with the right amount and
//     ledger rows (absent ones are lost acknowledged writes, extra ledger rows are
//     duplicates), and ambiguous keys are resolved to committed or not.
//
// The outcome log is loaded with COPY into a temporary table and joined, so hundreds
// of thousands of keys verify in about a second.
func (w *Workload) Verify(ctx context.Context, pool *pgxpool.Pool) (result.Integrity, error) {
	var res result.Integrity
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("banking: verify: %w", err)
	}
	defer conn.Release()
	c := conn.Conn()
	// The checks are a few large hash joins and aggregates; give them memory so they do
	// not spill, and hand the connection back as it was.
	if _, err := c.Exec(ctx, `SET work_mem = '256MB'`); err != nil {
		return res, fmt.Errorf("banking: verify: %w", err)
	}
	defer func() { _, _ = c.Exec(context.WithoutCancel(ctx), `RESET work_mem`) }()

	bank, err := checkBank(ctx, c)
	if err != nil {
		return res, err
	}
	acked, ambiguous := w.log.counts()
	res.Checked = true
	res.AcknowledgedWrites = acked
	res.Ambiguous = ambiguous
	ack, err := w.checkAcknowledged(ctx, c)
	if err != nil {
		return res, err
	}
	res.LostAcknowledgedWrites = ack.lost
	res.AmbiguousCommitted = ack.ambCommitted
	res.DuplicateWrites = ack.dupLedger + ack.dupKeys
	res.Details = integrityDetails(bank, ack, acked)
	res.BalanceConserved = bank.conserved() && ack.mismatched == 0
	return res, nil
}

// bankCheck is what the checks of the bank's own tables found: accounts against the
// ledger, total money against what entered or left, and transfers against their
// ledger entries.
type bankCheck struct {
	violations                         int64
	total, opening, external           string
	totalsOK                           bool
	orphanRefs, orphanRows             int64
	badTransfers, badDeposits, badJobs int64
	noLedger                           int64
}

// conserved reports whether the bank's tables account for every cent.
func (b bankCheck) conserved() bool {
	return b.violations == 0 && b.totalsOK && b.orphanRefs == 0 && b.badTransfers == 0 &&
		b.badDeposits == 0 && b.badJobs == 0 && b.noLedger == 0
}

// checkBank runs the checks that need nothing but the database.
func checkBank(ctx context.Context, c *pgx.Conn) (bankCheck, error) {
	var b bankCheck
	if err := c.QueryRow(ctx, sqlAccountViolations).Scan(&b.violations); err != nil {
		return b, fmt.Errorf("banking: verify accounts: %w", err)
	}
	if err := c.QueryRow(ctx, sqlTotals).Scan(&b.total, &b.opening, &b.external, &b.totalsOK); err != nil {
		return b, fmt.Errorf("banking: verify totals: %w", err)
	}
	if err := c.QueryRow(ctx, sqlLedgerVsTransfers).Scan(&b.orphanRefs, &b.orphanRows, &b.badTransfers, &b.badDeposits, &b.badJobs, &b.noLedger); err != nil {
		return b, fmt.Errorf("banking: verify ledger: %w", err)
	}
	return b, nil
}

// ackCheck is what resolving the client's outcome log against the database found.
type ackCheck struct {
	lost, ambCommitted, dupLedger, mismatched, dupKeys int64
}

// checkAcknowledged loads the outcome log into a temporary table, joins it against
// the transfers and the ledger, and drops the table again.
func (w *Workload) checkAcknowledged(ctx context.Context, c *pgx.Conn) (ackCheck, error) {
	var a ackCheck
	if err := w.loadOutcomes(ctx, c); err != nil {
		return a, err
	}
	if err := c.QueryRow(ctx, sqlAcknowledged).Scan(&a.lost, &a.ambCommitted, &a.dupLedger, &a.mismatched, &a.dupKeys); err != nil {
		return a, fmt.Errorf("banking: verify acknowledged writes: %w", err)
	}
	if _, err := c.Exec(ctx, `DROP TABLE IF EXISTS rehearse_ack`); err != nil {
		return a, fmt.Errorf("banking: verify: drop temp table: %w", err)
	}
	return a, nil
}

// integrityDetails says in a sentence each what the checks found wrong; acked is the
// number of acknowledged writes. It is nil when all is well.
func integrityDetails(b bankCheck, a ackCheck, acked int64) []string {
	var d []string
	if b.violations > 0 {
		d = append(d, fmt.Sprintf("%d accounts have a balance that differs from their opening balance plus their ledger entries.", b.violations))
	}
	if !b.totalsOK {
		d = append(d, fmt.Sprintf("Total balance is %s cents but opening balances (%s) plus deposits, interest and fees (%s) make a different amount.", b.total, b.opening, b.external))
	}
	if b.orphanRefs > 0 {
		d = append(d, fmt.Sprintf("%d ledger entries reference %d transfers that do not exist.", b.orphanRows, b.orphanRefs))
	}
	if b.badTransfers > 0 {
		d = append(d, fmt.Sprintf("%d transfers have ledger entries that do not sum to zero or do not move the transfer's amount.", b.badTransfers))
	}
	if b.badDeposits > 0 {
		d = append(d, fmt.Sprintf("%d deposits do not have exactly one ledger entry of their amount.", b.badDeposits))
	}
	if b.badJobs > 0 {
		d = append(d, fmt.Sprintf("%d interest or fee batches have ledger entries that do not add up to the batch total.", b.badJobs))
	}
	if b.noLedger > 0 {
		d = append(d, fmt.Sprintf("%d transfers, deposits or batches have no ledger entries.", b.noLedger))
	}
	if a.lost > 0 {
		d = append(d, fmt.Sprintf("%d of %d acknowledged writes are missing from the transfers table.", a.lost, acked))
	}
	if a.dupLedger > 0 {
		d = append(d, fmt.Sprintf("%d extra ledger entries were written for acknowledged or ambiguous writes.", a.dupLedger))
	}
	if a.dupKeys > 0 {
		d = append(d, fmt.Sprintf("%d idempotency keys were recorded more than once by the client.", a.dupKeys))
	}
	if a.mismatched > 0 {
		d = append(d, fmt.Sprintf("%d acknowledged writes are present with a different amount or kind than acknowledged.", a.mismatched))
	}
	return d
}

// loadOutcomes copies the outcome log into the temporary table rehearse_ack.
func (w *Workload) loadOutcomes(ctx context.Context, c *pgx.Conn) error {
	if _, err := c.Exec(ctx, `DROP TABLE IF EXISTS rehearse_ack`); err != nil {
		return fmt.Errorf("banking: verify: %w", err)
	}
	if _, err := c.Exec(ctx, `CREATE TEMP TABLE rehearse_ack (id uuid NOT NULL, kind text NOT NULL, amount bigint NOT NULL, ambiguous bool NOT NULL)`); err != nil {
		return fmt.Errorf("banking: verify: create temp table: %w", err)
	}
	src := &outcomeSource{chunks: w.log.snapshot(), vals: make([]any, 4), j: -1}
	if _, err := c.CopyFrom(ctx, pgx.Identifier{"rehearse_ack"}, []string{"id", "kind", "amount", "ambiguous"}, src); err != nil {
		return fmt.Errorf("banking: verify: copy outcome log: %w", err)
	}
	if _, err := c.Exec(ctx, `ANALYZE rehearse_ack`); err != nil {
		return fmt.Errorf("banking: verify: analyze outcome log: %w", err)
	}
	return nil
}

// outcomeSource streams the outcome log's chunks to COPY.
type outcomeSource struct {
	chunks [][]entry
	i, j   int
	vals   []any
}

func (s *outcomeSource) Next() bool {
	for s.i < len(s.chunks) {
		s.j++
		if s.j < len(s.chunks[s.i]) {
			e := s.chunks[s.i][s.j]
			s.vals[0], s.vals[1], s.vals[2], s.vals[3] = e.key, kindNames[e.kind()], e.amount(), e.ambiguous()
			return true
		}
		s.i, s.j = s.i+1, -1
	}
	return false
}

func (s *outcomeSource) Values() ([]any, error) { return s.vals, nil }
func (s *outcomeSource) Err() error             { return nil }
