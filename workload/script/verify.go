package script

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/result"
)

// ackTarget is where write scripts store :txid, as configured and as found in the
// catalog.
type ackTarget struct {
	table, column string
	// Resolved by Baseline (or Verify): the quoted, schema-qualified table, the
	// quoted column, and the cast that turns the outcome log's uuids into the
	// column's type ("" for uuid, "::text" for text types).
	qtable, qcolumn, cast string
}

// invariant is a configured invariant with its value before the load.
type invariant struct {
	Invariant
	number     *big.Rat // nil for "unchanged"
	before     string
	haveBefore bool
}

// nullText shows a NULL value in results.
const nullText = "NULL"

func (w *Workload) newInvariants(cfg []Invariant) []string {
	var problems []string
	seen := map[string]bool{}
	for i, inv := range cfg {
		what := fmt.Sprintf("invariant %q", inv.Name)
		if inv.Name == "" {
			what = fmt.Sprintf("invariant %d", i+1)
			problems = append(problems, what+": give it a name")
		} else if seen[inv.Name] {
			problems = append(problems, what+": the name is used twice; give each invariant its own")
		}
		seen[inv.Name] = true
		if strings.TrimSpace(inv.SQL) == "" {
			problems = append(problems, what+": the SQL is empty; give a query returning one row with one column")
		}
		in := invariant{Invariant: inv}
		if !strings.EqualFold(inv.Expect, ExpectUnchanged) {
			r, ok := exactNumber(inv.Expect)
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: expect %q: use unchanged or a number, e.g. 0", what, inv.Expect))
			}
			in.number = r
		} else {
			in.Expect = ExpectUnchanged
		}
		w.invariants = append(w.invariants, in)
	}
	return problems
}

// Baseline checks what only the database can tell, after Setup and before the
// load: that the acknowledged table and column exist and can hold :txid, that every
// invariant's SQL runs and returns exactly one row with one column, and that the
// scripts' statements prepare (see checkStatements). It reports every problem at
// once, in an error wrapping ErrInvalid, and records each invariant's value before
// the load, which Verify compares with.
func (w *Workload) Baseline(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("script: baseline: %w", err)
	}
	defer conn.Release()
	var fields, problems []string
	if w.ack != nil {
		field, msg, err := w.ack.resolve(ctx, conn.Conn())
		if err != nil {
			return fmt.Errorf("script: baseline: %w", err)
		}
		if msg != "" {
			fields, problems = append(fields, field), append(problems, msg)
		}
	}
	ps, err := w.checkStatements(ctx, conn.Conn())
	if err != nil {
		return fmt.Errorf("script: baseline: %w", err)
	}
	problems = append(problems, ps...)
	fields = append(fields, make([]string, len(ps))...)
	for i := range w.invariants {
		inv := &w.invariants[i]
		text, msg, err := evalInvariant(ctx, conn.Conn(), inv.SQL)
		if err != nil {
			return fmt.Errorf("script: baseline: invariant %q: %w", inv.Name, err)
		}
		if msg != "" {
			fields = append(fields, fmt.Sprintf("invariants[%d].sql", i))
			problems = append(problems, fmt.Sprintf("invariant %q: %s", inv.Name, msg))
			continue
		}
		inv.before, inv.haveBefore = text, true
	}
	if len(problems) > 0 {
		return invalidAt(fields, problems)
	}
	return nil
}

// resolve finds the acknowledged table and column in the catalog. It returns a
// message saying what is wrong with them and the field it is about (table or
// column, as the scenario spells them), or an error when it could not look.
func (a *ackTarget) resolve(ctx context.Context, c *pgx.Conn) (field, msg string, err error) {
	var qtable *string
	if err := c.QueryRow(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(r.relname)
  FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace WHERE r.oid = to_regclass($1)`, a.table).Scan(&qtable); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return ackTable, fmt.Sprintf("acknowledged: table %q: %s", a.table, describePgError(pgErr)), nil
		}
		return "", "", err
	}
	if qtable == nil {
		return ackTable, fmt.Sprintf("acknowledged: table %s does not exist (after setup): create it in the setup file, or fix the name", a.table), nil
	}
	var qcolumn, typ, category *string
	var columns string
	if err := c.QueryRow(ctx, `SELECT (SELECT quote_ident(a.attname) FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped),
       (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped),
       (SELECT t.typcategory::text FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped),
       coalesce((SELECT string_agg(a.attname, ', ' ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped), '')`,
		a.table, a.column).Scan(&qcolumn, &typ, &category, &columns); err != nil {
		return "", "", err
	}
	switch {
	case qcolumn == nil:
		return ackColumn, fmt.Sprintf("acknowledged: table %s has no column %s (its columns: %s): add it, or fix the name", a.table, a.column, columns), nil
	case *typ == "uuid":
		a.cast = ""
	case *category == "S":
		a.cast = "::text"
	default:
		return ackColumn, fmt.Sprintf("acknowledged: column %s.%s is %s; it must be uuid or text to hold :txid", a.table, a.column, *typ), nil
	}
	a.qtable, a.qcolumn = *qtable, *qcolumn
	return "", "", nil
}

// The acknowledged fields, as the scenario's workload section spells them.
const (
	ackTable  = "acknowledged.table"
	ackColumn = "acknowledged.column"
)

// evalInvariant runs an invariant's query in a read-only transaction and returns
// its value as text (NULL as "NULL"). msg says what is wrong with the query (it
// fails, or does not return one row with one column); err is any other failure.
func evalInvariant(ctx context.Context, c *pgx.Conn, sql string) (text, msg string, err error) {
	pc := c.PgConn()
	if _, err := pc.Exec(ctx, "BEGIN TRANSACTION READ ONLY").ReadAll(); err != nil {
		return "", "", err
	}
	defer func() {
		if _, rerr := pc.Exec(context.WithoutCancel(ctx), "ROLLBACK").ReadAll(); rerr != nil && err == nil {
			err = rerr
		}
	}()
	rr := pc.ExecParams(ctx, sql, nil, nil, nil, nil)
	rows := 0
	var val []byte
	for rr.NextRow() {
		rows++
		if v := rr.Values(); len(v) > 0 {
			val = append(val[:0], v[0]...)
			if v[0] == nil {
				val = nil
			}
		}
	}
	fields := len(rr.FieldDescriptions())
	if _, err := rr.Close(); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return "", fmt.Sprintf("its SQL fails: %s: fix the query", describePgError(pgErr)), nil
		}
		return "", "", err
	}
	switch {
	case fields != 1:
		return "", fmt.Sprintf("its SQL returns %d columns; it must return exactly one row with one column", fields), nil
	case rows != 1:
		return "", fmt.Sprintf("its SQL returns %d rows; it must return exactly one row with one column (aggregate, or add LIMIT 1 if one row is meant)", rows), nil
	case val == nil:
		return nullText, "", nil
	}
	return string(val), "", nil
}

// Verify checks integrity after the run against the writer: every acknowledged
// execution of a tracked write script left its :txid exactly once in the
// acknowledged column (missing ones are lost, extra rows duplicates), ambiguous
// ones are resolved by looking their txid up, and every invariant holds.
// BalanceConserved reports that every invariant held.
func (w *Workload) Verify(ctx context.Context, pool *pgxpool.Pool) (result.Integrity, error) {
	res := result.Integrity{Checked: true}
	// Read the client's counts before the server's: an execution is counted only
	// after it completed.
	acked, ambiguous := w.log.counts()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return res, fmt.Errorf("script: verify: %w", err)
	}
	defer conn.Release()
	c := conn.Conn()
	if w.ack != nil {
		if w.ack.qtable == "" {
			field, msg, err := w.ack.resolve(ctx, c)
			if err != nil {
				return res, fmt.Errorf("script: verify: %w", err)
			}
			if msg != "" {
				return res, invalidAt([]string{field}, []string{msg})
			}
		}
		res.AcknowledgedWrites, res.Ambiguous = acked, ambiguous
		lost, ambCommitted, dups, err := w.checkAcknowledged(ctx, c)
		if err != nil {
			return res, err
		}
		res.LostAcknowledgedWrites, res.AmbiguousCommitted, res.DuplicateWrites = lost, ambCommitted, dups
		where := w.ack.table + "." + w.ack.column
		if lost > 0 {
			res.Details = append(res.Details, fmt.Sprintf("%d of %d acknowledged executions are missing from %s: their :txid is not there.", lost, acked, where))
		}
		if dups > 0 {
			res.Details = append(res.Details, fmt.Sprintf("%d extra rows in %s repeat the :txid of an acknowledged or ambiguous execution.", dups, where))
		}
	}
	res.BalanceConserved = true
	for i := range w.invariants {
		inv := &w.invariants[i]
		out := result.Invariant{Name: inv.Name, Expect: inv.Expect, Before: inv.before}
		after, msg, err := evalInvariant(ctx, c, inv.SQL)
		if err != nil {
			return res, fmt.Errorf("script: verify invariant %q: %w", inv.Name, err)
		}
		out.After = after
		switch {
		case msg != "":
			out.Detail = msg
		case inv.number == nil && !inv.haveBefore:
			out.Detail = "no value was recorded before the load (Baseline did not run), so there is nothing to compare with"
		case inv.number == nil:
			out.Passed = after == inv.before
			if !out.Passed {
				out.Detail = fmt.Sprintf("the value changed from %s to %s", inv.before, after)
			}
		default:
			afterOK := sameNumber(after, inv.number)
			beforeOK := !inv.haveBefore || sameNumber(inv.before, inv.number)
			out.Passed = afterOK && beforeOK
			switch {
			case !afterOK && !beforeOK:
				out.Detail = fmt.Sprintf("expected %s, but it was %s before the load and %s after", inv.Expect, inv.before, after)
			case !afterOK:
				out.Detail = fmt.Sprintf("expected %s, but it is %s after the load (it was %s before)", inv.Expect, after, orUnknown(inv.before, inv.haveBefore))
			case !beforeOK:
				out.Detail = fmt.Sprintf("expected %s, but it was already %s before the load (it is %s after)", inv.Expect, inv.before, after)
			}
		}
		if !out.Passed {
			res.BalanceConserved = false
			res.Details = append(res.Details, fmt.Sprintf("Invariant %q (expect %s) failed: before %s, after %s: %s.",
				inv.Name, inv.Expect, orUnknown(inv.before, inv.haveBefore), orUnknown(after, msg == ""), out.Detail))
		}
		res.Invariants = append(res.Invariants, out)
	}
	return res, nil
}

func orUnknown(v string, known bool) string {
	if !known {
		return "unknown"
	}
	return v
}

// sameNumber reports whether text is a number equal to want.
func sameNumber(text string, want *big.Rat) bool {
	r, ok := exactNumber(text)
	return ok && r.Cmp(want) == 0
}

// checkAcknowledged copies the outcome log into a temporary table and joins it
// with the acknowledged column: acknowledged txids that are absent are lost,
// ambiguous ones that are present committed, and rows beyond the first for a txid
// are duplicates.
func (w *Workload) checkAcknowledged(ctx context.Context, c *pgx.Conn) (lost, ambCommitted, dups int64, err error) {
	fail := func(step string, err error) (int64, int64, int64, error) {
		return 0, 0, 0, fmt.Errorf("script: verify acknowledged writes: %s: %w", step, err)
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		return fail("begin", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// A few large hash joins: give them memory so they do not spill.
	if _, err := tx.Exec(ctx, `SET LOCAL work_mem = '256MB'`); err != nil {
		return fail("set work_mem", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE rehearse_script_ack (id uuid NOT NULL, ambiguous bool NOT NULL) ON COMMIT DROP`); err != nil {
		return fail("create temporary table", err)
	}
	ackedKeys, ambKeys := w.log.snapshot()
	src := &keySource{sets: [2][][][16]byte{ackedKeys, ambKeys}, vals: make([]any, 2), j: -1}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"rehearse_script_ack"}, []string{"id", "ambiguous"}, src); err != nil {
		return fail("copy the outcome log", err)
	}
	if _, err := tx.Exec(ctx, `ANALYZE rehearse_script_ack`); err != nil {
		return fail("analyze", err)
	}
	a := w.ack
	q := fmt.Sprintf(`WITH c AS (
  SELECT t.%[2]s AS key, count(*) AS n FROM %[1]s t
   WHERE t.%[2]s IN (SELECT id%[3]s FROM rehearse_script_ack) GROUP BY t.%[2]s)
SELECT count(*) FILTER (WHERE NOT k.ambiguous AND c.n IS NULL),
       count(*) FILTER (WHERE k.ambiguous AND c.n IS NOT NULL),
       coalesce(sum(c.n - 1), 0)::bigint
  FROM rehearse_script_ack k LEFT JOIN c ON c.key = k.id%[3]s`, a.qtable, a.qcolumn, a.cast)
	if err := tx.QueryRow(ctx, q).Scan(&lost, &ambCommitted, &dups); err != nil {
		return fail("join", err)
	}
	return lost, ambCommitted, dups, nil
}

// keySource streams the acknowledged keys, then the ambiguous ones, to COPY.
type keySource struct {
	sets    [2][][][16]byte
	set, i  int
	j       int
	vals    []any
	current [16]byte
}

func (s *keySource) Next() bool {
	for s.set < len(s.sets) {
		chunks := s.sets[s.set]
		for s.i < len(chunks) {
			s.j++
			if s.j < len(chunks[s.i]) {
				s.current = chunks[s.i][s.j]
				s.vals[0], s.vals[1] = s.current, s.set == 1
				return true
			}
			s.i, s.j = s.i+1, -1
		}
		s.set, s.i, s.j = s.set+1, 0, -1
	}
	return false
}

func (s *keySource) Values() ([]any, error) { return s.vals, nil }
func (s *keySource) Err() error             { return nil }

// stateVerbs start statements that change what later statements find: when a
// script has one, a statement may refer to what it creates, so only syntax errors
// are reported before the load.
var stateVerbs = map[string]bool{
	"create": true, "alter": true, "drop": true, "set": true, "reset": true, "comment": true,
	"grant": true, "revoke": true, "discard": true, "declare": true, "prepare": true,
	"deallocate": true, "load": true, "security": true,
}

// checkStatements prepares (never runs) every statement of the scripts as the
// load will, so that an SQL syntax error, a missing table or column, or a
// parameter whose type cannot be inferred is reported before the load rather than
// by every execution. Compound commands cannot be prepared and are not checked.
func (w *Workload) checkStatements(ctx context.Context, c *pgx.Conn) ([]string, error) {
	stateful := false
	for _, sc := range w.scripts {
		for _, in := range sc.prog {
			if in.op == opSQL && stateVerbs[in.stmt.verb] {
				stateful = true
			}
		}
	}
	var problems []string
	for _, sc := range w.scripts {
		for _, in := range sc.prog {
			if in.op != opSQL || in.stmt.compound {
				continue
			}
			_, err := c.PgConn().Prepare(ctx, "", in.stmt.sql, nil)
			var pgErr *pgconn.PgError
			switch {
			case errors.As(err, &pgErr):
				if pgErr.Code == "42601" || !stateful && strings.HasPrefix(pgErr.Code, "42") {
					problems = append(problems, fmt.Sprintf("%s:%d: %s: %s: fix the statement (it was prepared against the database after setup, not run)",
						sc.file, in.line, in.stmt.first, describePgError(pgErr)))
				}
			case err != nil:
				return nil, err
			}
		}
	}
	return problems, nil
}
