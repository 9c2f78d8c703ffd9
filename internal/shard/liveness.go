package shard

import "time"

// DeadAfter is how long a shard's heartbeat may stand still, while the observer
// itself reaches the database, before the shard counts as gone. It is well above
// what a cutover takes from the coordination schema (a switchover, the endpoints'
// propagation, the clients' DNS caches), during which no shard can write a beat.
const DeadAfter = 30 * time.Second

// blindGap is how long the observer may go without reading the beats before it
// stops trusting its own view: when it reaches the database again, every shard's
// clock restarts, since no shard could write a beat while it could not read one.
const blindGap = 3 * time.Second

// liveness tells shards that stopped beating from shards that could not: it counts
// only the time the observer itself read the beats.
type liveness struct {
	after     time.Duration // DeadAfter, or a test's
	beats     map[int]int64
	changedAt map[int]time.Time
	lastRead  time.Time
}

func newLiveness(after time.Duration) *liveness {
	return &liveness{after: after, beats: map[int]int64{}, changedAt: map[int]time.Time{}}
}

// observe records the beat counters read at now.
func (l *liveness) observe(now time.Time, beats map[int]int64) {
	if !l.lastRead.IsZero() && now.Sub(l.lastRead) > blindGap {
		for k := range l.changedAt {
			l.changedAt[k] = now
		}
	}
	for idx, b := range beats {
		if old, ok := l.beats[idx]; !ok || old != b {
			l.beats[idx] = b
			l.changedAt[idx] = now
		}
	}
	l.lastRead = now
}

// stale is how long shard idx's beat has stood still as the observer saw it; 0 for
// a shard it has not seen.
func (l *liveness) stale(idx int, now time.Time) time.Duration {
	at, ok := l.changedAt[idx]
	if !ok {
		return 0
	}
	return now.Sub(at)
}

// dead reports whether shard idx stopped beating (see DeadAfter).
func (l *liveness) dead(idx int, now time.Time) bool { return l.stale(idx, now) > l.after }
