package endpoint

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Pause issues PAUSE: PgBouncer waits until every in-flight transaction has finished
// and its server connections are closed, then holds every new query (clients block,
// they do not fail, for up to QueryWait). It returns once the PAUSE is in effect.
// When ctx ends first, PgBouncer is resumed and the error says so. Pausing a paused
// PgBouncer is a no-op.
func (b *PgBouncer) Pause(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.paused {
		return nil
	}
	start := time.Now()
	b.settleLogins(ctx)
	if err := b.admin(ctx, "PAUSE"); err != nil {
		// The console may have gone away mid-PAUSE with the pause in effect: undo it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resumeTimeout)
		defer cancel()
		rerr := b.admin(rctx, "RESUME")
		if rerr != nil && !strings.Contains(rerr.Error(), "not paused") {
			return fmt.Errorf("endpoint: pgbouncer %s: PAUSE failed: %w; RESUME after it failed too: %v", b.cfg.Name, err, rerr)
		}
		return fmt.Errorf("endpoint: pgbouncer %s: PAUSE failed (in-flight transactions did not finish in time?); resumed: %w", b.cfg.Name, err)
	}
	b.paused = true
	fmt.Fprintf(b.cfg.Log, "pgbouncer %s paused (%v waiting for in-flight transactions)\n", b.cfg.Name, time.Since(start).Round(time.Millisecond))
	return nil
}

// Resume issues RESUME: held queries proceed on (new) server connections. Resuming a
// PgBouncer that is not paused is a no-op.
func (b *PgBouncer) Resume(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.paused {
		return nil
	}
	if err := b.admin(ctx, "RESUME"); err != nil {
		return fmt.Errorf("endpoint: pgbouncer %s: RESUME: %w", b.cfg.Name, err)
	}
	b.paused = false
	fmt.Fprintf(b.cfg.Log, "pgbouncer %s resumed\n", b.cfg.Name)
	return nil
}

// Repoint points every database at backend (host:port): it rewrites the config and
// issues RELOAD. PgBouncer closes its server connections to the old backend as they
// are released (at once when paused, else after their current transaction); client
// connections stay. Call it between Pause and Resume to move clients atomically
// between transactions.
func (b *PgBouncer) Repoint(ctx context.Context, backend string) error {
	if err := checkBackend(backend); err != nil {
		return fmt.Errorf("endpoint: pgbouncer %s repoint: %w", b.cfg.Name, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if backend == b.backend {
		return nil
	}
	old := b.backend
	b.backend = backend
	if err := b.writeIni(); err != nil {
		b.backend = old
		return err
	}
	if err := b.admin(ctx, "RELOAD"); err != nil {
		b.backend = old
		_ = b.writeIni()
		return fmt.Errorf("endpoint: pgbouncer %s: RELOAD to repoint %s -> %s: %w", b.cfg.Name, old, backend, err)
	}
	fmt.Fprintf(b.cfg.Log, "pgbouncer %s repointed %s -> %s\n", b.cfg.Name, old, backend)
	return nil
}

// Admin runs one admin console command (SHOW POOLS, SHOW CLIENTS, ...) and returns
// its rows as text.
func (b *PgBouncer) Admin(ctx context.Context, command string) ([][]string, error) {
	var rows [][]string
	err := b.adminRows(ctx, command, func(r []string) { rows = append(rows, r) })
	return rows, err
}

// admin runs a command on the admin console, discarding any rows.
func (b *PgBouncer) admin(ctx context.Context, command string) error {
	return b.adminRows(ctx, command, nil)
}

// adminRows runs a command on the admin console over the simple query protocol (the
// only one the console speaks).
func (b *PgBouncer) adminRows(ctx context.Context, command string, row func([]string)) error {
	cctx, cancel := context.WithTimeout(ctx, adminTimeout)
	conn, err := pgconn.Connect(cctx, b.DSN("pgbouncer")+"&connect_timeout=5")
	cancel()
	if err != nil {
		if !b.Running() {
			return fmt.Errorf("%w: %s is not running (%v): %w", ErrPgBouncer, b.cfg.Name, b.cmd.ProcessState, err)
		}
		return fmt.Errorf("endpoint: pgbouncer %s admin console: %w", b.cfg.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	results, err := conn.Exec(ctx, command).ReadAll()
	if err != nil {
		return fmt.Errorf("%w: %s: %s: %w", ErrPgBouncer, b.cfg.Name, command, err)
	}
	if row != nil {
		for _, r := range results {
			for _, vals := range r.Rows {
				s := make([]string, len(vals))
				for i, v := range vals {
					s[i] = string(v)
				}
				row(s)
			}
		}
	}
	return nil
}

// loginSettle bounds how long Pause waits for server logins in progress.
const loginSettle = time.Second

// settleLogins waits (up to loginSettle) until no server connection is logging in
// (SHOW SERVERS state "new"). PAUSE closes every server connection, and one closed
// in the middle of its login counts as a failed login: for server_login_retry
// after it PgBouncer fails every waiting client at once ("server login has been
// failing"), which after the RESUME are the clients the move held. A reader
// PgBouncer moved twice within a second (create_replica, then forward_writes) is
// still logging in to the first target when the second PAUSE comes.
func (b *PgBouncer) settleLogins(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, loginSettle)
	defer cancel()
	conn, err := pgconn.Connect(ctx, b.DSN("pgbouncer")+"&connect_timeout=5")
	if err != nil {
		return // Pause reports a console that does not answer
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		res, err := conn.Exec(ctx, "SHOW SERVERS").ReadAll()
		if err != nil || !loggingIn(res) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// loggingIn reports whether SHOW SERVERS lists a connection in state "new".
func loggingIn(res []*pgconn.Result) bool {
	for _, r := range res {
		col := -1
		for i, f := range r.FieldDescriptions {
			if f.Name == "state" {
				col = i
			}
		}
		if col < 0 {
			continue
		}
		for _, row := range r.Rows {
			if col < len(row) && string(row[col]) == "new" {
				return true
			}
		}
	}
	return false
}
