package banking

import (
	"encoding/binary"
	"fmt"

	"github.com/rehearse-dev/rehearse/workload"
)

var _ workload.Outcomes = (*Workload)(nil)

// entrySize is an exported entry: the 16-byte key and the packed amount, kind and
// ambiguity (big-endian).
const entrySize = 24

// ExportOutcomes encodes the acknowledged and ambiguous writes recorded so far, 24
// bytes each.
func (w *Workload) ExportOutcomes() ([]byte, error) {
	chunks := w.log.snapshot()
	n := 0
	for _, c := range chunks {
		n += len(c)
	}
	out := make([]byte, 0, n*entrySize)
	for _, c := range chunks {
		for _, e := range c {
			out = append(out, e.key[:]...)
			out = binary.BigEndian.AppendUint64(out, uint64(e.meta))
		}
	}
	return out, nil
}

// ImportOutcomes adds another process's exported writes to the records Verify
// checks.
func (w *Workload) ImportOutcomes(b []byte) error {
	if len(b)%entrySize != 0 {
		return fmt.Errorf("banking: outcome records of %d bytes are not whole %d-byte entries", len(b), entrySize)
	}
	for i := 0; i < len(b); i += entrySize {
		var key [16]byte
		copy(key[:], b[i:i+16])
		meta := int64(binary.BigEndian.Uint64(b[i+16 : i+entrySize]))
		e := entry{key: key, meta: meta}
		if e.kind() == 0 || int(e.kind()) >= len(kindNames) {
			return fmt.Errorf("banking: outcome record %d has an unknown kind %d", i/entrySize, e.kind())
		}
		w.log.add(key, e.kind(), e.amount(), e.ambiguous())
	}
	return nil
}
