// Package pgsql holds what the cluster providers running real PostgreSQL
// (migrate/local, migrate/container) share: the PostgreSQL-side checks and
// measurements (preflight settings, replication lag from the writer, waiting for a
// replica to stream or to replay up to an LSN), the steps they take the same way
// (promotion after a crash, synchronous replication, dropping a slot), and the
// bookkeeping of their nodes (Members: the topology and the reader endpoint's
// members). Providers differ in how they reach a node, so every function takes a
// QueryRow or an Exec that runs on the node in question.
package pgsql

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate"
)

// QueryRow runs sql with args on one node and scans its single row into dest; it
// returns pgx.ErrNoRows when there is none.
type QueryRow func(ctx context.Context, sql string, args []any, dest ...any) error

// ConnQuery binds QueryRow to a connection the caller opened and closes: what
// polls, such as those inside a switchover's stall, use instead of a login per
// query.
func ConnQuery(conn *pgx.Conn) QueryRow {
	return func(ctx context.Context, sql string, args []any, dest ...any) error {
		return conn.QueryRow(ctx, sql, args...).Scan(dest...)
	}
}

// Exec runs one statement on one node.
type Exec func(ctx context.Context, sql string) error

// ErrNotStreaming means the writer's pg_stat_replication has no row for the replica.
var ErrNotStreaming = errors.New("replica is not connected to the writer")

// Preflight reads the writer's role and the settings a cutover depends on and
// returns them as checks (writer names the node in the details).
func Preflight(ctx context.Context, q QueryRow, writer string) ([]migrate.Check, error) {
	var (
		inRecovery                           bool
		version, checksums, hints, walLevel  string
		senders, slots, usedSlots, usedSends int
	)
	err := q(ctx, `SELECT pg_is_in_recovery(), current_setting('server_version'),
  current_setting('data_checksums'), current_setting('wal_log_hints'), current_setting('wal_level'),
  current_setting('max_wal_senders')::int, current_setting('max_replication_slots')::int,
  (SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_stat_replication)`, nil,
		&inRecovery, &version, &checksums, &hints, &walLevel, &senders, &slots, &usedSlots, &usedSends)
	if err != nil {
		return nil, fmt.Errorf("preflight on %s: %w", writer, err)
	}
	return []migrate.Check{
		{Name: "writer is not in recovery", OK: !inRecovery, Detail: writer + " pg_is_in_recovery=" + strconv.FormatBool(inRecovery)},
		{Name: "server version", OK: true, Detail: version},
		{Name: "data checksums or wal_log_hints (pg_rewind)", OK: checksums == "on" || hints == "on", Detail: "data_checksums=" + checksums + " wal_log_hints=" + hints},
		{Name: "wal_level allows replication", OK: walLevel == "replica" || walLevel == "logical", Detail: walLevel},
		{Name: "a WAL sender is free", OK: usedSends < senders, Detail: fmt.Sprintf("%d of %d in use", usedSends, senders)},
		{Name: "a replication slot is free", OK: usedSlots < slots, Detail: fmt.Sprintf("%d of %d in use", usedSlots, slots)},
	}, nil
}

// Lag measures replica's lag from the writer's pg_stat_replication (q runs on the
// writer; the replica is matched by application_name). It wraps ErrNotStreaming when
// the replica is not connected.
func Lag(ctx context.Context, q QueryRow, replica string) (migrate.Lag, error) {
	var (
		l     migrate.Lag
		bytes *int64
		secs  *float64
		rep   *string
	)
	err := q(ctx, `SELECT pg_current_wal_lsn()::text, replay_lsn::text,
  pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,
  extract(epoch FROM replay_lag)::float8
FROM pg_stat_replication WHERE application_name = $1`, []any{replica}, &l.WriterLSN, &rep, &bytes, &secs)
	if errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("%w: %s", ErrNotStreaming, replica)
	}
	if err != nil {
		return l, err
	}
	if rep != nil {
		l.ReplayLSN = *rep
	}
	if bytes != nil {
		l.Bytes = *bytes
	}
	if secs != nil {
		l.Time = time.Duration(*secs * float64(time.Second))
	}
	return l, nil
}

// WaitStreaming polls the writer (q) every poll until replica streams from it.
func WaitStreaming(ctx context.Context, q QueryRow, replica string, poll time.Duration) error {
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		var state string
		err := q(ctx, "SELECT state FROM pg_stat_replication WHERE application_name = $1", []any{replica}, &state)
		if err == nil && state == "streaming" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is not streaming (state %q, last error %v): %w", replica, state, err, ctx.Err())
		case <-tick.C:
		}
	}
}

// ErrPromoteRefused means pg_promote returned false: the server is not a standby,
// or a promotion is already under way.
var ErrPromoteRefused = errors.New("pg_promote refused")

// Promote promotes a standby (q) with pg_promote(wait => false) and polls
// pg_is_in_recovery() every poll until it is a primary: pg_promote's own wait
// looks only every 100 ms, each one of them a write stall during a switchover.
// It returns how long the promotion took, and gives up after timeout.
func Promote(ctx context.Context, q QueryRow, poll, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	var ok bool
	if err := q(ctx, "SELECT pg_promote(false)", nil, &ok); err != nil {
		return time.Since(start), err
	}
	if !ok {
		return time.Since(start), ErrPromoteRefused
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		var rec bool
		if err := q(ctx, "SELECT pg_is_in_recovery()", nil, &rec); err != nil {
			return time.Since(start), err
		}
		if !rec {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("still in recovery: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// WaitReplayed polls a standby (q) every poll until it has replayed past lsn.
func WaitReplayed(ctx context.Context, q QueryRow, lsn string, poll time.Duration) error {
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		var done bool
		err := q(ctx, "SELECT pg_last_wal_replay_lsn() > $1::pg_lsn", []any{lsn}, &done)
		if err == nil && done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not replayed past the old writer's final LSN %s (last error %v): %w", lsn, err, ctx.Err())
		case <-tick.C:
		}
	}
}

// StandbyLag reads what a standby (q) has received but not yet replayed, and the
// last LSN it replayed: what an unplanned promotion starts from.
func StandbyLag(ctx context.Context, q QueryRow) (bytes int64, replayLSN string, err error) {
	var (
		rep  *string
		diff *int64
	)
	if err := q(ctx, `SELECT pg_last_wal_replay_lsn()::text,
  pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint`, nil, &rep, &diff); err != nil {
		return 0, "", err
	}
	if diff != nil {
		bytes = *diff
	}
	if rep != nil {
		replayLSN = *rep
	}
	return bytes, replayLSN, nil
}

// CurrentLSN returns a primary's current WAL write position (q runs on it).
func CurrentLSN(ctx context.Context, q QueryRow) (string, error) {
	var lsn string
	err := q(ctx, "SELECT pg_current_wal_lsn()::text", nil, &lsn)
	return lsn, err
}

// Failover promotes a standby after its writer died, with whatever it has replayed:
// it reads what the standby received but did not replay (StandbyLag), promotes it
// with promote, and reads the new writer's WAL position. q runs on the standby; from
// and to are the old and new writers' IDs. Stall counts from the promotion's start.
func Failover(ctx context.Context, q QueryRow, from, to string, promote func(context.Context) (time.Duration, error)) (migrate.Promotion, error) {
	p := migrate.Promotion{From: from, To: to, Detail: map[string]any{}}
	if bytes, lsn, err := StandbyLag(ctx, q); err == nil {
		p.LagBytes, p.FinalLSN = bytes, lsn
	}
	start := time.Now()
	var err error
	if p.Promote, err = promote(ctx); err != nil {
		return p, err
	}
	if lsn, err := CurrentLSN(ctx, q); err == nil {
		p.PromotedLSN = lsn
	}
	p.Stall = time.Since(start)
	return p, nil
}

// SetSynchronous makes replica the synchronous standby of the writer exec runs on
// ("" turns synchronous replication off) and reloads the writer's configuration.
func SetSynchronous(ctx context.Context, exec Exec, replica string) error {
	if err := exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = "+quoteLiteral(replica)); err != nil {
		return err
	}
	return exec(ctx, "SELECT pg_reload_conf()")
}

// DropSlot drops a replication slot on the node q runs on, if it exists and is not
// in use.
func DropSlot(ctx context.Context, q QueryRow, slot string) error {
	var x any
	err := q(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
WHERE slot_name = $1 AND NOT active`, []any{slot}, &x)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	return err
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// SlotName is the physical replication slot of the node named node: its name in
// lower case with every character a slot name cannot hold (anything but a-z, 0-9
// and '_') made '_', so node2-green-x7k2q has the slot node2_green_x7k2q.
func SlotName(node string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, node)
}
