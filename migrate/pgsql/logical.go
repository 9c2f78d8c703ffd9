package pgsql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate"
)

// What a blue/green deployment creates on blue besides its publication: an
// unlogged table in a schema of its own, where an event trigger logs every DDL
// command. Unlogged tables are not published, so the log stays on blue.
const (
	// DDLSchema holds the DDL log; schema dumps leave it out.
	DDLSchema = "rehearse_bg"
	// DDLTrigger is the event trigger that logs DDL on blue.
	DDLTrigger = "rehearse_bg_ddl"
)

// LongTransaction is how old an open transaction must be for the preflight to warn
// about it: it delays the replication slot's creation (which waits for running
// transactions) and the switchover.
const LongTransaction = time.Minute

// Replication is a logical replication of one database from blue's writer to
// green's: a publication FOR ALL TABLES on blue, a subscription of the same name on
// green (whose slot on blue also has that name). Blue* and Green* run on each
// writer's replicated database, in sessions whose default_transaction_read_only is
// off (the switchover makes the databases read-only for everyone else).
type Replication struct {
	// Name names the publication, the subscription and the slot.
	Name string
	// Database is the replicated database.
	Database string
	// BlueQuery and BlueExec run on blue's writer; GreenQuery and GreenExec on
	// green's.
	BlueQuery, GreenQuery QueryRow
	BlueExec, GreenExec   Exec
}

// ident quotes an identifier.
func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// PreflightLogical checks what logical replication needs and cannot carry, on
// blue's replicated database (q runs there): wal_level, tables without a primary
// key or replica identity (blocking), free slots and WAL senders, long-running
// transactions, sequences (synced at the switchover), unlogged tables and large
// objects (not replicated), and subscriptions into blue.
func PreflightLogical(ctx context.Context, q QueryRow) ([]migrate.Check, error) {
	var (
		walLevel                         string
		freeSlots, freeSenders           int
		noKey, unlogged                  *string
		tables, largeObjects, seqs, subs int64
		longTx                           int64
		longest                          float64
	)
	err := q(ctx, `WITH rel AS (
  SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name, c.relpersistence, c.relreplident
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', $1)
    AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%')
SELECT current_setting('wal_level'),
  current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)::int,
  current_setting('max_wal_senders')::int - (SELECT count(*) FROM pg_stat_replication)::int,
  (SELECT string_agg(name, ', ' ORDER BY name) FROM rel WHERE relpersistence = 'p' AND (relreplident = 'n'
     OR (relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = rel.oid AND i.indisprimary)))),
  (SELECT count(*) FROM rel WHERE relpersistence = 'p'),
  (SELECT string_agg(name, ', ' ORDER BY name) FROM rel WHERE relpersistence = 'u'),
  (SELECT count(*) FROM pg_largeobject_metadata),
  (SELECT count(*) FROM pg_sequences WHERE schemaname <> $1),
  (SELECT count(*) FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())),
  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND xact_start < now() - $2::interval),
  (SELECT coalesce(max(extract(epoch FROM now() - xact_start)), 0)::float8 FROM pg_stat_activity WHERE backend_type = 'client backend' AND xact_start < now() - $2::interval)`,
		[]any{DDLSchema, fmt.Sprintf("%d seconds", int(LongTransaction.Seconds()))},
		&walLevel, &freeSlots, &freeSenders, &noKey, &tables, &unlogged, &largeObjects, &seqs, &subs, &longTx, &longest)
	if err != nil {
		return nil, fmt.Errorf("blue/green preflight: %w", err)
	}
	keyDetail := fmt.Sprintf("all %d tables have one", tables)
	if noKey != nil {
		keyDetail = "without one: " + *noKey + " (UPDATE and DELETE on them fail once published: add a primary key, or REPLICA IDENTITY FULL)"
	}
	checks := []migrate.Check{
		{Name: "wal_level is logical (rds.logical_replication)", OK: walLevel == "logical",
			Detail: "wal_level=" + walLevel + map[bool]string{true: "", false: ": set it to logical (Aurora: rds.logical_replication=1 in the cluster parameter group) and restart"}[walLevel == "logical"]},
		{Name: "tables have a primary key or replica identity", OK: noKey == nil, Detail: keyDetail},
		{Name: "a replication slot and WAL sender are free", OK: freeSlots >= 1 && freeSenders >= 1,
			Detail: fmt.Sprintf("%d slots and %d WAL senders free (the subscription takes one of each, its initial copy one more per table being copied)", freeSlots, freeSenders)},
		{Name: "sequences", OK: true, Detail: fmt.Sprintf("%d: logical replication does not carry them; each is set past blue's value on green at the switchover", seqs)},
		{Name: "DDL on blue", OK: true, Detail: "from create_green on, an event trigger logs DDL on blue; any blocks the switchover (logical replication does not carry DDL)"},
	}
	ltx := migrate.Check{Name: "long-running transactions", OK: longTx == 0, Warning: true, Detail: "none open longer than " + LongTransaction.String()}
	if longTx > 0 {
		ltx.Detail = fmt.Sprintf("%d open longer than %v (the longest %.0f s): the slot's creation waits for them, and the switchover ends them", longTx, LongTransaction, longest)
	}
	checks = append(checks, ltx)
	ul := migrate.Check{Name: "unlogged tables", OK: unlogged == nil, Warning: true, Detail: "none"}
	if unlogged != nil {
		ul.Detail = *unlogged + ": not replicated, green has them empty"
	}
	lo := migrate.Check{Name: "large objects", OK: largeObjects == 0, Warning: true, Detail: strconv.FormatInt(largeObjects, 10)}
	if largeObjects > 0 {
		lo.Detail += ": not replicated, green lacks them"
	}
	ext := migrate.Check{Name: "no replication into blue", OK: subs == 0, Warning: true, Detail: "no subscription in the database"}
	if subs > 0 {
		ext.Detail = fmt.Sprintf("%d subscription(s) write into blue: they are not moved to green and would keep writing to the old blue", subs)
	}
	return append(checks, ul, lo, ext), nil
}

// PrepareBlue creates the publication and the DDL log on blue. The event trigger
// comes last, so what the deployment itself creates is not logged.
func (r Replication) PrepareBlue(ctx context.Context) error {
	sql := `DROP EVENT TRIGGER IF EXISTS ` + ident(DDLTrigger) + `;
CREATE PUBLICATION ` + ident(r.Name) + ` FOR ALL TABLES;
CREATE SCHEMA IF NOT EXISTS ` + ident(DDLSchema) + `;
CREATE UNLOGGED TABLE IF NOT EXISTS ` + ident(DDLSchema) + `.ddl_log (
  at timestamptz NOT NULL DEFAULT clock_timestamp(), tag text, object text, query text);
CREATE OR REPLACE FUNCTION ` + ident(DDLSchema) + `.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $rehearse$
BEGIN
  INSERT INTO ` + ident(DDLSchema) + `.ddl_log (tag, object, query)
  SELECT tg_tag, string_agg(object_identity, ', '), left(current_query(), 300) FROM pg_event_trigger_ddl_commands();
END
$rehearse$;
CREATE EVENT TRIGGER ` + ident(DDLTrigger) + ` ON ddl_command_end EXECUTE FUNCTION ` + ident(DDLSchema) + `.log_ddl();`
	if err := r.BlueExec(ctx, sql); err != nil {
		return fmt.Errorf("publication and DDL log on blue: %w", err)
	}
	return nil
}

// Subscribe creates the subscription on green, with the initial copy of every
// table, and makes green's database read-only for everyone but the subscription's
// workers (as AWS keeps green read-only until the switchover). conninfo reaches
// blue's writer from green's. The subscription applies with synchronous_commit on:
// green confirms to blue only what it flushed, and with the default (off) a commit
// waits for green's WAL writer (wal_writer_delay) before it counts, which the
// switchover's wait for blue's final LSN — writes blocked — would add every time.
func (r Replication) Subscribe(ctx context.Context, conninfo string) error {
	sub := ident(r.Name)
	if err := r.GreenExec(ctx, "CREATE SUBSCRIPTION "+sub+" CONNECTION "+quoteLiteral(conninfo)+
		" PUBLICATION "+sub+" WITH (copy_data = true, create_slot = true, synchronous_commit = 'on', slot_name = "+quoteLiteral(r.Name)+")"); err != nil {
		return fmt.Errorf("subscription on green: %w", err)
	}
	return r.SetGreenReadOnly(ctx, true)
}

// SetGreenReadOnly makes green's database read-only for new sessions (on) or
// writable again (off). The subscription's workers apply changes either way.
func (r Replication) SetGreenReadOnly(ctx context.Context, on bool) error {
	if err := setReadOnly(ctx, r.GreenExec, r.Database, on); err != nil {
		return fmt.Errorf("green read-only %v: %w", on, err)
	}
	return nil
}

func setReadOnly(ctx context.Context, exec Exec, db string, on bool) error {
	sql := "ALTER DATABASE " + ident(db) + " RESET default_transaction_read_only"
	if on {
		sql = "ALTER DATABASE " + ident(db) + " SET default_transaction_read_only = on"
	}
	return exec(ctx, sql)
}

// Sync measures green's progress: the tables whose initial copy finished
// (pg_subscription_rel state 'r'), whether the apply worker runs, and the lag of
// the slot on blue (pg_current_wal_lsn against confirmed_flush_lsn).
func (r Replication) Sync(ctx context.Context) (migrate.GreenSync, error) {
	var (
		gs       migrate.GreenSync
		notReady string
		applying bool
	)
	err := r.GreenQuery(ctx, `SELECT count(r.srrelid)::int, count(r.srrelid) FILTER (WHERE r.srsubstate = 'r')::int,
  coalesce(json_agg(r.srrelid::regclass::text ORDER BY r.srrelid::regclass::text) FILTER (WHERE r.srsubstate <> 'r'), '[]')::text,
  EXISTS (SELECT 1 FROM pg_stat_subscription ss WHERE ss.subid = s.oid AND ss.relid IS NULL AND ss.pid IS NOT NULL)
FROM pg_subscription s LEFT JOIN pg_subscription_rel r ON r.srsubid = s.oid
WHERE s.subname = $1 GROUP BY s.oid`, []any{r.Name}, &gs.Tables, &gs.Ready, &notReady, &applying)
	if errors.Is(err, pgx.ErrNoRows) {
		return gs, fmt.Errorf("green has no subscription %s", r.Name)
	}
	if err != nil {
		return gs, fmt.Errorf("green's subscription: %w", err)
	}
	if err := json.Unmarshal([]byte(notReady), &gs.NotReady); err != nil {
		return gs, err
	}
	if len(gs.NotReady) > 5 {
		gs.NotReady = append(gs.NotReady[:5], fmt.Sprintf("… %d more", len(gs.NotReady)-5))
	}
	var active bool
	err = r.BlueQuery(ctx, `SELECT pg_current_wal_lsn()::text, coalesce(confirmed_flush_lsn::text, ''),
  coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint, active
FROM pg_replication_slots WHERE slot_name = $1`, []any{r.Name}, &gs.Lag.WriterLSN, &gs.Lag.ReplayLSN, &gs.Lag.Bytes, &active)
	if errors.Is(err, pgx.ErrNoRows) {
		return gs, fmt.Errorf("blue has no replication slot %s", r.Name)
	}
	if err != nil {
		return gs, fmt.Errorf("the slot on blue: %w", err)
	}
	gs.Switchable = gs.Ready == gs.Tables && applying && active
	gs.Status = "replicating"
	if gs.Ready < gs.Tables {
		gs.Status = "copying"
	}
	return gs, nil
}

// DDL lists the DDL the event trigger logged on blue, oldest first.
func (r Replication) DDL(ctx context.Context) ([]string, error) {
	var js string
	if err := r.BlueQuery(ctx, `SELECT coalesce(json_agg(tag || coalesce(' ' || object, '') || ': ' || coalesce(query, '') ORDER BY at), '[]')::text
FROM `+ident(DDLSchema)+`.ddl_log`, nil, &js); err != nil {
		return nil, fmt.Errorf("the DDL log on blue: %w", err)
	}
	var out []string
	if err := json.Unmarshal([]byte(js), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// BlockWrites makes blue's database read-only for new sessions and ends the
// sessions it has (the clients reconnect and get read-only ones); it returns how
// many it ended. Blue keeps serving reads.
func (r Replication) BlockWrites(ctx context.Context) (ended int64, err error) {
	if err := setReadOnly(ctx, r.BlueExec, r.Database, true); err != nil {
		return 0, fmt.Errorf("blue read-only: %w", err)
	}
	return r.endSessions(ctx, r.BlueQuery)
}

// UnblockWrites makes blue's database writable again and ends the sessions that
// connected while it was read-only (they would keep refusing writes).
func (r Replication) UnblockWrites(ctx context.Context) error {
	if err := setReadOnly(ctx, r.BlueExec, r.Database, false); err != nil {
		return fmt.Errorf("blue writable again: %w", err)
	}
	_, err := r.endSessions(ctx, r.BlueQuery)
	return err
}

// EndBlueSessions ends blue's client sessions of the replicated database: at the
// end of a switchover, those that connected while it ran (through a name that
// still led to blue) go, as RDS lets no connection made during a switchover
// survive it; clients that reach blue afterwards, through a stale DNS answer,
// keep their read-only sessions.
func (r Replication) EndBlueSessions(ctx context.Context) (int64, error) {
	return r.endSessions(ctx, r.BlueQuery)
}

// endSessions ends the client sessions of the replicated database on the node q
// runs on, other than q's own.
func (r Replication) endSessions(ctx context.Context, q QueryRow) (int64, error) {
	var n int64
	err := q(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = $1 AND backend_type = 'client backend' AND pid <> pg_backend_pid()`, []any{r.Database}, &n)
	if err != nil {
		return 0, fmt.Errorf("end the sessions: %w", err)
	}
	return n, nil
}

// FinalLSN is blue's WAL position once writes are blocked: green has everything
// when its slot has confirmed it.
func (r Replication) FinalLSN(ctx context.Context) (string, error) {
	return CurrentLSN(ctx, r.BlueQuery)
}

// WaitApplied polls blue every poll until green confirmed lsn (the slot's
// confirmed_flush_lsn): green applied and flushed everything up to it.
func (r Replication) WaitApplied(ctx context.Context, lsn string, poll time.Duration) error {
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		var done bool
		var confirmed *string
		err := r.BlueQuery(ctx, `SELECT coalesce(confirmed_flush_lsn >= $2::pg_lsn, false), confirmed_flush_lsn::text
FROM pg_replication_slots WHERE slot_name = $1`, []any{r.Name, lsn}, &done, &confirmed)
		if err == nil && done {
			return nil
		}
		select {
		case <-ctx.Done():
			c := "none"
			if confirmed != nil {
				c = *confirmed
			}
			return fmt.Errorf("green did not confirm blue's final LSN %s (confirmed %s, last error %v): %w", lsn, c, err, ctx.Err())
		case <-tick.C:
		}
	}
}

// SyncSequences sets every sequence on green to blue's last value (is_called, so
// green's next value is past every value blue handed out: pg_sequences.last_value
// counts cached values too) and returns what it set.
func (r Replication) SyncSequences(ctx context.Context) ([]migrate.SequenceSync, error) {
	var js string
	if err := r.BlueQuery(ctx, `SELECT coalesce(json_agg(json_build_object('name', format('%I.%I', schemaname, sequencename), 'last', last_value)
  ORDER BY schemaname, sequencename), '[]')::text
FROM pg_sequences WHERE schemaname <> $1 AND last_value IS NOT NULL`, []any{DDLSchema}, &js); err != nil {
		return nil, fmt.Errorf("blue's sequences: %w", err)
	}
	var seqs []struct {
		Name string `json:"name"`
		Last int64  `json:"last"`
	}
	if err := json.Unmarshal([]byte(js), &seqs); err != nil {
		return nil, err
	}
	if len(seqs) == 0 {
		return nil, nil
	}
	names, values := make([]string, len(seqs)), make([]int64, len(seqs))
	for i, s := range seqs {
		names[i], values[i] = s.Name, s.Last
	}
	var set string
	if err := r.GreenQuery(ctx, `SELECT json_agg(setval(n::regclass, v, true) ORDER BY o)::text
FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS s(n, v, o)`, []any{names, values}, &set); err != nil {
		return nil, fmt.Errorf("green's sequences: %w", err)
	}
	var got []int64
	if err := json.Unmarshal([]byte(set), &got); err != nil {
		return nil, err
	}
	out := make([]migrate.SequenceSync, len(seqs))
	for i, s := range seqs {
		out[i] = migrate.SequenceSync{Name: s.Name, Blue: s.Last, Green: got[i]}
	}
	return out, nil
}

// DropSubscription drops green's subscription and, through it, its slot on blue.
// When blue cannot be reached it detaches the slot first, and drops the
// subscription alone (DropBlue then drops the slot).
func (r Replication) DropSubscription(ctx context.Context) error {
	sub := ident(r.Name)
	var exists bool
	if err := r.GreenQuery(ctx, "SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1)", []any{r.Name}, &exists); err != nil {
		return fmt.Errorf("green's subscription: %w", err)
	}
	if !exists {
		return nil
	}
	if err := r.GreenExec(ctx, "DROP SUBSCRIPTION "+sub); err == nil {
		return nil
	}
	// The slot on blue could not be dropped (blue is gone or unreachable).
	var errs []error
	for _, sql := range []string{"ALTER SUBSCRIPTION " + sub + " DISABLE", "ALTER SUBSCRIPTION " + sub + " SET (slot_name = NONE)", "DROP SUBSCRIPTION " + sub} {
		if err := r.GreenExec(ctx, sql); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("drop green's subscription: %w", err)
	}
	return nil
}

// DropBlue removes what the deployment created on blue: the event trigger, the
// DDL log, the publication and the slot (when the subscription did not drop it).
func (r Replication) DropBlue(ctx context.Context) error {
	err := r.BlueExec(ctx, `DROP EVENT TRIGGER IF EXISTS `+ident(DDLTrigger)+`;
DROP SCHEMA IF EXISTS `+ident(DDLSchema)+` CASCADE;
DROP PUBLICATION IF EXISTS `+ident(r.Name)+`;`)
	if err != nil {
		return fmt.Errorf("drop the publication and the DDL log on blue: %w", err)
	}
	if err := DropSlot(ctx, r.BlueQuery, r.Name); err != nil {
		return fmt.Errorf("drop the slot %s on blue: %w", r.Name, err)
	}
	return nil
}

// DumpArgs are pg_dump's arguments for blue's schema, in the custom format (so
// pg_restore can leave out single entries), without what the deployment made and
// without publications or subscriptions.
func DumpArgs(host string, port int, user, db, file string) []string {
	return []string{"-h", host, "-p", strconv.Itoa(port), "-U", user, "-d", db, "--no-password",
		"--schema-only", "--no-publications", "--no-subscriptions", "-N", DDLSchema, "-Fc", "-f", file}
}

// RestoreList is pg_restore's table of contents (pg_restore -l) without the
// deployment's own event trigger, which pg_dump keeps even when its function's
// schema is left out.
func RestoreList(toc string) string {
	var b strings.Builder
	for _, l := range strings.Split(toc, "\n") {
		if strings.Contains(l, " EVENT TRIGGER - "+DDLTrigger+" ") {
			continue
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// SwitchoverHooks are a provider's part of a blue/green switchover: its endpoints,
// its names and its own record of who the writer is.
type SwitchoverHooks struct {
	// From and To are the writers' IDs (blue's and green's).
	From, To string
	// Hold prepares the endpoints for the writer change (PgBouncer pauses).
	Hold func(ctx context.Context) error
	// Commit makes green the writer in the provider's record and moves blue's names
	// and endpoints to green, blue's to OldSuffix ones; it returns the renames. It
	// runs after green took writes: it is not rolled back.
	Commit func(ctx context.Context) (map[string]string, error)
	// Restore points the endpoints at blue again (and undoes Hold) after a
	// rollback.
	Restore func(ctx context.Context) error
	// Poll paces the wait for green (default 10 ms).
	Poll time.Duration
}

// rollbackTimeout bounds a switchover's rollback, which runs after its own timeout.
const rollbackTimeout = time.Minute

// Switchover switches from blue to green within timeout: guardrails (green is
// switchable, no DDL on blue), hold the endpoints, block writes on blue, wait until
// green confirmed blue's final LSN, check the DDL log again, set green's sequences,
// make green writable, then Commit. When anything before green takes writes fails
// or the timeout runs out it rolls back — blue writable, the endpoints on blue,
// green read-only — and the error wraps migrate.ErrSwitchoverRolledBack (and
// migrate.ErrSwitchoverTimeout for a timeout). The subscription is dropped after
// the commit.
func (r Replication) Switchover(ctx context.Context, timeout time.Duration, h SwitchoverHooks) (migrate.BlueGreenSwitchover, error) {
	if h.Poll <= 0 {
		h.Poll = 10 * time.Millisecond
	}
	sw := migrate.BlueGreenSwitchover{Timeout: timeout,
		Promotion: migrate.Promotion{From: h.From, To: h.To, Detail: map[string]any{}}}
	start := time.Now()
	gs, err := r.Sync(ctx)
	if err != nil {
		return sw, fmt.Errorf("guardrail: %w", err)
	}
	sw.LagBytes = gs.Lag.Bytes
	if !gs.Switchable {
		return sw, fmt.Errorf("guardrail: green is not ready to switch over to (%d of %d tables copied, status %s)", gs.Ready, gs.Tables, gs.Status)
	}
	if ddl, err := r.DDL(ctx); err != nil {
		return sw, fmt.Errorf("guardrail: %w", err)
	} else if len(ddl) > 0 {
		sw.BlockedDDL = ddl
		return sw, fmt.Errorf("%w (logical replication does not carry it; green's schema differs): %s", migrate.ErrDDLOnBlue, strings.Join(ddl, "; "))
	}
	tctx, cancel := context.WithDeadline(ctx, start.Add(timeout))
	defer cancel()
	var (
		blockedAt     time.Time
		blocked, held bool
		greenWritable bool
	)
	rollback := func(cause error) (migrate.BlueGreenSwitchover, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		var errs []error
		if greenWritable {
			errs = append(errs, r.SetGreenReadOnly(rctx, true))
		}
		if blocked {
			errs = append(errs, r.UnblockWrites(rctx))
		}
		if held && h.Restore != nil {
			errs = append(errs, h.Restore(rctx))
		}
		sw.RolledBack = true
		sw.Duration = time.Since(start)
		if blocked {
			sw.Stall = time.Since(blockedAt)
		}
		if tctx.Err() != nil && ctx.Err() == nil {
			cause = fmt.Errorf("%w after %v: %w", migrate.ErrSwitchoverTimeout, timeout, cause)
		}
		err := fmt.Errorf("%w: blue takes writes again and the endpoints stay on blue: %w", migrate.ErrSwitchoverRolledBack, cause)
		if rerr := errors.Join(errs...); rerr != nil {
			err = fmt.Errorf("%w; the rollback itself failed: %w", err, rerr)
		}
		return sw, err
	}
	if h.Hold != nil {
		held = true
		holdStart := time.Now()
		if err := h.Hold(tctx); err != nil {
			return rollback(fmt.Errorf("hold the endpoints: %w", err))
		}
		sw.Detail["hold_ms"] = ms(time.Since(holdStart))
	}
	blockedAt, blocked = time.Now(), true
	ended, err := r.BlockWrites(tctx)
	if err != nil {
		return rollback(err)
	}
	sw.Detail["blue_sessions_ended"] = ended
	if sw.FinalLSN, err = r.FinalLSN(tctx); err != nil {
		return rollback(fmt.Errorf("blue's final LSN: %w", err))
	}
	waitStart := time.Now()
	if err := r.WaitApplied(tctx, sw.FinalLSN, h.Poll); err != nil {
		return rollback(err)
	}
	sw.Detail["catch_up_ms"] = ms(time.Since(waitStart))
	if ddl, err := r.DDL(tctx); err != nil {
		return rollback(err)
	} else if len(ddl) > 0 {
		sw.BlockedDDL = ddl
		return rollback(fmt.Errorf("%w: %s", migrate.ErrDDLOnBlue, strings.Join(ddl, "; ")))
	}
	if sw.Sequences, err = r.SyncSequences(tctx); err != nil {
		return rollback(err)
	}
	if err := tctx.Err(); err != nil {
		return rollback(err)
	}
	greenWritable = true
	if err := r.SetGreenReadOnly(tctx, false); err != nil {
		return rollback(err)
	}
	// Green takes writes from here on: no rollback. Promote is how long moving the
	// names and endpoints to green took.
	sw.Switched = true
	promote := time.Now()
	sw.Renamed, err = h.Commit(ctx)
	sw.Promote = time.Since(promote)
	sw.Stall = time.Since(blockedAt)
	sw.Duration = time.Since(start)
	if lsn, lerr := CurrentLSN(ctx, r.GreenQuery); lerr == nil {
		sw.PromotedLSN = lsn
	}
	if err != nil {
		return sw, fmt.Errorf("green took over, but moving the names failed: %w", err)
	}
	if derr := r.DropSubscription(ctx); derr != nil {
		sw.Detail["drop_subscription_error"] = derr.Error()
	}
	return sw, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
