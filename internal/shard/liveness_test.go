package shard

import (
	"testing"
	"time"
)

func TestLiveness(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	l := newLiveness(10 * time.Second)
	// Shard 1 beats every second; shard 2 stops at 2 s.
	for s := 0; s <= 12; s++ {
		beats := map[int]int64{1: int64(s), 2: int64(min(s, 2))}
		l.observe(at(float64(s)), beats)
	}
	if l.dead(1, at(12)) {
		t.Error("a shard that beats counts as dead")
	}
	if !l.dead(2, at(12.5)) {
		t.Errorf("a shard silent for %v is not dead", l.stale(2, at(12.5)))
	}

	// The observer itself was blind for 20 s (the database unreachable during a
	// cutover): nobody could beat, so nobody is dead when it sees again.
	l = newLiveness(10 * time.Second)
	l.observe(at(0), map[int]int64{1: 5})
	l.observe(at(20), map[int]int64{1: 5})
	if l.dead(1, at(20)) {
		t.Error("a shard counted dead for the observer's own blindness")
	}
	for s := 20.5; s <= 31; s += 0.5 {
		l.observe(at(s), map[int]int64{1: 5})
	}
	if !l.dead(1, at(31)) {
		t.Error("a shard silent for 11 s of sight is not dead")
	}
	if l.dead(9, at(31)) || l.stale(9, at(31)) != 0 {
		t.Error("a shard never seen counts as dead")
	}
}
