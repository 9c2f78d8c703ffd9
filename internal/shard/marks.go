package shard

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Mark is one of the coordinator's marks on the run's timeline: a disruption window
// (a switchover, a failback, a fault; End is set once it closed) or the start of a
// cutover cycle. Every shard applies the same marks to its recorder, so all label
// their operations' phases alike.
type Mark struct {
	// Kind is MarkDisruption or MarkCycle; Seq numbers the marks of a kind in the
	// order they were made.
	Kind string
	Seq  int
	// Label, Disruption and Cycle describe a disruption window (Disruption is its
	// kind: switchover, failback, fault, undo); Cycle is also a cycle mark's number.
	Label, Disruption string
	Cycle             int
	Start, End        time.Duration
	Ended             bool
}

// PublishMarks (the coordinator) publishes its marks so far: new ones, and the
// ends of windows that closed. It retries until they are written or ctx ends.
func (m *Member) PublishMarks(ctx context.Context, marks []Mark) error {
	return m.retry(ctx, func(ctx context.Context) error {
		qctx, cancel := context.WithTimeout(ctx, opTimeout)
		defer cancel()
		b := &pgx.Batch{}
		for _, k := range marks {
			var end *int64
			if k.Ended {
				e := int64(k.End)
				end = &e
			}
			b.Queue(`INSERT INTO rehearse_run.marks (run_id, kind, seq, label, disruption, cycle, start_ns, end_ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
 ON CONFLICT (run_id, kind, seq) DO UPDATE SET end_ns = EXCLUDED.end_ns WHERE marks.end_ns IS NULL AND EXCLUDED.end_ns IS NOT NULL`,
				m.run, k.Kind, k.Seq, k.Label, k.Disruption, k.Cycle, int64(k.Start), end)
		}
		err := m.pool.SendBatch(qctx, b).Close()
		m.after(err)
		return err
	})
}

// PublishStop (the coordinator) publishes when the load stops, on the run's
// timeline, retrying until it is written or ctx ends. The first stop published
// holds.
func (m *Member) PublishStop(ctx context.Context, at time.Duration) error {
	return m.retry(ctx, func(ctx context.Context) error {
		_, err := m.exec(ctx, `UPDATE rehearse_run.runs SET stop_ns = $2 WHERE id = $1 AND stop_ns IS NULL`, m.run, int64(at))
		return err
	})
}

// Follower is what a non-coordinator does with the coordinator's marks.
type Follower struct {
	// Marks gets every mark the coordinator published so far, on every look that
	// found one new or changed, kinds in order and each kind by Seq.
	Marks func([]Mark)
	// Stop gets the coordinator's stop on the run's timeline, once; why is "" for
	// a stop the coordinator published, else what happened to the coordinator.
	Stop func(at time.Duration, why string)
	// Since is the run's clock.
	Since func() time.Duration
}

// Follow (a non-coordinator) applies the coordinator's marks and stop until
// the stop is delivered or ctx ends. A coordinator that gives the run up or stops
// heartbeating stops the shard too, with the reason.
func (m *Member) Follow(ctx context.Context, f Follower) {
	seen := map[Mark]bool{}
	live := newLiveness(m.cfg.DeadAfter)
	t := time.NewTicker(followEvery)
	defer t.Stop()
	for {
		stop, why, ok := m.followOnce(ctx, f, seen, live)
		if ok {
			f.Stop(stop, why)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Member) followOnce(ctx context.Context, f Follower, seen map[Mark]bool, live *liveness) (time.Duration, string, bool) {
	qctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	// The run first, then its marks: the coordinator publishes its marks before its
	// stop, so a stop read here comes with every mark read below.
	var state, detail string
	var stop *int64
	var beats int64
	err := m.pool.QueryRow(qctx, `SELECT r.state, r.detail, r.stop_ns, coalesce(s.beats, 0) FROM rehearse_run.runs r
  LEFT JOIN rehearse_run.shards s ON s.run_id = r.id AND s.idx = 0 WHERE r.id = $1`, m.run).Scan(&state, &detail, &stop, &beats)
	m.after(err)
	if err != nil {
		return 0, "", false
	}
	now := time.Now()
	live.observe(now, map[int]int64{0: beats})
	rows, err := m.pool.Query(qctx, `SELECT kind, seq, label, disruption, cycle, start_ns, end_ns FROM rehearse_run.marks
 WHERE run_id = $1 ORDER BY kind DESC, seq`, m.run)
	if err != nil {
		m.after(err)
		return 0, "", false
	}
	marks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Mark, error) {
		var k Mark
		var start int64
		var end *int64
		err := r.Scan(&k.Kind, &k.Seq, &k.Label, &k.Disruption, &k.Cycle, &start, &end)
		k.Start = time.Duration(start)
		if end != nil {
			k.End, k.Ended = time.Duration(*end), true
		}
		return k, err
	})
	m.after(err)
	if err != nil {
		return 0, "", false
	}
	changed := false
	for _, k := range marks {
		if !seen[k] {
			seen[k] = true
			changed = true
		}
	}
	if changed {
		f.Marks(marks)
	}
	switch {
	case stop != nil:
		return time.Duration(*stop), "", true
	case state == runFailed || state == runAbandoned || state == runFinished:
		return f.Since(), "the coordinator gave the run up: " + detail, true
	case live.dead(0, now):
		return f.Since(), fmt.Sprintf("the coordinator (shard 0) stopped heartbeating %v before", live.stale(0, now).Round(time.Second)), true
	}
	return 0, "", false
}
