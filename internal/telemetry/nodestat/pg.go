package nodestat

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Querier runs a query on one node: a *pgx.Conn.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// PGUsage is what a node's server counts, now and over the interval since the
// previous sample.
type PGUsage struct {
	// InRecovery is true on a standby.
	InRecovery bool
	// Connections and Active count client backends (this sampler's own excluded):
	// all of them and those running a statement.
	Connections, Active int64
	// TPS and Rollbacks are transactions (committed and rolled back) and rollbacks
	// per second, over every database (pg_stat_database; the server publishes them
	// as backends go idle, so a second's count may land in the next).
	TPS, Rollbacks float64
	// WALBytes is WAL written per second (the writer's pg_current_wal_lsn); zero
	// on a standby.
	WALBytes float64
	// Checkpoints counts the checkpoints completed since the meter's first sample.
	Checkpoints int64
	// Replicas is each standby streaming from this node (a writer's
	// pg_stat_replication), named by its application_name.
	Replicas []ReplicaLag
	// Rates is false on the first sample (and after the server restarted or
	// changed role): TPS, Rollbacks and WALBytes are zero then.
	Rates bool
}

// ReplicaLag is one standby's lag behind the node it streams from.
type ReplicaLag struct {
	// Name is the standby's application_name: the node's name.
	Name string
	// Bytes is WAL not yet replayed there; Seconds its replay lag as the writer
	// measured it (0 when caught up and idle).
	Bytes   int64
	Seconds float64
}

// PGMeter measures one node's server statistics, sample after sample. The zero
// value is ready to use; it is not safe for concurrent use.
type PGMeter struct {
	at                     time.Time
	xacts, rollbacks, wal  int64
	checkpoints, firstCkpt int64
	recovery, ready        bool
	started                bool
	checkpointer           string
}

// statsSQL reads everything but the replicas in one round trip. %s is the
// checkpoint count, whose view depends on the server's version.
const statsSQL = `SELECT pg_is_in_recovery(),
  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()),
  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()),
  (SELECT coalesce(sum(xact_commit + xact_rollback), 0)::bigint FROM pg_stat_database),
  (SELECT coalesce(sum(xact_rollback), 0)::bigint FROM pg_stat_database),
  CASE WHEN pg_is_in_recovery() THEN 0 ELSE (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint END,
  (%s)`

// Checkpoint counts before and after PostgreSQL 17 moved them to pg_stat_checkpointer.
const (
	checkpointsBgwriter     = "SELECT (checkpoints_timed + checkpoints_req)::bigint FROM pg_stat_bgwriter"
	checkpointsCheckpointer = "SELECT num_done::bigint FROM pg_stat_checkpointer"
)

const replicasSQL = `SELECT application_name,
  coalesce((pg_current_wal_lsn() - replay_lsn)::bigint, 0),
  coalesce(extract(epoch FROM replay_lag)::float8, 0)
FROM pg_stat_replication ORDER BY application_name`

// Sample reads the node's statistics at time now through q.
func (m *PGMeter) Sample(ctx context.Context, q Querier, now time.Time) (PGUsage, error) {
	if m.checkpointer == "" {
		var v int
		if err := q.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&v); err != nil {
			return PGUsage{}, fmt.Errorf("nodestat: server version: %w", err)
		}
		m.checkpointer = checkpointsBgwriter
		if v >= 170000 {
			m.checkpointer = checkpointsCheckpointer
		}
	}
	var (
		u                          PGUsage
		xacts, rollbacks, wal, cps int64
	)
	err := q.QueryRow(ctx, fmt.Sprintf(statsSQL, m.checkpointer)).Scan(&u.InRecovery, &u.Connections, &u.Active, &xacts, &rollbacks, &wal, &cps)
	if err != nil {
		m.ready = false
		return PGUsage{}, fmt.Errorf("nodestat: server statistics: %w", err)
	}
	if !m.started {
		m.firstCkpt, m.started = cps, true
	}
	// A restarted server starts its counters again (and a promoted one may too):
	// a counter that went back means a new baseline, not a negative rate.
	if m.ready && m.recovery == u.InRecovery && xacts >= m.xacts && wal >= m.wal {
		if dt := now.Sub(m.at).Seconds(); dt > 0 {
			u.Rates = true
			u.TPS = float64(xacts-m.xacts) / dt
			u.Rollbacks = float64(max(0, rollbacks-m.rollbacks)) / dt
			if !u.InRecovery {
				u.WALBytes = float64(wal-m.wal) / dt
			}
		}
	}
	if cps < m.checkpoints {
		m.firstCkpt -= m.checkpoints - cps // counters reset: keep the count since the start going
	}
	u.Checkpoints = max(0, cps-m.firstCkpt)
	m.at, m.xacts, m.rollbacks, m.wal, m.checkpoints, m.recovery, m.ready = now, xacts, rollbacks, wal, cps, u.InRecovery, true
	if u.InRecovery {
		return u, nil
	}
	rows, err := q.Query(ctx, replicasSQL)
	if err != nil {
		return u, fmt.Errorf("nodestat: pg_stat_replication: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r ReplicaLag
		if err := rows.Scan(&r.Name, &r.Bytes, &r.Seconds); err != nil {
			return u, fmt.Errorf("nodestat: pg_stat_replication: %w", err)
		}
		u.Replicas = append(u.Replicas, r)
	}
	return u, rows.Err()
}
