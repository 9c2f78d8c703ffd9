package script

import "sync"

const (
	logShards = 16
	chunkKeys = 8192
)

// outcomeLog records the txids of acknowledged and ambiguous executions, 16 bytes
// each: an hour at two thousand writes a second is about 115 MB. It is sharded by
// key (keys are random in their last byte) so concurrent workers rarely share a
// lock, and grows in fixed-size chunks so growth never copies what is recorded.
type outcomeLog struct {
	shards [logShards]logShard
}

type logShard struct {
	mu        sync.Mutex
	acked     keyChunks
	ambiguous keyChunks
	_         [64]byte // keep neighbouring shards' locks off one cache line
}

type keyChunks struct {
	full [][][16]byte
	cur  [][16]byte
	n    int64
}

func (c *keyChunks) add(key [16]byte) {
	if len(c.cur) == cap(c.cur) {
		if c.cur != nil {
			c.full = append(c.full, c.cur)
		}
		c.cur = make([][16]byte, 0, chunkKeys)
	}
	c.cur = append(c.cur, key)
	c.n++
}

// chunks returns the recorded keys. They are shared with the log but only ever
// appended to, so reading the returned prefix is safe.
func (c *keyChunks) chunks(out [][][16]byte) [][][16]byte {
	out = append(out, c.full...)
	if len(c.cur) > 0 {
		out = append(out, c.cur[:len(c.cur):len(c.cur)])
	}
	return out
}

func (l *outcomeLog) add(key [16]byte, ambiguous bool) {
	s := &l.shards[key[15]%logShards]
	s.mu.Lock()
	if ambiguous {
		s.ambiguous.add(key)
	} else {
		s.acked.add(key)
	}
	s.mu.Unlock()
}

// counts returns the acknowledged and ambiguous totals.
func (l *outcomeLog) counts() (acked, ambiguous int64) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		acked += s.acked.n
		ambiguous += s.ambiguous.n
		s.mu.Unlock()
	}
	return acked, ambiguous
}

// snapshot returns the acknowledged and the ambiguous keys as chunks.
func (l *outcomeLog) snapshot() (acked, ambiguous [][][16]byte) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		acked = s.acked.chunks(acked)
		ambiguous = s.ambiguous.chunks(ambiguous)
		s.mu.Unlock()
	}
	return acked, ambiguous
}
