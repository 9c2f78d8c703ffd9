package shard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultBarrierTimeout is how long the shards of a run wait for each other at the
// start barrier (--barrier-timeout).
const DefaultBarrierTimeout = 2 * time.Minute

// Errors of a sharded run. ErrRefused is the barrier refusing a shard (a count that
// differs from the run's, an index already registered, another scenario): invalid
// input, exit 2. ErrBarrier is a run that could not start or went on without a
// shard: a runtime failure, exit 1.
var (
	ErrRefused = errors.New("refused by the run's barrier")
	ErrBarrier = errors.New("shard barrier")
)

const (
	heartbeatEvery = time.Second
	followEvery    = 50 * time.Millisecond // how often a shard looks for the coordinator's marks
	waitPoll       = 100 * time.Millisecond
	opTimeout      = 3 * time.Second // one coordination statement
	// startLead is how far ahead of the database's clock the coordinator sets the
	// start: every shard polls far more often, so every one is waiting when it comes.
	startLead  = 1500 * time.Millisecond
	chunkBytes = 1 << 20
	// advisoryKey serialises coordinators creating runs in one database.
	advisoryKey = 0x7265686561727365 // "rehearse"
)

// Config is what a shard needs to join its run.
type Config struct {
	Spec Spec
	// Conn reaches the coordination schema: the writer endpoint, as the load's
	// clients reach it (it follows the writer through the cutover).
	Conn *pgx.ConnConfig
	// Scenario and ScenarioSHA256 identify the scenario: every shard of a run runs
	// the same file.
	Scenario, ScenarioSHA256 string
	// Sessions is this shard's share of the sessions (recorded in its row).
	Sessions int
	// Extends (the coordinator's) says the load runs until the coordinator
	// publishes its stop, which its cutover decides, rather than for the
	// scenario's duration.
	Extends bool
	// BarrierTimeout bounds the wait for the other shards (default
	// DefaultBarrierTimeout).
	BarrierTimeout time.Duration
	// Host and PID say where the shard runs, in messages about it.
	Host string
	PID  int
	// Log gets what the shard is waiting for.
	Log io.Writer
	// DeadAfter is how long a shard's heartbeat may stand still before it counts
	// as gone (0: DeadAfter).
	DeadAfter time.Duration
}

// Member is one shard's membership of its run.
type Member struct {
	cfg     Config
	pool    *pgxpool.Pool
	run     string
	log     io.Writer
	offset  time.Duration // the database's clock minus this machine's
	extends bool

	stopBeat context.CancelFunc
	beatDone chan struct{}

	mu     sync.Mutex
	closed bool
}

// Lost is a shard whose results the coordinator did not get.
type Lost struct {
	Index  int
	Reason string
}

// Join connects to the coordination schema and enters the run: the coordinator
// creates it (refusing to while another coordinator's run is live in the
// database), the others wait up to the barrier timeout for it and register,
// refused when their count or scenario differs from the run's or their index is
// taken. The member heartbeats until Close.
func Join(ctx context.Context, cfg Config) (*Member, error) {
	if cfg.BarrierTimeout <= 0 {
		cfg.BarrierTimeout = DefaultBarrierTimeout
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = DeadAfter
	}
	pcfg, err := pgxpool.ParseConfig("")
	if err != nil {
		return nil, err
	}
	pcfg.ConnConfig = cfg.Conn.Copy()
	pcfg.ConnConfig.ConnectTimeout = opTimeout
	pcfg.MaxConns = 3
	pcfg.MaxConnLifetime = 10 * time.Second
	pcfg.HealthCheckPeriod = time.Second
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("shard %s: the coordination database: %w", cfg.Spec, err)
	}
	m := &Member{cfg: cfg, pool: pool, log: cfg.Log}
	if cfg.Spec.Coordinator() {
		err = m.create(ctx)
	} else {
		err = m.register(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, err
	}
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.stopBeat, m.beatDone = cancel, make(chan struct{})
	go m.heartbeat(bctx)
	return m, nil
}

// RunID is the run's id, the same in every shard's result.
func (m *Member) RunID() string { return m.run }

// Extends says the load runs until the coordinator publishes its stop (its cutover
// decides when), not for the scenario's duration.
func (m *Member) Extends() bool { return m.extends }

// Spec is the member's shard.
func (m *Member) Spec() Spec { return m.cfg.Spec }

func (m *Member) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	qctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	tag, err := m.pool.Exec(qctx, sql, args...)
	m.after(err)
	return tag, err
}

// after drops the pool's connections after an error that is not a statement's own
// (a broken connection, a node that became read-only): the next statement
// connects, and resolves the endpoint, afresh.
func (m *Member) after(err error) {
	if err == nil || errors.Is(err, pgx.ErrNoRows) {
		return
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505", "42P01", "3F000", "40001", "40P01":
			return
		}
	}
	m.pool.Reset()
}

// retry runs fn until it succeeds or ctx ends, returning fn's last error then.
func (m *Member) retry(ctx context.Context, fn func(context.Context) error) error {
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if s := sleep(ctx, waitPoll); s != nil {
			return fmt.Errorf("%w (last error: %v)", s, err)
		}
	}
}

func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// create makes the coordinator's run, in state setup.
func (m *Member) create(ctx context.Context) error {
	// Concurrent CREATE … IF NOT EXISTS can still collide in the catalog: retry.
	var err error
	for range 3 {
		if _, err = m.exec(ctx, Schema); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("shard %s: creating the rehearse_run schema: %w", m.cfg.Spec, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*opTimeout)
	defer cancel()
	tx, err := m.pool.Begin(cctx)
	if err != nil {
		m.after(err)
		return fmt.Errorf("shard %s: the coordination database: %w", m.cfg.Spec, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(cctx, `SELECT pg_advisory_xact_lock($1)`, int64(advisoryKey)); err != nil {
		return fmt.Errorf("shard %s: the coordination database: %w", m.cfg.Spec, err)
	}
	var other, host string
	var pid, shards int
	err = tx.QueryRow(cctx, `SELECT r.id, r.shards, coalesce(s.host, ''), coalesce(s.pid, 0) FROM rehearse_run.runs r
  LEFT JOIN rehearse_run.shards s ON s.run_id = r.id AND s.idx = 0
 WHERE r.state IN ('setup', 'open', 'started') AND r.heartbeat_at > clock_timestamp() - make_interval(secs => $1)
 ORDER BY r.created_at DESC LIMIT 1`, m.cfg.DeadAfter.Seconds()).Scan(&other, &shards, &host, &pid)
	switch {
	case err == nil:
		return fmt.Errorf("%w: --shard %s: the coordinator of run %s (%d shards, host %s, pid %d) is live in this database: two shards with index 0; wait for that run to end, or give this one another target", ErrRefused, m.cfg.Spec, other, shards, host, pid)
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("shard %s: the coordination database: %w", m.cfg.Spec, err)
	}
	// Earlier runs (finished, or without a live coordinator) go, with their records.
	if _, err := tx.Exec(cctx, `DELETE FROM rehearse_run.runs`); err != nil {
		return fmt.Errorf("shard %s: clearing earlier runs: %w", m.cfg.Spec, err)
	}
	m.run, m.extends = newRunID(), m.cfg.Extends
	if _, err := tx.Exec(cctx, `INSERT INTO rehearse_run.runs (id, scenario, scenario_sha256, shards, state, extends) VALUES ($1, $2, $3, $4, $5, $6)`,
		m.run, m.cfg.Scenario, m.cfg.ScenarioSHA256, m.cfg.Spec.Count, runSetup, m.extends); err != nil {
		return fmt.Errorf("shard %s: creating the run: %w", m.cfg.Spec, err)
	}
	if _, err := tx.Exec(cctx, `INSERT INTO rehearse_run.shards (run_id, idx, shards, host, pid, sessions, state) VALUES ($1, 0, $2, $3, $4, $5, $6)`,
		m.run, m.cfg.Spec.Count, m.cfg.Host, m.cfg.PID, m.cfg.Sessions, shardRegistered); err != nil {
		return fmt.Errorf("shard %s: registering: %w", m.cfg.Spec, err)
	}
	if err := tx.Commit(cctx); err != nil {
		m.after(err)
		return fmt.Errorf("shard %s: creating the run: %w", m.cfg.Spec, err)
	}
	fmt.Fprintf(m.log, "shard %s: coordinating run %s in the target's rehearse_run schema\n", m.cfg.Spec, m.run)
	return nil
}

// liveRun is the newest run whose coordinator is live.
type liveRun struct {
	id, sha, state string
	shards         int
	extends        bool
}

func (m *Member) findRun(ctx context.Context) (liveRun, bool, error) {
	var r liveRun
	qctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	err := m.pool.QueryRow(qctx, `SELECT id, scenario_sha256, state, shards, extends FROM rehearse_run.runs
 WHERE state IN ('setup', 'open', 'started') AND heartbeat_at > clock_timestamp() - make_interval(secs => $1)
 ORDER BY created_at DESC LIMIT 1`, m.cfg.DeadAfter.Seconds()).Scan(&r.id, &r.sha, &r.state, &r.shards, &r.extends)
	m.after(err)
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return r, true, nil
	case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000"):
		return r, false, nil // no run yet (or no schema yet)
	}
	return r, false, err
}

// register waits for the coordinator's run and registers the shard in it.
func (m *Member) register(ctx context.Context) error {
	spec := m.cfg.Spec
	deadline := time.Now().Add(m.cfg.BarrierTimeout)
	said := false
	var lastErr error
	for {
		r, ok, err := m.findRun(ctx)
		if err != nil {
			lastErr = err
		}
		if ok {
			// Registered while the coordinator sets the workload up (seeding can
			// take a while), a shard waits for it as long as it heartbeats (await).
			return m.enter(ctx, r)
		}
		if !said {
			fmt.Fprintf(m.log, "shard %s: waiting for the coordinator (shard 0) to open the run\n", spec)
			said = true
		}
		if time.Now().After(deadline) {
			why := ""
			if lastErr != nil {
				why = fmt.Sprintf(" (last error: %v)", lastErr)
			}
			return fmt.Errorf("%w: --shard %s: no coordinator (shard 0/%d) opened a run in the target database within --barrier-timeout %v%s", ErrBarrier, spec, spec.Count, m.cfg.BarrierTimeout, why)
		}
		if err := sleep(ctx, waitPoll); err != nil {
			return err
		}
	}
}

// enter checks the run against the shard and registers it.
func (m *Member) enter(ctx context.Context, r liveRun) error {
	spec := m.cfg.Spec
	switch {
	case r.shards != spec.Count:
		return fmt.Errorf("%w: --shard %s: run %s was started with %d shards, this shard with %d: every shard of a run takes the same count", ErrRefused, spec, r.id, r.shards, spec.Count)
	case r.sha != m.cfg.ScenarioSHA256:
		return fmt.Errorf("%w: --shard %s: run %s runs another scenario file (sha256 %.12s…, this shard's %.12s…): every shard of a run runs the same file", ErrRefused, spec, r.id, r.sha, m.cfg.ScenarioSHA256)
	}
	_, err := m.exec(ctx, `INSERT INTO rehearse_run.shards (run_id, idx, shards, host, pid, sessions, state) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		r.id, spec.Index, spec.Count, m.cfg.Host, m.cfg.PID, m.cfg.Sessions, shardRegistered)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		var host string
		var pid int
		qctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		_ = m.pool.QueryRow(qctx, `SELECT host, pid FROM rehearse_run.shards WHERE run_id = $1 AND idx = $2`, r.id, spec.Index).Scan(&host, &pid)
		return fmt.Errorf("%w: --shard %s: run %s already has a shard %d (host %s, pid %d): two shards with the same index", ErrRefused, spec, r.id, spec.Index, host, pid)
	}
	if err != nil {
		return fmt.Errorf("shard %s: registering in run %s: %w", spec, r.id, err)
	}
	m.run, m.extends = r.id, r.extends
	if r.state == runStarted {
		m.fail(ctx, "arrived after the start")
		return fmt.Errorf("%w: --shard %s: run %s started without this shard: it arrived after the barrier", ErrBarrier, spec, r.id)
	}
	fmt.Fprintf(m.log, "shard %s: registered in run %s\n", spec, r.id)
	return nil
}

// heartbeat counts the shard's beats (and the coordinator's run's) until ctx ends.
func (m *Member) heartbeat(ctx context.Context) {
	defer close(m.beatDone)
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		_, _ = m.exec(ctx, `UPDATE rehearse_run.shards SET beats = beats + 1, heartbeat_at = clock_timestamp() WHERE run_id = $1 AND idx = $2`, m.run, m.cfg.Spec.Index)
		if m.cfg.Spec.Coordinator() {
			_, _ = m.exec(ctx, `UPDATE rehearse_run.runs SET heartbeat_at = clock_timestamp() WHERE id = $1`, m.run)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// measureOffset estimates the database's clock minus this machine's from a few
// round trips, keeping the shortest.
func (m *Member) measureOffset(ctx context.Context) error {
	best := time.Duration(-1)
	var lastErr error
	for range 5 {
		qctx, cancel := context.WithTimeout(ctx, opTimeout)
		t0 := time.Now()
		var db time.Time
		err := m.pool.QueryRow(qctx, `SELECT clock_timestamp()`).Scan(&db)
		t1 := time.Now()
		cancel()
		m.after(err)
		if err != nil {
			lastErr = err
			continue
		}
		if rtt := t1.Sub(t0); best < 0 || rtt < best {
			best = rtt
			m.offset = db.Sub(t0.Add(rtt / 2))
		}
	}
	if best < 0 {
		return fmt.Errorf("shard %s: reading the database's clock: %w", m.cfg.Spec, lastErr)
	}
	return nil
}

// Done (a non-coordinator) publishes the shard's acknowledged-write records for
// the coordinator's integrity check and says it is done, retrying until ctx ends.
func (m *Member) Done(ctx context.Context, outcomes []byte, detail string) error {
	idx := m.cfg.Spec.Index
	err := m.retry(ctx, func(ctx context.Context) error {
		cctx, cancel := context.WithTimeout(ctx, opTimeout+time.Duration(len(outcomes)/chunkBytes)*time.Second)
		defer cancel()
		tx, err := m.pool.Begin(cctx)
		if err != nil {
			m.after(err)
			return err
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		if _, err := tx.Exec(cctx, `DELETE FROM rehearse_run.outcomes WHERE run_id = $1 AND idx = $2`, m.run, idx); err != nil {
			m.after(err)
			return err
		}
		for i := 0; i*chunkBytes < len(outcomes); i++ {
			chunk := outcomes[i*chunkBytes : min((i+1)*chunkBytes, len(outcomes))]
			if _, err := tx.Exec(cctx, `INSERT INTO rehearse_run.outcomes (run_id, idx, chunk, data) VALUES ($1, $2, $3, $4)`, m.run, idx, i, chunk); err != nil {
				m.after(err)
				return err
			}
		}
		if _, err := tx.Exec(cctx, `UPDATE rehearse_run.shards SET state = $3, detail = $4 WHERE run_id = $1 AND idx = $2`, m.run, idx, shardDone, detail); err != nil {
			m.after(err)
			return err
		}
		err = tx.Commit(cctx)
		m.after(err)
		return err
	})
	if err != nil {
		return fmt.Errorf("shard %s: publishing its acknowledged writes for the coordinator: %w", m.cfg.Spec, err)
	}
	return nil
}

// Collect (the coordinator) waits until every other shard is done (or failed, or
// stopped heartbeating, or ctx ends) and hands each done shard's
// acknowledged-write records to fn. It returns the shards whose records it did not
// get, and why.
func (m *Member) Collect(ctx context.Context, fn func(idx int, outcomes []byte) error) ([]Lost, error) {
	n := m.cfg.Spec.Count
	live := newLiveness(m.cfg.DeadAfter)
	settled := map[int]Lost{}
	var done []int
	said := false
	for len(done)+len(settled) < n-1 {
		rows, err := m.shards(ctx)
		now := time.Now()
		if err == nil {
			beats := map[int]int64{}
			for _, r := range rows {
				beats[r.idx] = r.beats
			}
			live.observe(now, beats)
			for _, r := range rows {
				if r.idx == 0 || slices.Contains(done, r.idx) {
					continue
				}
				if _, ok := settled[r.idx]; ok {
					continue
				}
				switch {
				case r.state == shardDone:
					done = append(done, r.idx)
				case r.state == shardFailed:
					settled[r.idx] = Lost{Index: r.idx, Reason: "it failed: " + r.detail}
				case live.dead(r.idx, now):
					settled[r.idx] = Lost{Index: r.idx, Reason: fmt.Sprintf("it stopped heartbeating (host %s, pid %d) and never said it was done", r.host, r.pid)}
				}
			}
		}
		if len(done)+len(settled) >= n-1 {
			break
		}
		if !said {
			fmt.Fprintf(m.log, "shard %s: waiting for the other shards' acknowledged writes\n", m.cfg.Spec)
			said = true
		}
		if err := sleep(ctx, waitPoll); err != nil {
			for i := 1; i < n; i++ {
				if _, ok := settled[i]; !ok && !slices.Contains(done, i) {
					settled[i] = Lost{Index: i, Reason: "it did not say it was done in time"}
				}
			}
			break
		}
	}
	sort.Ints(done)
	for _, idx := range done {
		data, err := m.outcomes(ctx, idx)
		if err == nil {
			err = fn(idx, data)
		}
		if err != nil {
			settled[idx] = Lost{Index: idx, Reason: "reading its acknowledged writes: " + err.Error()}
		}
	}
	lost := make([]Lost, 0, len(settled))
	for _, l := range settled {
		lost = append(lost, l)
	}
	slices.SortFunc(lost, func(a, b Lost) int { return a.Index - b.Index })
	return lost, nil
}

func (m *Member) outcomes(ctx context.Context, idx int) ([]byte, error) {
	var out []byte
	err := m.retry(ctx, func(ctx context.Context) error {
		out = out[:0]
		qctx, cancel := context.WithTimeout(ctx, 4*opTimeout)
		defer cancel()
		rows, err := m.pool.Query(qctx, `SELECT data FROM rehearse_run.outcomes WHERE run_id = $1 AND idx = $2 ORDER BY chunk`, m.run, idx)
		if err != nil {
			m.after(err)
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				return err
			}
			out = append(out, b...)
		}
		err = rows.Err()
		m.after(err)
		return err
	})
	return out, err
}

// fail records that the shard failed, best effort.
func (m *Member) fail(ctx context.Context, detail string) {
	_, _ = m.exec(context.WithoutCancel(ctx), `UPDATE rehearse_run.shards SET state = $3, detail = $4 WHERE run_id = $1 AND idx = $2`,
		m.run, m.cfg.Spec.Index, shardFailed, detail)
}

// Fail records that the shard failed (with why), so the coordinator stops waiting
// for it. Best effort.
func (m *Member) Fail(ctx context.Context, why string) { m.fail(ctx, why) }

// finish records the run's end; a run that failed stays failed.
func (m *Member) finish(ctx context.Context, state, detail string) {
	_, _ = m.exec(context.WithoutCancel(ctx), `UPDATE rehearse_run.runs SET state = $2, detail = $3 WHERE id = $1 AND state <> $4`,
		m.run, state, detail, runFailed)
}

// Finish (the coordinator) records that the run ended: finished, or failed with
// why. Best effort.
func (m *Member) Finish(ctx context.Context, failed string) {
	if failed != "" {
		m.finish(ctx, runFailed, failed)
		return
	}
	m.finish(ctx, runFinished, "")
}

// Close stops the heartbeat and closes the connections.
func (m *Member) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.closed = true
	m.stopBeat()
	<-m.beatDone
	m.pool.Close()
}
