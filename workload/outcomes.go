package workload

// Outcomes is implemented by a workload whose integrity check compares the
// database with what its client saw (the acknowledged and ambiguous writes). When
// a run is spread over several processes, each non-coordinator exports its
// records after the load and the coordinator imports them before it verifies, so
// the check covers every shard's writes. The encoding is the workload's own.
type Outcomes interface {
	// ExportOutcomes encodes the writes this process recorded.
	ExportOutcomes() ([]byte, error)
	// ImportOutcomes adds writes another process recorded (as ExportOutcomes
	// encoded them) to this process's records.
	ImportOutcomes(b []byte) error
}
