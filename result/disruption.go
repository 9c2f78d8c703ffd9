package result

// The kinds of a disruption window (PhaseWindow.Kind for a "during" window).
const (
	// DisruptionSwitchover is a cutover's switchover onto the new writer (and, with
	// cycles, every odd cycle's switchover).
	DisruptionSwitchover = "switchover"
	// DisruptionFailback is a switchover back onto the old writer: an even cycle, or
	// the plan's rollback step.
	DisruptionFailback = "failback"
	// DisruptionFault is an injected fault, from its start to its end.
	DisruptionFault = "fault"
	// DisruptionUndo is the undo of a failed or aborted plan.
	DisruptionUndo = "undo"
)

// PhaseWindow is one stretch of the run's timeline that its phases follow: the
// stable stretch before the first disruption (phase "before"), each disruption (a
// switchover, a failback, a fault: phase "during", labelled with what it was) and
// the stable stretches after them (phase "after"). Disruptions may overlap (a fault
// during a switchover); an operation counts in every window its intended start
// falls in. Per-phase SLOs apply to each window of the phase.
type PhaseWindow struct {
	Phase string `json:"phase"`
	// Label says what the window was ("switchover (cycle 1)", "fault: blackhole
	// writer", "after failback (cycle 2)").
	Label string `json:"label"`
	// Kind is the disruption's kind (DisruptionSwitchover, ...) for a during window.
	Kind string `json:"kind,omitempty"`
	// Cycle is the cutover cycle the window belongs to (0: none).
	Cycle  int     `json:"cycle,omitempty"`
	StartS float64 `json:"start_s"`
	EndS   float64 `json:"end_s"`
	// Count, Errors and FailedAttempts count the operations whose intended start fell
	// in the window.
	Count          int64   `json:"count"`
	Errors         int64   `json:"errors"`
	FailedAttempts int64   `json:"failed_attempts"`
	LatencyMs      Latency `json:"latency_ms"`
	// ScheduleLagP99Ms is the p99 of how late the window's operations started.
	ScheduleLagP99Ms float64 `json:"schedule_lag_p99_ms"`
	// Operations is the same per operation.
	Operations map[string]Phase `json:"operations,omitempty"`
	// WriteUnavailableMs and ReadUnavailableMs are the longest unavailability windows
	// that opened within the window.
	WriteUnavailableMs float64 `json:"write_unavailable_ms"`
	ReadUnavailableMs  float64 `json:"read_unavailable_ms"`
	// RecoveryS is, for a disruption, how long after its end users kept feeling it:
	// until the per-second p99 latency and schedule lag were back within 2× the
	// before window's p99 latency and schedule lag p99, for 3 s. Recovered is false
	// when the run ended first.
	RecoveryS *float64 `json:"recovery_s,omitempty"`
	Recovered bool     `json:"recovered,omitempty"`
}

// Cycle is one switchover of a cutover that runs several (cutover.cycles), in
// alternating direction.
type Cycle struct {
	Cycle int `json:"cycle"`
	// Direction is DisruptionSwitchover (onto the new node) or DisruptionFailback
	// (back onto the original writer).
	Direction string `json:"direction"`
	From      string `json:"from"`
	To        string `json:"to"`
	// Outcome is completed, failed, aborted or skipped (the plan stopped before it).
	Outcome string `json:"outcome"`
	// StartS and EndS span the cycle's steps.
	StartS float64 `json:"start_s"`
	EndS   float64 `json:"end_s"`
	Steps  []Step  `json:"steps"`
	// WriteUnavailableMs and ReadUnavailableMs are the longest unavailability windows
	// that opened during the cycle's disruption (its first mutating step to the end of
	// its redirect).
	WriteUnavailableMs float64 `json:"write_unavailable_ms"`
	ReadUnavailableMs  float64 `json:"read_unavailable_ms"`
	// Transactions, Failed, Attempts and FailedAttempts count the operations intended
	// from the cycle's start (the run's start for the first) to the next cycle's start
	// (the run's end for the last), so the cycles add up to the run's totals.
	Transactions   int64 `json:"transactions"`
	Failed         int64 `json:"failed"`
	Attempts       int64 `json:"attempts"`
	FailedAttempts int64 `json:"failed_attempts"`
	// RecoveryS is how long after the cycle's redirect users kept feeling it.
	RecoveryS *float64 `json:"recovery_s,omitempty"`
	Recovered bool     `json:"recovered,omitempty"`
	// Stall breaks the switchover's write stall down by what the engine was doing.
	Stall *Stall `json:"stall,omitempty"`
}

// Stall is a switchover's write stall, part by part, in milliseconds, as the
// provider measured them (absent parts are 0: a provider that has no such part).
type Stall struct {
	// PauseMs holds the endpoints (PgBouncer PAUSE).
	PauseMs float64 `json:"pause_ms"`
	// ShutdownMs stops the old writer.
	ShutdownMs float64 `json:"shutdown_ms"`
	// ReplayWaitMs waits until the new writer replayed the old one's final LSN.
	ReplayWaitMs float64 `json:"replay_wait_ms"`
	// PromoteMs promotes the new writer.
	PromoteMs float64 `json:"promote_ms"`
	// RepointMs points the endpoints at the new writer.
	RepointMs float64 `json:"repoint_ms"`
	// ResumeMs releases the held endpoints and waits until the writer endpoint
	// reaches the new writer.
	ResumeMs float64 `json:"resume_ms"`
	// TotalMs is the switchover's stall as the provider saw it plus the redirect.
	TotalMs float64 `json:"total_ms"`
}

// Spread is a distribution across cycles.
type Spread struct {
	Min float64 `json:"min"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	Max float64 `json:"max"`
}

// CycleSpread is the distribution of the cycles' unavailability, recovery and stall.
type CycleSpread struct {
	Count              int    `json:"count"`
	WriteUnavailableMs Spread `json:"write_unavailable_ms"`
	ReadUnavailableMs  Spread `json:"read_unavailable_ms"`
	// RecoveryS spreads the cycles whose recovery was measured.
	RecoveryS *Spread `json:"recovery_s,omitempty"`
	// StallMs spreads the provider's stall (Stall.TotalMs) where it reported one.
	StallMs *Spread `json:"stall_ms,omitempty"`
}

// Guardrail is one cutover.abort_if condition and what it saw.
type Guardrail struct {
	// Condition is the condition as written ("p99 of transfer over 5s > 2000 ms").
	Condition string  `json:"condition"`
	Metric    string  `json:"metric"`
	Op        string  `json:"op,omitempty"`
	WindowS   float64 `json:"window_s,omitempty"`
	Max       float64 `json:"max"`
	Unit      string  `json:"unit"`
	// Worst is the highest value the condition saw while the cutover ran.
	Worst float64 `json:"worst"`
	// Fired is true when the condition was breached and aborted the cutover;
	// WouldFire when it was breached in a dry run (which never aborts). AtS and Value
	// are the first breach.
	Fired     bool     `json:"fired,omitempty"`
	WouldFire bool     `json:"would_fire,omitempty"`
	AtS       *float64 `json:"at_s,omitempty"`
	Value     float64  `json:"value,omitempty"`
}

// Abort is the guardrail breach that aborted a cutover.
type Abort struct {
	Condition string  `json:"condition"`
	AtS       float64 `json:"at_s"`
	Value     float64 `json:"value"`
	Unit      string  `json:"unit"`
	// During is the step that was running, AfterSwitchover whether the writer had
	// already changed (the abort then failed back onto the original writer).
	During          string `json:"during"`
	AfterSwitchover bool   `json:"after_switchover"`
}

// Fault is one injected fault and what it did.
type Fault struct {
	// Kind is freeze, blackhole, latency, reset or crash.
	Kind string `json:"kind"`
	// Node is the node as the scenario named it (writer, reader, replica, a name);
	// NodeID the node it resolved to when it struck.
	Node   string `json:"node"`
	NodeID string `json:"node_id,omitempty"`
	// Cycle is the cutover cycle it struck in (0: not tied to one).
	Cycle int `json:"cycle,omitempty"`
	// At is when it was to strike, as written ("20s", "switchover").
	At     string  `json:"at"`
	StartS float64 `json:"start_s"`
	EndS   float64 `json:"end_s"`
	// AddMs and JitterMs are a latency fault's added delay.
	AddMs    float64 `json:"add_ms,omitempty"`
	JitterMs float64 `json:"jitter_ms,omitempty"`
	// Status is ok, failed (it could not be injected or undone: Error says why) or
	// skipped (its moment never came).
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// Detail holds what the injector did (signals, API request ids).
	Detail map[string]any `json:"detail,omitempty"`
	// Errors counts the operations that failed during the fault, by class.
	Errors map[string]int64 `json:"errors,omitempty"`
	// RecoveryS is how long after the fault's end users kept feeling it.
	RecoveryS *float64 `json:"recovery_s,omitempty"`
	Recovered bool     `json:"recovered,omitempty"`
}
