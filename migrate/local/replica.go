package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rehearse-dev/rehearse/migrate/pgsql"
)

// basebackupTimeout bounds pg_basebackup when ctx has no earlier deadline.
const basebackupTimeout = 10 * time.Minute

// InitReplica creates a streaming replica of primary under load: pg_basebackup -R with
// a new physical replication slot named after the node (-C -S), a primary_conninfo
// that names the node (so pg_stat_replication shows it), then start. It returns once
// the replica is up; CatchUp-style waiting is the caller's. On failure nothing is left
// running, the data directory is removed, and the slot is dropped.
func InitReplica(ctx context.Context, cfg Config, primary *Node) (*Node, error) {
	if cfg.Credentials == nil {
		cfg.Credentials = primary.Credentials()
	}
	n, err := newNode(cfg)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			n.discard(ctx)
			_ = primary.DropSlot(context.WithoutCancel(ctx), n.Slot())
		}
	}()
	if _, err := os.Stat(n.dataDir); err == nil {
		ok = true
		return nil, fmt.Errorf("%w: %s; remove it first, or choose another Name or Dir", ErrDataDirExists, n.dataDir)
	}
	if n.cfg.Port != 0 { // before the copy, which can take long
		if err := checkPortFree(n.cfg.Host, n.cfg.Port); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(n.cfg.Log, "pg_basebackup %s from %s (slot %s)\n", n.cfg.Name, primary.Name(), n.Slot())
	if _, err := n.run(ctx, basebackupTimeout, "pg_basebackup",
		"-D", n.dataDir, "-h", primary.Host(), "-p", strconv.Itoa(primary.Port()), "-U", Superuser,
		"-R", "-C", "-S", n.Slot(), "-X", "stream", "--checkpoint=fast", "--no-password"); err != nil {
		ce := asCommandError(err)
		ce.Op = fmt.Sprintf("pg_basebackup %s from %s", n.cfg.Name, primary.Name())
		ce.Hint = "check the primary's max_wal_senders and max_replication_slots, and its server log"
		return nil, ce
	}
	if err := n.setStandby(primary, n.Slot()); err != nil {
		return nil, err
	}
	if n.cfg.Port != 0 {
		if err := n.startOnPort(ctx, n.cfg.Port); err != nil {
			return nil, err
		}
	} else if _, err := retryPorts(portAttempts, n.pickPort(), func(port int) error { return n.startOnPort(ctx, port) }); err != nil {
		return nil, err
	}
	ok = true
	fmt.Fprintf(n.cfg.Log, "replica %s of %s ready on %s\n", n.cfg.Name, primary.Name(), n.Addr())
	return n, nil
}

// setStandby points the (stopped) node at primary: standby.signal, and the last
// primary_conninfo and primary_slot_name in postgresql.auto.conf (the last one wins).
func (n *Node) setStandby(primary *Node, slot string) error {
	if err := os.WriteFile(filepath.Join(n.dataDir, "standby.signal"), nil, 0o600); err != nil {
		return fmt.Errorf("local: %s standby.signal: %w", n.cfg.Name, err)
	}
	auto := filepath.Join(n.dataDir, "postgresql.auto.conf")
	old, err := os.ReadFile(auto)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("local: read %s: %w", auto, err)
	}
	var keep []string
	for _, l := range strings.Split(string(old), "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "primary_conninfo") || strings.HasPrefix(t, "primary_slot_name") || t == "" {
			continue
		}
		keep = append(keep, l)
	}
	keep = append(keep,
		// The password comes from the credentials' file (passfile), never this file.
		fmt.Sprintf("primary_conninfo = '%s'", strings.ReplaceAll(n.creds.Conninfo(primary.Host(), primary.Port(), "application_name="+n.cfg.Name), "'", "''")),
		fmt.Sprintf("primary_slot_name = '%s'", slot), "")
	if err := os.WriteFile(auto, []byte(strings.Join(keep, "\n")), 0o600); err != nil {
		return fmt.Errorf("local: write %s: %w", auto, err)
	}
	if n.id != nil {
		_ = n.id.chown(auto)
		_ = n.id.chown(filepath.Join(n.dataDir, "standby.signal"))
	}
	return nil
}

// Connect opens a connection to the node's database db.
func (n *Node) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	c, err := pgx.Connect(cctx, n.DSN(db))
	if err != nil {
		return nil, fmt.Errorf("local: connect to %s: %w", n.cfg.Name, err)
	}
	return c, nil
}

// queryRow runs one query on a fresh connection to the postgres database.
func (n *Node) queryRow(ctx context.Context, sql string, args []any, dest ...any) error {
	c, err := n.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	return c.QueryRow(ctx, sql, args...).Scan(dest...)
}

// exec runs one statement on a fresh connection to the postgres database.
func (n *Node) exec(ctx context.Context, sql string) error {
	c, err := n.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	_, err = c.Exec(ctx, sql)
	return err
}

// InRecovery reports pg_is_in_recovery().
func (n *Node) InRecovery(ctx context.Context) (bool, error) {
	var b bool
	err := n.queryRow(ctx, "SELECT pg_is_in_recovery()", nil, &b)
	return b, err
}

// ReplayLSN returns the last WAL position a standby replayed (pg_last_wal_replay_lsn).
func (n *Node) ReplayLSN(ctx context.Context) (string, error) {
	var s *string
	if err := n.queryRow(ctx, "SELECT pg_last_wal_replay_lsn()::text", nil, &s); err != nil {
		return "", err
	}
	if s == nil {
		return "", fmt.Errorf("local: %s is not a standby", n.cfg.Name)
	}
	return *s, nil
}

// CurrentLSN returns a primary's current WAL write position.
func (n *Node) CurrentLSN(ctx context.Context) (string, error) {
	return pgsql.CurrentLSN(ctx, n.queryRow)
}

// CheckpointLSN reads the latest checkpoint location from pg_controldata: after a
// clean shutdown, the shutdown checkpoint, i.e. the server's final WAL record.
func (n *Node) CheckpointLSN(ctx context.Context) (string, error) {
	out, err := n.run(ctx, 30*time.Second, "pg_controldata", "-D", n.dataDir)
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "Latest checkpoint location" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("local: pg_controldata of %s has no checkpoint location", n.cfg.Name)
}

// Slot is the node's physical replication slot on its primary (pgsql.SlotName of
// its name).
func (n *Node) Slot() string { return pgsql.SlotName(n.cfg.Name) }

// CreateSlot creates a physical replication slot (no error if it exists).
func (n *Node) CreateSlot(ctx context.Context, slot string) error {
	var x any
	err := n.queryRow(ctx, `SELECT pg_create_physical_replication_slot($1, true)
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, []any{slot}, &x)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	return err
}

// DropSlot drops a replication slot if it exists and is not in use.
func (n *Node) DropSlot(ctx context.Context, slot string) error {
	return pgsql.DropSlot(ctx, n.queryRow, slot)
}

// Follow turns this former primary into a standby of primary: the standby settings
// (with a slot on primary) and start. With rewind, pg_rewind runs first: after a crash
// the node may hold WAL the new primary never got (pg_rewind also finishes the node's
// crash recovery). A cleanly stopped writer whose final LSN the new primary replayed
// has not diverged and needs none; skipping it also avoids the CHECKPOINT pg_rewind
// needs on a just-promoted source, an I/O burst the load would feel. It reports
// whether pg_rewind had to rewind.
func (n *Node) Follow(ctx context.Context, primary *Node, rewind bool) (rewound bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false, fmt.Errorf("local: follow: node %s was removed", n.cfg.Name)
	}
	if pid := n.PID(); pid != 0 {
		if err := n.stop(ctx, Fast); err != nil {
			return false, err
		}
	}
	if rewind {
		if rewound, err = n.rewind(ctx, primary); err != nil {
			return false, err
		}
	}
	if err := primary.CreateSlot(ctx, n.Slot()); err != nil {
		return rewound, fmt.Errorf("local: slot for %s on %s: %w", n.cfg.Name, primary.Name(), err)
	}
	if err := n.setStandby(primary, n.Slot()); err != nil {
		return rewound, err
	}
	// pg_rewind copies the source's config files; restore this node's own settings.
	if err := n.writeConf(n.port); err != nil {
		return rewound, err
	}
	return rewound, n.start(ctx)
}

// rewind runs pg_rewind against primary; n.mu must be held and the node stopped.
func (n *Node) rewind(ctx context.Context, primary *Node) (bool, error) {
	// A crashed postmaster's lock file names a dead (or zombie) pid; pg_rewind's
	// single-user crash recovery would refuse it.
	if pid := readPostmasterPID(n.dataDir); pid != 0 && !alive(pid) {
		if err := os.Remove(filepath.Join(n.dataDir, "postmaster.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("local: follow %s: remove stale postmaster.pid: %w", n.cfg.Name, err)
		}
	}
	// A just-promoted source has not yet written its new timeline to its control
	// file; pg_rewind reads it from there, so checkpoint first (pg_rewind docs).
	if err := primary.exec(ctx, "CHECKPOINT"); err != nil {
		return false, fmt.Errorf("local: checkpoint %s before pg_rewind: %w", primary.Name(), err)
	}
	fmt.Fprintf(n.cfg.Log, "pg_rewind %s from %s\n", n.cfg.Name, primary.Name())
	out, err := n.run(ctx, basebackupTimeout, "pg_rewind", "-D", n.dataDir,
		"--source-server", n.creds.Conninfo(primary.Host(), primary.Port(), "dbname=postgres"))
	if err != nil {
		ce := asCommandError(err)
		ce.Op = fmt.Sprintf("pg_rewind %s from %s", n.cfg.Name, primary.Name())
		ce.Hint = "pg_rewind needs data checksums or wal_log_hints (both are on for rehearse nodes) and the new primary's WAL since the divergence"
		return false, ce
	}
	return !strings.Contains(out, "no rewind required"), nil
}
