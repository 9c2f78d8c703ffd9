package tpcb

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/result"
)

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
