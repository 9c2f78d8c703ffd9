package script

import (
	"encoding/binary"
	"fmt"

	"github.com/rehearse-dev/rehearse/workload"
)

var _ workload.Outcomes = (*Workload)(nil)

// ExportOutcomes encodes the acknowledged and ambiguous txids recorded so far: the
// count of acknowledged keys (8 bytes, big-endian), those keys, then the ambiguous
// ones, 16 bytes each.
func (w *Workload) ExportOutcomes() ([]byte, error) {
	acked, amb := w.log.snapshot()
	count := func(cs [][][16]byte) int {
		n := 0
		for _, c := range cs {
			n += len(c)
		}
		return n
	}
	na := count(acked)
	out := make([]byte, 0, 8+16*(na+count(amb)))
	out = binary.BigEndian.AppendUint64(out, uint64(na))
	for _, cs := range [][][][16]byte{acked, amb} {
		for _, c := range cs {
			for _, k := range c {
				out = append(out, k[:]...)
			}
		}
	}
	return out, nil
}

// ImportOutcomes adds another process's exported txids to the records Verify
// checks.
func (w *Workload) ImportOutcomes(b []byte) error {
	if len(b) < 8 || (len(b)-8)%16 != 0 {
		return fmt.Errorf("script: outcome records of %d bytes are malformed", len(b))
	}
	na := binary.BigEndian.Uint64(b[:8])
	if na > uint64((len(b)-8)/16) {
		return fmt.Errorf("script: outcome records claim %d acknowledged keys in %d bytes", na, len(b))
	}
	for i, off := uint64(0), 8; off < len(b); i, off = i+1, off+16 {
		var k [16]byte
		copy(k[:], b[off:off+16])
		w.log.add(k, i >= na)
	}
	return nil
}
