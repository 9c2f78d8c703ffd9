package result

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// SchemaCapacityV1 is the schema identifier of a capacity sign-off's result.json.
const SchemaCapacityV1 = "rehearse/capacity/v1"

// Step verdicts of a capacity step.
const (
	// StepOK means the step met every SLO and the database kept up.
	StepOK = "ok"
	// StepBreach means an SLO was breached at this rate.
	StepBreach = "breach"
	// StepSaturated means the database fell behind: the achieved rate trailed the
	// target or the schedule lag grew.
	StepSaturated = "saturated"
	// StepInterrupted means the step was cut short; it does not count.
	StepInterrupted = "interrupted"
	// StepFailed means the step could not run (a runtime failure, a failed cutover).
	StepFailed = "failed"
)

// CapacityResult is the whole outcome of a capacity sign-off (`rehearse capacity`):
// the steps of increasing arrival rate, each judged by the scenario's SLOs, and the
// highest rate that met them. It is written as result.json with schema
// SchemaCapacityV1; field names are a stable contract, fields may be added.
type CapacityResult struct {
	Schema      string       `json:"schema"`
	Interrupted bool         `json:"interrupted"`
	Scenario    ScenarioInfo `json:"scenario"`
	Target      TargetInfo   `json:"target"`
	StartedAt   time.Time    `json:"started_at"`
	EndedAt     time.Time    `json:"ended_at"`
	DurationS   float64      `json:"duration_s"`
	Capacity    Capacity     `json:"capacity"`
	Version     string       `json:"rehearse_version,omitempty"`
	Notes       []string     `json:"notes,omitempty"`
}

// Capacity is the answer of a capacity sign-off and the steps that led to it.
type Capacity struct {
	// MaxSustainableRate is the highest step's target rate (actions/s) that met
	// every SLO without saturating the database; 0 when no step did.
	MaxSustainableRate float64 `json:"max_sustainable_rate"`
	// LimitFound is true when the climb ended on a step that breached an SLO or
	// saturated the database, so the limit lies between MaxSustainableRate and that
	// step. False means every step asked for passed: MaxSustainableRate is only a
	// lower bound ("at least"), never the maximum.
	LimitFound bool `json:"limit_found"`
	// KneeRate is the achieved rate at the knee of the p99-latency-versus-throughput
	// curve (its point of maximum curvature); null when fewer than three steps ran,
	// the curve bends too little, or it is flat (P99Rise below FlatFactor).
	KneeRate *float64 `json:"knee_rate"`
	// KneeStep is the index into Steps of the knee, -1 when there is none.
	KneeStep int `json:"knee_step"`
	// P99Rise is how far p99 latency rose across the measured steps (highest p99
	// over lowest); FlatFactor is the rise below which the curve counts as flat and
	// no knee is named.
	P99Rise    float64 `json:"p99_rise"`
	FlatFactor float64 `json:"flat_factor"`
	// PeakRate is today's peak rate the scenario declares (slo.peak_rate or --peak);
	// 0 when unset.
	PeakRate float64 `json:"peak_rate"`
	// Headroom is MaxSustainableRate / PeakRate; 0 when PeakRate is unset.
	Headroom float64 `json:"headroom"`
	// Passed is true when the sustainable rate is at or above the peak (or, without a
	// peak, when some rate was sustainable) and the run was not interrupted.
	Passed bool `json:"passed"`
	// StoppedBecause says why the search ended, in a sentence.
	StoppedBecause string `json:"stopped_because"`
	// WithCutover is true when every step ran the scenario's cutover.
	WithCutover bool `json:"with_cutover"`
	// HoldS is how long each step held its rate; WarmupS is the part at its start
	// left out of the step's measurements.
	HoldS   float64 `json:"hold_s"`
	WarmupS float64 `json:"warmup_s"`
	// LatencyLimits are the scenario's latency SLOs, drawn on the chart.
	LatencyLimits []LatencyLimit `json:"latency_limits"`
	// Steps are the steps in the order they ran.
	Steps []CapacityStep `json:"steps"`
}

// LatencyLimit is one latency SLO of the scenario.
type LatencyLimit struct {
	Op         string  `json:"op"`
	Phase      string  `json:"phase"`
	Percentile float64 `json:"percentile"`
	MaxMs      float64 `json:"max_ms"`
}

// CapacityStep is one rate held for a while and what it measured. Latencies are in
// milliseconds from each operation's intended start, over the step after its warm-up.
type CapacityStep struct {
	// Phase is "ladder" for the increasing rates and "refine" for the bisection
	// between the last good and the first bad rate.
	Phase      string  `json:"phase"`
	TargetRate float64 `json:"target_rate"`
	// OfferedRate is the rate the arrival schedule actually offered in the measured
	// window (a Poisson schedule offers a little more or less than the target).
	OfferedRate float64 `json:"offered_rate"`
	// AchievedRate is the rate operations completed in the measured window.
	AchievedRate float64 `json:"achieved_rate"`
	Sessions     int     `json:"sessions"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	P999Ms       float64 `json:"p999_ms"`
	MaxMs        float64 `json:"max_ms"`
	// Transactions, Errors (failed, not ambiguous) and ErrorRate count the whole
	// step, as the scenario's error-rate SLO does.
	Transactions int64   `json:"transactions"`
	Errors       int64   `json:"errors"`
	ErrorRate    float64 `json:"error_rate"`
	// ScheduleLagP99Ms is how late the load generator started operations (whole step).
	ScheduleLagP99Ms float64 `json:"schedule_lag_p99_ms"`
	// DurationS is how long the step's load ran.
	DurationS float64 `json:"duration_s"`
	// Verdict is ok, breach, saturated, interrupted or failed.
	Verdict string `json:"verdict"`
	// Reasons say why a step is not ok.
	Reasons []string `json:"reasons,omitempty"`
	// SLO is the scenario's SLOs evaluated on this step.
	SLO SLOVerdict `json:"slo"`
	// Cutover is the cutover's outcome in this step (with_cutover only).
	Cutover string `json:"cutover,omitempty"`
	// Dir is the step's own directory (latency.hlog), relative to the output directory.
	Dir string `json:"dir,omitempty"`
}

// OK reports whether the step counts as sustainable.
func (s CapacityStep) OK() bool { return s.Verdict == StepOK }

// EncodeCapacity writes c as indented JSON: the capacity result.json format.
func EncodeCapacity(w io.Writer, c *CapacityResult) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return fmt.Errorf("encode capacity result: %w", err)
	}
	return nil
}

// DecodeCapacity reads one capacity result from r. Errors wrap ErrNotResult when the
// input is not JSON or has no schema, and ErrSchema when its schema is not
// SchemaCapacityV1.
func DecodeCapacity(r io.Reader) (*CapacityResult, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read capacity result: %w", err)
	}
	schema, err := SchemaOf(b)
	if err != nil {
		return nil, err
	}
	if schema != SchemaCapacityV1 {
		return nil, fmt.Errorf("%w: schema is %q but a capacity result is %q", ErrSchema, schema, SchemaCapacityV1)
	}
	var c CapacityResult
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: schema %q but a field does not match it: %v", ErrNotResult, schema, err)
	}
	return &c, nil
}

// ReadCapacityFile reads and decodes a capacity result.json (see DecodeCapacity).
func ReadCapacityFile(path string) (*CapacityResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read capacity result: %w", err)
	}
	c, err := DecodeCapacity(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// SchemaOf returns the "schema" field of a JSON result, so a caller can tell a
// rehearsal's result.json (SchemaV1) from a capacity sign-off's (SchemaCapacityV1)
// before decoding it. Errors wrap ErrNotResult.
func SchemaOf(b []byte) (string, error) {
	var probe struct {
		Schema *string `json:"schema"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return "", fmt.Errorf("%w: the input is not a JSON object with a string \"schema\" (%v)", ErrNotResult, err)
	}
	if probe.Schema == nil {
		return "", fmt.Errorf("%w: JSON without a \"schema\" field", ErrNotResult)
	}
	return *probe.Schema, nil
}
