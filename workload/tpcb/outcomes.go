package tpcb

import (
	"encoding/binary"
	"fmt"

	"github.com/rehearse-dev/rehearse/workload"
)

var _ workload.Outcomes = (*Workload)(nil)

// ExportOutcomes encodes the acknowledged and ambiguous transaction counts (TPC-B
// checks counts: pgbench_history's growth against them), 8 bytes each.
func (w *Workload) ExportOutcomes() ([]byte, error) {
	out := binary.BigEndian.AppendUint64(nil, uint64(w.acked.Load()))
	return binary.BigEndian.AppendUint64(out, uint64(w.ambiguous.Load())), nil
}

// ImportOutcomes adds another process's counts to this one's.
func (w *Workload) ImportOutcomes(b []byte) error {
	if len(b) != 16 {
		return fmt.Errorf("tpcb: outcome counts of %d bytes, want 16", len(b))
	}
	w.acked.Add(int64(binary.BigEndian.Uint64(b[:8])))
	w.ambiguous.Add(int64(binary.BigEndian.Uint64(b[8:])))
	return nil
}
