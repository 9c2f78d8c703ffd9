package shard

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Ready says the shard's sessions are built and waits at the barrier. The
// coordinator waits up to the barrier timeout for every shard to be ready, then
// sets the start a moment ahead on the database's clock; the others wait for that
// start. It returns the start on this machine's clock (with a monotonic reading):
// every shard's timeline starts there.
func (m *Member) Ready(ctx context.Context) (time.Time, error) {
	if err := m.measureOffset(ctx); err != nil {
		return time.Time{}, err
	}
	if _, err := m.exec(ctx, `UPDATE rehearse_run.shards SET state = $3 WHERE run_id = $1 AND idx = $2`, m.run, m.cfg.Spec.Index, shardReady); err != nil {
		return time.Time{}, fmt.Errorf("shard %s: the coordination database: %w", m.cfg.Spec, err)
	}
	var at time.Time
	var err error
	if m.cfg.Spec.Coordinator() {
		at, err = m.gather(ctx)
	} else {
		at, err = m.await(ctx)
	}
	if err != nil {
		m.fail(ctx, err.Error())
		return time.Time{}, err
	}
	_, _ = m.exec(ctx, `UPDATE rehearse_run.shards SET state = $3 WHERE run_id = $1 AND idx = $2`, m.run, m.cfg.Spec.Index, shardRunning)
	return time.Now().Add(time.Until(at.Add(-m.offset))), nil
}

type shardRow struct {
	idx         int
	state, host string
	detail      string
	beats       int64
	pid         int
}

func (m *Member) shards(ctx context.Context) ([]shardRow, error) {
	qctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	rows, err := m.pool.Query(qctx, `SELECT idx, state, host, detail, beats, pid FROM rehearse_run.shards WHERE run_id = $1 ORDER BY idx`, m.run)
	if err != nil {
		m.after(err)
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (shardRow, error) {
		var s shardRow
		err := r.Scan(&s.idx, &s.state, &s.host, &s.detail, &s.beats, &s.pid)
		return s, err
	})
	m.after(err)
	return out, err
}

// gather is the coordinator's side of the barrier.
func (m *Member) gather(ctx context.Context) (time.Time, error) {
	n := m.cfg.Spec.Count
	if _, err := m.exec(ctx, `UPDATE rehearse_run.runs SET state = $2 WHERE id = $1`, m.run, runOpen); err != nil {
		return time.Time{}, fmt.Errorf("shard %s: opening the barrier: %w", m.cfg.Spec, err)
	}
	fmt.Fprintf(m.log, "shard %s: waiting for %d shards at the start barrier (--barrier-timeout %v)\n", m.cfg.Spec, n, m.cfg.BarrierTimeout)
	deadline := time.Now().Add(m.cfg.BarrierTimeout)
	var rows []shardRow
	for {
		var err error
		if rows, err = m.shards(ctx); err == nil {
			ready := 0
			for _, r := range rows {
				if r.state == shardReady {
					ready++
				}
				if r.state == shardFailed {
					why := fmt.Sprintf("shard %d (host %s, pid %d) failed before the start: %s", r.idx, r.host, r.pid, r.detail)
					m.finish(ctx, runFailed, why)
					return time.Time{}, fmt.Errorf("%w: %s", ErrBarrier, why)
				}
			}
			if ready == n {
				break
			}
		}
		if time.Now().After(deadline) {
			why := missing(rows, n)
			m.finish(ctx, runFailed, why)
			return time.Time{}, fmt.Errorf("%w: %s within --barrier-timeout %v: start them against the same target with --shard INDEX/%d (or raise --barrier-timeout)", ErrBarrier, why, m.cfg.BarrierTimeout, n)
		}
		if err := sleep(ctx, waitPoll); err != nil {
			m.finish(context.WithoutCancel(ctx), runFailed, "the coordinator was interrupted at the barrier")
			return time.Time{}, err
		}
	}
	var start time.Time
	if err := m.retry(ctx, func(ctx context.Context) error {
		qctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		err := m.pool.QueryRow(qctx, `UPDATE rehearse_run.runs SET state = $2, start_at = clock_timestamp() + make_interval(secs => $3)
 WHERE id = $1 RETURNING start_at`, m.run, runStarted, startLead.Seconds()).Scan(&start)
		m.after(err)
		return err
	}); err != nil {
		return time.Time{}, fmt.Errorf("shard %s: setting the start: %w", m.cfg.Spec, err)
	}
	fmt.Fprintf(m.log, "shard %s: all %d shards ready; the load starts at %s\n", m.cfg.Spec, n, start.UTC().Format("15:04:05.000"))
	return start, nil
}

// missing says which shards have not reached the barrier.
func missing(rows []shardRow, n int) string {
	seen := map[int]shardRow{}
	for _, r := range rows {
		seen[r.idx] = r
	}
	var absent, unready []string
	for i := range n {
		r, ok := seen[i]
		switch {
		case !ok:
			absent = append(absent, strconv.Itoa(i))
		case r.state != shardReady:
			unready = append(unready, fmt.Sprintf("%d (host %s, pid %d, %s)", i, r.host, r.pid, r.state))
		}
	}
	var parts []string
	if len(absent) > 0 {
		parts = append(parts, fmt.Sprintf("shard%s %s of %d did not arrive", plural(len(absent)), strings.Join(absent, ", "), n))
	}
	if len(unready) > 0 {
		parts = append(parts, fmt.Sprintf("shard%s %s registered but did not get ready", plural(len(unready)), strings.Join(unready, ", ")))
	}
	if len(parts) == 0 {
		return "the shards did not all get ready"
	}
	return strings.Join(parts, "; ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// await is a non-coordinator's side of the barrier.
func (m *Member) await(ctx context.Context) (time.Time, error) {
	live := newLiveness(m.cfg.DeadAfter)
	var openedAt time.Time
	for {
		var state, detail string
		var start *time.Time
		var beats int64
		qctx, cancel := context.WithTimeout(ctx, opTimeout)
		err := m.pool.QueryRow(qctx, `SELECT r.state, r.detail, r.start_at, coalesce(s.beats, 0) FROM rehearse_run.runs r
  LEFT JOIN rehearse_run.shards s ON s.run_id = r.id AND s.idx = 0 WHERE r.id = $1`, m.run).Scan(&state, &detail, &start, &beats)
		cancel()
		m.after(err)
		now := time.Now()
		if err == nil {
			live.observe(now, map[int]int64{0: beats})
			switch state {
			case runStarted:
				return *start, nil
			case runFailed, runAbandoned, runFinished:
				return time.Time{}, fmt.Errorf("%w: the coordinator gave the run up: %s", ErrBarrier, detail)
			case runOpen:
				if openedAt.IsZero() {
					openedAt = now
				}
			}
			if live.dead(0, now) {
				return time.Time{}, fmt.Errorf("%w: the coordinator (shard 0) stopped heartbeating %v ago, before the start", ErrBarrier, live.stale(0, now).Round(time.Second))
			}
		}
		// The coordinator times the barrier out itself; this bound is for a
		// coordinator that cannot say so.
		if !openedAt.IsZero() && now.Sub(openedAt) > m.cfg.BarrierTimeout+m.cfg.DeadAfter {
			return time.Time{}, fmt.Errorf("%w: the run did not start within --barrier-timeout %v", ErrBarrier, m.cfg.BarrierTimeout)
		}
		if err := sleep(ctx, waitPoll); err != nil {
			return time.Time{}, err
		}
	}
}
