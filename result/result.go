// Package result is the schema of what rehearse writes: a run's result.json
// (rehearse/result/v1), a capacity sign-off's (rehearse/capacity/v1), their JSON
// encoding and decoding, the latency.hlog interval log, and atomic file writes. It
// imports no other package of rehearse, so any tool can read results with it alone.
package result

import "time"

// SchemaV1 is the schema identifier written into every result.json.
const SchemaV1 = "rehearse/result/v1"

// Result is the whole outcome of one run: the result.json schema. Field names and
// meanings are a stable contract (ARCHITECTURE.md); fields may be added.
type Result struct {
	Schema      string       `json:"schema"`
	Mode        string       `json:"mode"`
	Interrupted bool         `json:"interrupted"`
	Scenario    ScenarioInfo `json:"scenario"`
	Target      TargetInfo   `json:"target"`
	StartedAt   time.Time    `json:"started_at"`
	EndedAt     time.Time    `json:"ended_at"`
	DurationS   float64      `json:"duration_s"`
	Load        LoadInfo     `json:"load"`
	Totals      Totals       `json:"totals"`
	Operations  []Operation  `json:"operations"`
	Errors      []ErrorClass `json:"errors"`
	Migration   *Migration   `json:"migration,omitempty"`
	// Faults lists the injected faults (scenario faults:).
	Faults []Fault `json:"faults,omitempty"`
	// PhaseWindows is the timeline as its phases follow the disruptions (absent
	// without a cutover or faults).
	PhaseWindows []PhaseWindow `json:"phase_windows,omitempty"`
	Availability Availability  `json:"availability"`
	Integrity    Integrity     `json:"integrity"`
	Client       *Client       `json:"client,omitempty"`
	Database     *Database     `json:"database,omitempty"`
	SLO          SLOVerdict    `json:"slo"`
	Timeline     []TimelineRow `json:"timeline"`
	Version      string        `json:"rehearse_version,omitempty"`
	Notes        []string      `json:"notes,omitempty"`
	// Shard identifies one shard's result of a run spread over several processes
	// (rehearse run --shard); nil for a run of one process. Added field.
	Shard *ShardInfo `json:"shard,omitempty"`
	// Shards is how many shard results a merged result holds (rehearse report
	// merge); 0 for any other result. Added field.
	Shards int `json:"shards,omitempty"`
	// Incomplete marks a merged result that lacks some shard's results (a shard
	// died, or its directory was not given); Sharding says which. Added field.
	Incomplete bool `json:"incomplete,omitempty"`
	// Sharding says which run and shards a merged result holds. Added field.
	Sharding *Sharding `json:"sharding,omitempty"`
}

// Database is the database's own numbers on the run's timeline: a series per node
// and metric, sampled during the run, and the events the database or its control
// plane reported. Added field.
type Database struct {
	Series []Series  `json:"series"`
	Events []DBEvent `json:"events"`
	// Missing says which series could not be collected and why (a permission the
	// credentials lack, a metric the target does not offer).
	Missing []string `json:"missing,omitempty"`
	// Cost is the estimated cost of the rehearsed load (telemetry.price), if asked.
	Cost *Cost `json:"cost,omitempty"`
}

// Series is one metric of one node over the run: points of [t_s, value].
type Series struct {
	Node   string       `json:"node"`
	Metric string       `json:"metric"`
	Unit   string       `json:"unit"`
	Points [][2]float64 `json:"points"`
	// Emulated marks a series the RDS API emulator derived rather than measured
	// (e.g. ACU estimated from CPU).
	Emulated bool `json:"emulated,omitempty"`
}

// DBEvent is something a node or the control plane reported at a moment of the run
// (failover started, instance created).
type DBEvent struct {
	TS    float64 `json:"t_s"`
	Node  string  `json:"node"`
	Event string  `json:"event"`
}

// Cost is an estimate of what the rehearsed load costs per hour on Serverless v2
// against the provisioned instance it replaces, from the run's ACU series.
type Cost struct {
	ACUHour            float64 `json:"acu_hour"`
	ProvisionedHour    float64 `json:"provisioned_hour"`
	MeanACU            float64 `json:"mean_acu"`
	ServerlessPerHour  float64 `json:"serverless_per_hour"`
	ProvisionedPerHour float64 `json:"provisioned_per_hour"`
	Note               string  `json:"note"`
}

// Client is the client behaviour a run used: its pools, DNS caching, sockets and
// retries (the scenario's client section, resolved from its preset).
type Client struct {
	Preset           string      `json:"preset"`
	AppInstances     int         `json:"app_instances"`
	PoolSize         int         `json:"pool_size"`
	ConnectTimeoutMs float64     `json:"connect_timeout_ms"`
	MaxLifetimeS     float64     `json:"max_lifetime_s"`
	ValidateOnBorrow bool        `json:"validate_on_borrow"`
	DNSCacheTTL      string      `json:"dns_cache_ttl"`
	TCPUserTimeoutMs float64     `json:"tcp_user_timeout_ms"`
	Failover         string      `json:"failover"`
	Retry            ClientRetry `json:"retry"`
}

// ClientRetry is a client's retry policy.
type ClientRetry struct {
	MaxAttempts  int      `json:"max_attempts"`
	BackoffMs    float64  `json:"backoff_ms"`
	MaxBackoffMs float64  `json:"max_backoff_ms"`
	On           []string `json:"on"`
}

// ScenarioInfo identifies the scenario a run used.
type ScenarioInfo struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// TargetInfo describes the database the run went to.
type TargetInfo struct {
	Kind         string            `json:"kind"`
	EndpointMode string            `json:"endpoint_mode"`
	Versions     map[string]string `json:"versions,omitempty"`
	// Workload is the workload the run used (banking, tpcb, ...).
	Workload string `json:"workload,omitempty"`
}

// LoadInfo is the load asked for and achieved.
type LoadInfo struct {
	Model            string  `json:"model"`
	Sessions         int     `json:"sessions"`
	TargetRate       float64 `json:"target_rate"`
	AchievedRate     float64 `json:"achieved_rate"`
	ScheduleLagP99Ms float64 `json:"schedule_lag_p99_ms"`
	ScheduleLagMaxMs float64 `json:"schedule_lag_max_ms"`
	PoolSize         int     `json:"pool_size"`
	Workers          int     `json:"workers"`
	Arrivals         int64   `json:"arrivals"`
}

// Totals counts transactions (operations) by outcome. Failed is what users saw: the
// operations that still failed after the client's retries. FailedAttempts counts
// every failed attempt, as the database saw them (errors[] breaks them down by
// class); Attempts counts every attempt, Retries the attempts after the first.
type Totals struct {
	Transactions   int64 `json:"transactions"`
	Succeeded      int64 `json:"succeeded"`
	Failed         int64 `json:"failed"`
	Ambiguous      int64 `json:"ambiguous"`
	Retries        int64 `json:"retries"`
	Attempts       int64 `json:"attempts"`
	FailedAttempts int64 `json:"failed_attempts"`
}

// Latency is a latency summary in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// Service is a service-time summary in milliseconds.
type Service struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Phase names, in timeline order.
const (
	PhaseBefore = "before"
	PhaseDuring = "during"
	PhaseAfter  = "after"
)

// Operation summarises one operation over the run and per phase. Errors counts the
// operations that finally failed (what users saw); latency runs from the intended
// start to the final outcome, across every attempt and backoff.
type Operation struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`
	Count    int64    `json:"count"`
	Errors   int64    `json:"errors"`
	Attempts Attempts `json:"attempts"`
	// CapturedErrors is, for a replay, how many of this statement's executions the
	// capture itself recorded failing: errors the replay repeats, not new ones.
	CapturedErrors int64            `json:"captured_errors,omitempty"`
	LatencyMs      Latency          `json:"latency_ms"`
	ServiceMs      Service          `json:"service_ms"`
	Phases         map[string]Phase `json:"phases"`
}

// Attempts is how an operation's retries went: how many operations needed more than
// one attempt, the most attempts any needed, and the failed attempts in all.
type Attempts struct {
	Retried int64 `json:"retried"`
	Max     int   `json:"max"`
	Failed  int64 `json:"failed"`
}

// Phase summarises one operation in one phase.
type Phase struct {
	Count          int64   `json:"count"`
	Errors         int64   `json:"errors"`
	FailedAttempts int64   `json:"failed_attempts"`
	LatencyMs      Latency `json:"latency_ms"`
}

// ErrorClass counts the failed attempts of one class and SQLSTATE: every attempt,
// including those a retry later made good.
type ErrorClass struct {
	Class    string           `json:"class"`
	SQLState string           `json:"sqlstate"`
	Count    int64            `json:"count"`
	FirstS   float64          `json:"first_s"`
	LastS    float64          `json:"last_s"`
	Example  string           `json:"example"`
	Phases   map[string]int64 `json:"phases,omitempty"`
}

// Migration is the cutover's record.
type Migration struct {
	Plan           []string       `json:"plan"`
	Outcome        string         `json:"outcome"`
	Steps          []Step         `json:"steps"`
	WriterBefore   string         `json:"writer_before"`
	WriterAfter    string         `json:"writer_after"`
	LagAtPromotion LagAtPromotion `json:"lag_at_promotion"`
	// RecoveryS is how long after the redirect users kept feeling the cutover: until
	// the per-second p99 latency and schedule lag were back within 2× their values
	// before it, for 3 s. Recovered is false when the run ended first (RecoveryS is
	// then until the run's end). Added fields.
	RecoveryS *float64 `json:"recovery_s,omitempty"`
	Recovered bool     `json:"recovered,omitempty"`
	// Strategy is the cutover strategy: in_cluster or blue_green (absent in results
	// written before strategies existed, which were in_cluster).
	Strategy string `json:"strategy,omitempty"`
	// Cycles lists the switchovers of a cutover that ran several (cutover.cycles).
	Cycles []Cycle `json:"cycles,omitempty"`
	// Guardrails lists the cutover.abort_if conditions and what they saw; Abort is
	// the breach that aborted the cutover (outcome "aborted").
	Guardrails []Guardrail `json:"guardrails,omitempty"`
	Abort      *Abort      `json:"abort,omitempty"`
}

// Step is one cutover step's record.
type Step struct {
	Name   string         `json:"name"`
	Status string         `json:"status"`
	StartS float64        `json:"start_s"`
	EndS   float64        `json:"end_s"`
	Detail map[string]any `json:"detail,omitempty"`
	// Cycle is the cutover cycle the step belongs to (0: the plan's own steps before
	// and after the cycles, or a plan without cycles).
	Cycle int `json:"cycle,omitempty"`
}

// LagAtPromotion is the replication lag when the replica was promoted.
type LagAtPromotion struct {
	Bytes int64   `json:"bytes"`
	Ms    float64 `json:"ms"`
}

// Availability holds the unavailability windows seen by the load.
type Availability struct {
	WriteUnavailableMaxMs float64                 `json:"write_unavailable_max_ms"`
	ReadUnavailableMaxMs  float64                 `json:"read_unavailable_max_ms"`
	PerPhase              map[string]PhaseWindows `json:"per_phase,omitempty"`
	Windows               []Window                `json:"windows"`
	// Cycles is the spread across a cutover's cycles (cutover.cycles ≥ 2).
	Cycles *CycleSpread `json:"cycles,omitempty"`
}

// PhaseWindows is the longest write and read window within one phase.
type PhaseWindows struct {
	WriteMaxMs float64 `json:"write_max_ms"`
	ReadMaxMs  float64 `json:"read_max_ms"`
}

// Window is a span in which operations of a kind were attempted and none succeeded.
type Window struct {
	Kind     string  `json:"kind"`
	StartS   float64 `json:"start_s"`
	EndS     float64 `json:"end_s"`
	Ms       float64 `json:"ms"`
	Attempts int64   `json:"attempts"`
	Phase    string  `json:"phase"`
}

// Integrity is the post-run data check, in the style of Jepsen's bank test.
// BalanceConserved is the workload's own conservation check: banking's money, TPC-B's
// sums, a script workload's invariants (all of them held).
type Integrity struct {
	Checked                bool     `json:"checked"`
	BalanceConserved       bool     `json:"balance_conserved"`
	LostAcknowledgedWrites int64    `json:"lost_acknowledged_writes"`
	DuplicateWrites        int64    `json:"duplicate_writes"`
	Ambiguous              int64    `json:"ambiguous"`
	AmbiguousCommitted     int64    `json:"ambiguous_committed"`
	AcknowledgedWrites     int64    `json:"acknowledged_writes"`
	Details                []string `json:"details,omitempty"`
	// Invariants are a workload's own checks (a script workload's invariants),
	// each evaluated before the load and after it. Added field.
	Invariants []Invariant `json:"invariants,omitempty"`
	// LostWriteCheck is "none" when the workload cannot tell its acknowledged writes
	// apart (a replay, a script workload without `acknowledged`): lost writes were
	// not and could not be counted. Empty when they were. Added field.
	LostWriteCheck string `json:"lost_write_check,omitempty"`
}

// LostWriteCheckNone marks a workload that has no lost-write check.
const LostWriteCheckNone = "none"

// Invariant is one of a workload's own integrity checks: a query returning one
// value, expected unchanged across the run or equal to a number.
type Invariant struct {
	Name string `json:"name"`
	// Expect is "unchanged" or the expected value.
	Expect string `json:"expect"`
	// Before and After are the query's values before the load and after it, as text
	// ("NULL" for a null value).
	Before string `json:"before"`
	After  string `json:"after"`
	Passed bool   `json:"passed"`
	// Detail says why a check failed when the values alone do not.
	Detail string `json:"detail,omitempty"`
}

// SLOVerdict is the SLO evaluation.
type SLOVerdict struct {
	Passed bool       `json:"passed"`
	Checks []SLOCheck `json:"checks"`
}

// Units used in SLOCheck.Unit.
const (
	UnitMs       = "ms"
	UnitFraction = "fraction"
	UnitCount    = "count"
	UnitRatio    = "ratio"
	UnitSeconds  = "s"
)

// SLOCheck is one SLO limit and the value measured against it.
type SLOCheck struct {
	Name   string  `json:"name"`
	Limit  float64 `json:"limit"`
	Value  float64 `json:"value"`
	Passed bool    `json:"passed"`
	Unit   string  `json:"unit,omitempty"`
	// Reason explains a check that could not be measured (an operation that did not
	// run, integrity not checked, a phase that did not occur). Added field.
	Reason string `json:"reason,omitempty"`
	// Op, Phase and Percentile say what a latency check measured, so checks can be
	// grouped (every operation above a limit in one phase). Added fields.
	Op         string  `json:"op,omitempty"`
	Phase      string  `json:"phase,omitempty"`
	Percentile float64 `json:"percentile,omitempty"`
}

// TimelineRow is one second of the run. Errors counts the operations that finally
// failed in it; FailedAttempts and ErrorsByClass every failed attempt.
type TimelineRow struct {
	TS             float64 `json:"t_s"`
	Ops            int64   `json:"ops"`
	Errors         int64   `json:"errors"`
	FailedAttempts int64   `json:"failed_attempts"`
	P50Ms          float64 `json:"p50_ms"`
	P99Ms          float64 `json:"p99_ms"`
	// LagP99Ms is the schedule lag p99 of the operations that finished in this second.
	// Added field.
	LagP99Ms      float64          `json:"lag_p99_ms,omitempty"`
	MaxMs         float64          `json:"max_ms"`
	PerOp         map[string]int64 `json:"per_op,omitempty"`
	ErrorsByClass map[string]int64 `json:"errors_by_class,omitempty"`
}
