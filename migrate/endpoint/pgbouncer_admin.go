package endpoint

import (
	"context"
	"errors"
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
// only one the console speaks), on a kept connection when there is one. A kept
// connection that fails other than with an error from PgBouncer (it may have gone
// stale) is replaced and the command sent once more.
func (b *PgBouncer) adminRows(ctx context.Context, command string, row func([]string)) error {
	return b.adminResults(ctx, command, func(results []*pgconn.Result) {
		if row == nil {
			return
		}
		for _, r := range results {
			for _, vals := range r.Rows {
				s := make([]string, len(vals))
				for i, v := range vals {
					s[i] = string(v)
				}
				row(s)
			}
		}
	})
}

// adminResults runs a command on the admin console and hands its results to use.
func (b *PgBouncer) adminResults(ctx context.Context, command string, use func([]*pgconn.Result)) error {
	for attempt := 0; ; attempt++ {
		conn, reused, err := b.takeAdmin(ctx)
		if err != nil {
			return err
		}
		results, err := conn.Exec(ctx, command).ReadAll()
		if err != nil {
			conn.Close(context.WithoutCancel(ctx))
			var pe *pgconn.PgError
			if reused && attempt == 0 && ctx.Err() == nil && !errors.As(err, &pe) {
				continue
			}
			return fmt.Errorf("%w: %s: %s: %w", ErrPgBouncer, b.cfg.Name, command, err)
		}
		b.putAdmin(conn)
		use(results)
		return nil
	}
}

// takeAdmin returns a kept admin console connection, or a new one.
func (b *PgBouncer) takeAdmin(ctx context.Context) (conn *pgconn.PgConn, reused bool, err error) {
	b.adminMu.Lock()
	for len(b.adminIdle) > 0 {
		c := b.adminIdle[len(b.adminIdle)-1]
		b.adminIdle = b.adminIdle[:len(b.adminIdle)-1]
		if !c.IsClosed() {
			b.adminMu.Unlock()
			return c, true, nil
		}
	}
	b.adminMu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	conn, err = pgconn.Connect(cctx, b.DSN("pgbouncer")+"&connect_timeout=5")
	if err != nil {
		if !b.Running() {
			return nil, false, fmt.Errorf("%w: %s is not running (%v): %w", ErrPgBouncer, b.cfg.Name, b.cmd.ProcessState, err)
		}
		return nil, false, fmt.Errorf("endpoint: pgbouncer %s admin console: %w", b.cfg.Name, err)
	}
	return conn, false, nil
}

// maxAdminIdle bounds the kept admin connections (commands rarely overlap).
const maxAdminIdle = 2

// putAdmin keeps conn for the next command, or closes it.
func (b *PgBouncer) putAdmin(conn *pgconn.PgConn) {
	b.adminMu.Lock()
	if len(b.adminIdle) < maxAdminIdle && !conn.IsClosed() {
		b.adminIdle = append(b.adminIdle, conn)
		conn = nil
	}
	b.adminMu.Unlock()
	if conn != nil {
		conn.Close(context.Background())
	}
}

// closeAdmin closes the kept admin connections.
func (b *PgBouncer) closeAdmin() {
	b.adminMu.Lock()
	idle := b.adminIdle
	b.adminIdle = nil
	b.adminMu.Unlock()
	for _, c := range idle {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c.Close(ctx)
		cancel()
	}
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
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		busy := false
		err := b.adminResults(ctx, "SHOW SERVERS", func(res []*pgconn.Result) { busy = loggingIn(res) })
		if err != nil || !busy {
			return // Pause reports a console that does not answer
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
