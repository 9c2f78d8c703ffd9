package banking

import "sync"

// Kinds of tracked writes, as stored in the outcome log.
const (
	kindTransfer byte = iota + 1
	kindDeposit
	kindInterest
	kindFee
)

// kindNames maps a kind byte to the transfers.kind text.
var kindNames = [...]string{kindTransfer: "transfer", kindDeposit: "deposit", kindInterest: "interest", kindFee: "fee"}

const (
	flagAmbiguous = 0x80
	kindMask      = 0x7f
	chunkSize     = 8192
	numShards     = 16
)

// entry is one tracked write in 24 bytes: the idempotency key and, packed into one
// word, the amount (upper 56 bits, signed) with the kind and ambiguity flag (low byte).
// Two thousand writes a second for an hour is about 170 MB.
type entry struct {
	key  [16]byte
	meta int64
}

func (e entry) amount() int64   { return e.meta >> 8 }
func (e entry) kind() byte      { return byte(e.meta) & kindMask }
func (e entry) ambiguous() bool { return byte(e.meta)&flagAmbiguous != 0 }

// outcomeLog records acknowledged and ambiguous writes. It is sharded by key (keys
// are random) so concurrent workers rarely share a lock, and stored in fixed-size
// chunks so growth never copies what is already recorded.
type outcomeLog struct {
	shards [numShards]logShard
}

type logShard struct {
	mu    sync.Mutex
	full  [][]entry
	cur   []entry
	acked int64
	amb   int64
	_     [64]byte // keep neighbouring shards' locks off one cache line
}

func (l *outcomeLog) add(key [16]byte, kind byte, amount int64, ambiguous bool) {
	meta := amount<<8 | int64(kind)
	if ambiguous {
		meta |= flagAmbiguous
	}
	s := &l.shards[key[15]%numShards]
	s.mu.Lock()
	if len(s.cur) == cap(s.cur) {
		if s.cur != nil {
			s.full = append(s.full, s.cur)
		}
		s.cur = make([]entry, 0, chunkSize)
	}
	s.cur = append(s.cur, entry{key: key, meta: meta})
	if ambiguous {
		s.amb++
	} else {
		s.acked++
	}
	s.mu.Unlock()
}

// counts returns the acknowledged and ambiguous totals.
func (l *outcomeLog) counts() (acked, ambiguous int64) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		acked += s.acked
		ambiguous += s.amb
		s.mu.Unlock()
	}
	return acked, ambiguous
}

// snapshot returns the recorded entries as chunks. The chunks are shared with the log
// but only ever appended to, so reading the returned prefix is safe.
func (l *outcomeLog) snapshot() [][]entry {
	var out [][]entry
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		out = append(out, s.full...)
		if len(s.cur) > 0 {
			out = append(out, s.cur[:len(s.cur):len(s.cur)])
		}
		s.mu.Unlock()
	}
	return out
}
