// Package capacity runs a capacity sign-off: the scenario's workload at increasing
// arrival rates, each step one engine.Step judged by the scenario's SLOs, until a
// step breaches an SLO or saturates the database. It finds the highest sustainable
// rate, the knee of the latency curve, and the headroom over the declared peak, and
// says whether it found the limit or only a lower bound.
package capacity

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// ErrBelowPeak means a capacity sign-off found a sustainable rate below the declared
// peak, or no sustainable rate at all.
var ErrBelowPeak = errors.New("sustainable rate below the peak")

// Search defaults.
const (
	// DefaultHold is how long each step holds its rate.
	DefaultHold = 15 * time.Second
	// DefaultWarmup is the start of each step left out of its measurements.
	DefaultWarmup = 2 * time.Second
	// DefaultFactor is the default step: each rate is 1.5× the previous.
	DefaultFactor = 1.5
	// DefaultMaxLagMs is the schedule lag p99 above which a step counts as saturated:
	// the load generator could not start operations on time because every worker was
	// waiting for the database. On a shared 2-core machine, CPU contention alone
	// makes a few tens of milliseconds, hence not lower.
	DefaultMaxLagMs = 100.0
	// DefaultMinAchieved is the achieved/target ratio below which a step counts as
	// saturated (loosened for small samples, see saturation.floor).
	DefaultMinAchieved = 0.97
	// MaxSteps bounds the ladder, and SafetyRate the climb without a highest rate:
	// a search that reaches either without a breach or saturation reports that it
	// did not find the limit.
	MaxSteps   = 200
	SafetyRate = 1_000_000.0
	// FlatFactor is how much p99 latency must rise across the steps for a knee to be
	// named: below it the curve is flat.
	FlatFactor = 2.0
)

// RateStep is how a capacity search climbs from one rate to the next: by adding Add
// actions/s, or by multiplying by Factor (exactly one is set).
type RateStep struct {
	Add    float64
	Factor float64
}

// ParseRateStep parses a step: an increment ("250") or a factor ("x1.5"). Its errors
// are scenarios.FieldErrors on capacity.step.
func ParseRateStep(s string) (RateStep, error) {
	t := strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(strings.ToLower(t), "x"); ok {
		f, err := strconv.ParseFloat(rest, 64)
		if err != nil || f <= 1 || math.IsInf(f, 0) {
			return RateStep{}, fieldErrors(fieldErr("capacity.step", "a factor must be a number above 1, e.g. x1.5 (got %q)", s))
		}
		return RateStep{Factor: f}, nil
	}
	a, err := strconv.ParseFloat(t, 64)
	if err != nil || a <= 0 || math.IsInf(a, 0) {
		return RateStep{}, fieldErrors(fieldErr("capacity.step", "write an increment in actions/s (250) or a factor (x1.5) (got %q)", s))
	}
	return RateStep{Add: a}, nil
}

// String formats the step as ParseRateStep reads it.
func (s RateStep) String() string {
	if s.Factor > 0 {
		return "x" + strconv.FormatFloat(s.Factor, 'f', -1, 64)
	}
	return strconv.FormatFloat(s.Add, 'f', -1, 64)
}

// Config is the rate search of a capacity sign-off. Zero fields take their defaults
// (see WithDefaults).
type Config struct {
	// From is the first rate (actions/s); default 25% of the scenario's rate, or 100.
	From float64
	// To is the highest rate tried. 0 (the default) climbs until a step breaches an
	// SLO or saturates, bounded by MaxSteps and SafetyRate.
	To float64
	// Step climbs from one rate to the next; default ×1.5.
	Step RateStep
	// Hold is how long each step holds its rate; default 15s.
	Hold time.Duration
	// Warmup is the start of each step left out of its measurements; default 2s.
	Warmup time.Duration
	// Refine bisects this many more times between the last good and the first bad
	// rate after the climb stops; default 0.
	Refine int
	// WithCutover runs the scenario's cutover (wet) in every step, on a fresh
	// cluster per step.
	WithCutover bool
	// Peak overrides the scenario's slo.peak_rate.
	Peak float64
	// MaxLagMs and MinAchieved override the saturation thresholds.
	MaxLagMs    float64
	MinAchieved float64
}

// WithDefaults fills the zero fields for sc and returns every problem at once, as
// scenarios.FieldErrors on capacity.* fields (nil when there is none).
func (c Config) WithDefaults(sc *scenarios.Scenario) (Config, []error) {
	var problems []error
	add := func(field, format string, args ...any) { problems = append(problems, fieldErr(field, format, args...)) }
	base := sc.EffectiveRate()
	if c.Peak == 0 {
		c.Peak = sc.SLO.PeakRate
	}
	if c.From == 0 {
		c.From = 100
		if base > 0 {
			c.From = roundRate(base / 4)
		}
	}
	if c.Step == (RateStep{}) {
		c.Step = RateStep{Factor: DefaultFactor}
	}
	if c.Hold == 0 {
		c.Hold = DefaultHold
	}
	if c.Warmup == 0 {
		c.Warmup = DefaultWarmup
	}
	if c.MaxLagMs == 0 {
		c.MaxLagMs = DefaultMaxLagMs
	}
	if c.MinAchieved == 0 {
		c.MinAchieved = DefaultMinAchieved
	}
	switch {
	case c.From <= 0 || math.IsNaN(c.From) || math.IsInf(c.From, 0):
		add("capacity.from", "must be a positive rate in actions/s, e.g. 100 (got %v)", c.From)
	case c.To != 0 && (c.To < c.From || math.IsInf(c.To, 0) || math.IsNaN(c.To)):
		add("capacity.to", "must be at least capacity.from %v (got %v)", c.From, c.To)
	}
	if (c.Step.Add > 0) == (c.Step.Factor > 0) || c.Step.Add < 0 || (c.Step.Factor != 0 && c.Step.Factor <= 1) {
		add("capacity.step", "set an increment (250) or a factor above 1 (x1.5) (got %s)", c.Step)
	}
	if c.Peak < 0 {
		add("capacity.peak", "must be a positive rate in actions/s (got %v)", c.Peak)
	}
	if c.Hold%time.Second != 0 || c.Hold < 3*time.Second {
		add("capacity.hold", "must be whole seconds, at least 3s (got %v)", c.Hold)
	}
	if c.Warmup < 0 || c.Warmup%time.Second != 0 || c.Hold-c.Warmup < 2*time.Second {
		add("capacity.warmup", "must be whole seconds and leave at least 2s of capacity.hold (%v) measured (got %v)", c.Hold, c.Warmup)
	}
	if c.Refine < 0 || c.Refine > 10 {
		add("capacity.refine", "must be between 0 and 10 (got %d)", c.Refine)
	}
	if c.MaxLagMs < 0 {
		add("capacity.max_lag", "must be a positive duration (got %v ms)", c.MaxLagMs)
	}
	if c.MinAchieved < 0 || c.MinAchieved > 1 {
		add("capacity.min_achieved", "must be between 0 and 1 (got %v)", c.MinAchieved)
	}
	if c.WithCutover {
		if !sc.Cutover.Enabled {
			add("capacity.with_cutover", "runs the scenario's cutover in every step, but cutover.enabled is false; set cutover.enabled: true")
		}
		if sc.Target.DSN != "" || sc.Target.Kind == scenarios.TargetAurora {
			add("capacity.with_cutover", "needs clusters rehearse starts, a fresh one per step (target.kind local or container); target %s cannot be started afresh", orDSN(sc))
		}
		if sc.Cutover.Warmup.D() >= c.Hold {
			add("capacity.hold", "must be longer than cutover.warmup %v (got %v)", sc.Cutover.Warmup, c.Hold)
		}
	}
	if len(problems) == 0 && c.To > 0 && len(c.Rates()) > MaxSteps {
		add("capacity.to", "with capacity.from %v and capacity.step %s makes more than %d steps: use a larger step (got %v)", c.From, c.Step, MaxSteps, c.To)
	}
	return c, problems
}

func orDSN(sc *scenarios.Scenario) string {
	if sc.Target.DSN != "" {
		return "target.dsn"
	}
	return string(sc.Target.Kind)
}

// Bounded reports whether the ladder stops at a highest rate asked for (To) rather
// than at the safety bound.
func (c Config) Bounded() bool { return c.To > 0 }

// Rates is the ladder: From, then each step up, while at most To (or, without To,
// SafetyRate), and at most MaxSteps+1 rates (one more than allowed, so that a ladder
// too long can be told apart). To itself is the last rung when the steps pass
// between their last rate and it: the highest rate asked for is always tried.
func (c Config) Rates() []float64 {
	top := c.To
	if top <= 0 {
		top = SafetyRate
	}
	var out []float64
	for r := c.From; r <= top*(1+1e-9) && len(out) <= MaxSteps; {
		out = append(out, roundRate(r))
		switch {
		case c.Step.Factor > 1:
			r *= c.Step.Factor
		case c.Step.Add > 0:
			r += c.Step.Add
		default:
			return out
		}
	}
	if !c.Bounded() && len(out) > MaxSteps {
		out = out[:MaxSteps]
	}
	if c.Bounded() && len(out) > 0 && len(out) <= MaxSteps && out[len(out)-1] < roundRate(c.To) {
		out = append(out, roundRate(c.To))
	}
	return out
}

// roundRate keeps rates readable: whole actions/s from 20 up, else one decimal.
func roundRate(r float64) float64 {
	if r >= 20 {
		return math.Round(r)
	}
	return math.Round(r*10) / 10
}

// FmtRate formats a rate for a sentence: 1709, 12.5.
func FmtRate(r float64) string {
	if r >= 20 || r == math.Trunc(r) {
		return strconv.FormatFloat(math.Round(r), 'f', 0, 64)
	}
	return strconv.FormatFloat(r, 'f', 1, 64)
}

func fieldErr(field, format string, args ...any) scenarios.FieldError {
	return scenarios.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// fieldErrors wraps problems as one *scenarios.Errors (which matches
// scenarios.ErrInvalid).
func fieldErrors(errs ...scenarios.FieldError) error { return &scenarios.Errors{List: errs} }

// AsErrors turns WithDefaults' problems into one error (nil when there is none).
func AsErrors(problems []error) error {
	if len(problems) == 0 {
		return nil
	}
	list := make([]scenarios.FieldError, 0, len(problems))
	for _, p := range problems {
		var fe scenarios.FieldError
		if errors.As(p, &fe) {
			list = append(list, fe)
		} else {
			list = append(list, scenarios.FieldError{Msg: p.Error()})
		}
	}
	return &scenarios.Errors{List: list}
}
