package result

// Files a shard of a sharded run writes next to its result.json, which `rehearse
// report merge` reads: the whole run's histograms (HistogramsFile) and the
// per-millisecond availability series (SeriesFile). The scenario file itself is
// copied too (ScenarioFile), so the merge evaluates the SLOs it names.
const (
	HistogramsFile = "histograms.hlog"
	SeriesFile     = "availability.series"
	ScenarioFile   = "scenario.yaml"
)

// Tags of the histograms in HistogramsFile: one per operation and kind, as
// KIND:OPERATION (TagLatency "latency:transfer", TagService "service:transfer",
// a phase's name "during:transfer"), and the schedule lag's, TagLag.
const (
	TagLatency = "latency"
	TagService = "service"
	TagLag     = "lag"
)

// ShardInfo identifies one shard's result within its run. Added type.
type ShardInfo struct {
	// RunID is the run's id, the same in every shard's result.
	RunID string `json:"run_id"`
	// Index is the shard's index, 0 … Count-1; shard 0 is the coordinator.
	Index int `json:"index"`
	// Count is how many shards the run has.
	Count int `json:"count"`
	// Seed is the shard's own seed (the scenario's plus the index).
	Seed uint64 `json:"seed"`
	// SessionOffset is the run-wide index of the shard's first session.
	SessionOffset int `json:"session_offset"`
	// AcknowledgedWrites is how many acknowledged writes this shard's own clients
	// saw: the coordinator's integrity check covers the sum of every shard's.
	AcknowledgedWrites int64 `json:"acknowledged_writes"`
	// Phases are when the cutover's phases began on the run's timeline (seconds),
	// as the coordinator marked them and every shard applied them.
	Phases map[string]float64 `json:"phases,omitempty"`
	// Cycles counts this shard's operations in each cutover cycle's accounting
	// span, which the merge sums into the migration's cycles.
	Cycles []ShardCycle `json:"cycles,omitempty"`
	// Lost (the coordinator's) lists the shards whose acknowledged writes it did
	// not get, so its integrity check does not cover them.
	Lost []LostShard `json:"lost,omitempty"`
	// Stopped says why a shard's load stopped before the coordinator said so (the
	// coordinator gave up or died); empty when it did not.
	Stopped string `json:"stopped,omitempty"`
}

// ShardCycle is what one shard's operations did in one cutover cycle.
type ShardCycle struct {
	Cycle          int   `json:"cycle"`
	Transactions   int64 `json:"transactions"`
	Failed         int64 `json:"failed"`
	Attempts       int64 `json:"attempts"`
	FailedAttempts int64 `json:"failed_attempts"`
}

// LostShard is a shard missing from a sharded run's results, and why.
type LostShard struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

// Sharding says what a merged result holds. Added type.
type Sharding struct {
	RunID string `json:"run_id"`
	Count int    `json:"count"`
	// Merged are the indexes of the shards merged.
	Merged []int `json:"merged"`
	// Missing are the shards whose results are not in the merge, and why.
	Missing []LostShard `json:"missing,omitempty"`
}
