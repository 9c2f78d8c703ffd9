package tpcb

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

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
