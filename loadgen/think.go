package loadgen

import (
	"math/rand/v2"
	"time"
)

// Think draws a user's pause between actions.
type Think struct {
	// Dist is "exponential", "constant" or "uniform" (0 to 2 × Mean).
	Dist string
	// Mean is the mean pause.
	Mean time.Duration
}

// Sample draws one pause.
func (t Think) Sample(r *rand.Rand) time.Duration {
	m := float64(t.Mean)
	switch t.Dist {
	case "constant":
		return t.Mean
	case "uniform":
		return time.Duration(r.Float64() * 2 * m)
	default:
		return time.Duration(r.ExpFloat64() * m)
	}
}
