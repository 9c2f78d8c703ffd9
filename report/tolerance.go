package report

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrTolerance is wrapped by errors parsing a tolerance specification.
var ErrTolerance = errors.New("invalid tolerance")

// Tolerance says how much worse a candidate may be than its base before the
// difference counts as a regression.
type Tolerance struct {
	// LatencyRel is the relative latency increase allowed (0.10 = 10%).
	LatencyRel float64
	// LatencyAbsMs is an absolute floor: a latency increase smaller than this many
	// milliseconds is never a regression, whatever its ratio (1 ms → 2 ms is noise).
	LatencyAbsMs float64
	// ErrorRate is the absolute increase of an error-rate fraction allowed (0.001 =
	// 0.1 percentage points).
	ErrorRate float64
	// RateDrop is the relative drop of achieved/target rate allowed (0.05 = 5%).
	RateDrop float64
	// UnavailabilityMs is the absolute floor for unavailability-window increases;
	// LatencyRel applies above it.
	UnavailabilityMs float64
}

// DefaultTolerance is 10% latency (1 ms floor), +0.1 percentage points of errors,
// a 5% drop of achieved rate and a 100 ms floor on unavailability.
func DefaultTolerance() Tolerance {
	return Tolerance{LatencyRel: 0.10, LatencyAbsMs: 1, ErrorRate: 0.001, RateDrop: 0.05, UnavailabilityMs: 100}
}

// ParseTolerance reads a --tolerance value: comma-separated key=value pairs over
// DefaultTolerance. Keys: latency (relative, "10%" or "0.1"), latency_abs (a
// duration, "1ms"), error_rate (absolute fraction, "0.1%" or "0.001"), rate_drop
// (relative, "5%") and unavailability (a duration, "100ms"). A bare value such as
// "15%" sets latency. Errors wrap ErrTolerance.
func ParseTolerance(s string) (Tolerance, error) {
	t := DefaultTolerance()
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			k, v = "latency", part
		}
		var err error
		switch strings.TrimSpace(k) {
		case "latency":
			t.LatencyRel, err = parseFraction(v)
		case "latency_abs":
			t.LatencyAbsMs, err = parseMs(v)
		case "error_rate":
			t.ErrorRate, err = parseFraction(v)
		case "rate_drop":
			t.RateDrop, err = parseFraction(v)
		case "unavailability":
			t.UnavailabilityMs, err = parseMs(v)
		default:
			return t, fmt.Errorf("%w: unknown key %q (want latency, latency_abs, error_rate, rate_drop or unavailability)", ErrTolerance, k)
		}
		if err != nil {
			return t, fmt.Errorf("%w: %s: %w", ErrTolerance, part, err)
		}
	}
	return t, nil
}

func parseFraction(v string) (float64, error) {
	v = strings.TrimSpace(v)
	div := 1.0
	if strings.HasSuffix(v, "%") {
		v, div = strings.TrimSuffix(v, "%"), 100
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("want a non-negative fraction or percentage, got %q", v)
	}
	return f / div, nil
}

func parseMs(v string) (float64, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < 0 {
		return 0, fmt.Errorf("want a non-negative duration such as 1ms, got %q", v)
	}
	return float64(d.Microseconds()) / 1000, nil
}

// latencyRegressed reports whether latency k is worse than b beyond t: by more than
// the relative tolerance and by more than the absolute floor.
func (t Tolerance) latencyRegressed(b, k float64) bool {
	return k-b > math.Max(t.LatencyAbsMs, b*t.LatencyRel)
}

// unavailabilityRegressed is latencyRegressed for an unavailability window, whose
// absolute floor is its own.
func (t Tolerance) unavailabilityRegressed(b, k float64) bool {
	return k-b > math.Max(t.UnavailabilityMs, b*t.LatencyRel)
}
