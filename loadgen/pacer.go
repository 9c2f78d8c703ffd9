// Package loadgen generates open- and closed-loop load from simulated user sessions and
// records what every operation experienced. It knows nothing of migrations.
package loadgen

import (
	"math"
	"math/rand/v2"
	"time"
)

// Pacer decides when arrivals are due. The schedule never waits for the database
// (open loop): Next depends only on the previous due time, so a stalled database makes
// arrivals late, and their latency counts from when they were due.
type Pacer interface {
	// Next returns the intended start of the arrival after the one due at prev
	// (prev < 0 for the first arrival), or ok=false when the schedule has ended.
	Next(prev time.Duration) (due time.Duration, ok bool)
	// Rate is the target arrival rate, in arrivals per second, at elapsed.
	Rate(elapsed time.Duration) float64
}

// Stage is one leg of a rate profile: the rate moves linearly to Rate over Duration.
type Stage struct {
	Duration time.Duration
	Rate     float64
}

// Profile is a piecewise-linear target rate, over a bounded duration or (duration 0)
// without end. A profile with no stages holds Start for the whole duration; after the
// last stage the last rate holds.
type Profile struct {
	start    float64
	stages   []Stage
	duration time.Duration
	// cum[i] is the number of arrivals expected before stage i begins.
	cum []float64
	// begin[i] is the offset (seconds) at which stage i begins.
	begin []float64
}

// NewProfile returns a rate profile starting at rate start (arrivals/s) that follows
// stages and ends at duration (0: never; the last rate holds).
func NewProfile(start float64, stages []Stage, duration time.Duration) *Profile {
	p := &Profile{start: start, stages: stages, duration: duration}
	var c, t float64
	from := start
	for _, s := range stages {
		p.cum = append(p.cum, c)
		p.begin = append(p.begin, t)
		d := s.Duration.Seconds()
		c += (from + s.Rate) / 2 * d
		t += d
		from = s.Rate
	}
	p.cum = append(p.cum, c)
	p.begin = append(p.begin, t)
	return p
}

// Duration is the profile's length.
func (p *Profile) Duration() time.Duration { return p.duration }

// Rate returns the target rate at elapsed.
func (p *Profile) Rate(elapsed time.Duration) float64 {
	t := elapsed.Seconds()
	from := p.start
	for i, s := range p.stages {
		d := s.Duration.Seconds()
		if t < p.begin[i]+d {
			if d == 0 {
				return s.Rate
			}
			return from + (s.Rate-from)*(t-p.begin[i])/d
		}
		from = s.Rate
	}
	return from
}

// Expected returns the number of arrivals expected by elapsed (the integral of Rate).
func (p *Profile) Expected(elapsed time.Duration) float64 {
	t := elapsed.Seconds()
	from := p.start
	for i, s := range p.stages {
		d := s.Duration.Seconds()
		if t < p.begin[i]+d {
			x := t - p.begin[i]
			r := from + (s.Rate-from)*x/d
			return p.cum[i] + (from+r)/2*x
		}
		from = s.Rate
	}
	n := len(p.stages)
	return p.cum[n] + from*(t-p.begin[n])
}

// at returns the time at which u arrivals are expected (the inverse of Expected), or
// ok=false if that is never reached.
func (p *Profile) at(u float64) (float64, bool) {
	from := p.start
	for i, s := range p.stages {
		d := s.Duration.Seconds()
		c1 := p.cum[i] + (from+s.Rate)/2*d
		if u <= c1 && d > 0 {
			// Solve cum[i] + from*x + a/2*x² = u for x in [0, d], a = slope.
			a := (s.Rate - from) / d
			need := u - p.cum[i]
			var x float64
			if math.Abs(a) < 1e-12 {
				if from <= 0 {
					return 0, false
				}
				x = need / from
			} else {
				disc := from*from + 2*a*need
				if disc < 0 {
					disc = 0
				}
				x = (-from + math.Sqrt(disc)) / a
			}
			return p.begin[i] + min(max(x, 0), d), true
		}
		from = s.Rate
	}
	n := len(p.stages)
	if from <= 0 {
		return 0, false
	}
	return p.begin[n] + (u-p.cum[n])/from, true
}

// Constant spaces arrivals evenly along a profile: arrival n is due when n arrivals
// are expected.
type Constant struct {
	p *Profile
	n float64
}

// NewConstant returns a pacer with evenly spaced arrivals following p.
func NewConstant(p *Profile) *Constant { return &Constant{p: p} }

// Next implements Pacer.
func (c *Constant) Next(time.Duration) (time.Duration, bool) {
	c.n++
	return dueAt(c.p, c.n-0.5)
}

// Rate implements Pacer.
func (c *Constant) Rate(e time.Duration) float64 { return c.p.Rate(e) }

// Poisson makes arrivals a (possibly inhomogeneous) Poisson process following a
// profile: unit-rate exponential gaps mapped through the inverse of the expected count.
type Poisson struct {
	p   *Profile
	u   float64
	rnd *rand.Rand
}

// NewPoisson returns a Poisson pacer following p, seeded for reproducible schedules.
func NewPoisson(p *Profile, seed uint64) *Poisson {
	return &Poisson{p: p, rnd: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
}

// Next implements Pacer.
func (q *Poisson) Next(time.Duration) (time.Duration, bool) {
	q.u += q.rnd.ExpFloat64()
	return dueAt(q.p, q.u)
}

// Rate implements Pacer.
func (q *Poisson) Rate(e time.Duration) float64 { return q.p.Rate(e) }

func dueAt(p *Profile, u float64) (time.Duration, bool) {
	t, ok := p.at(u)
	if !ok {
		return 0, false
	}
	d := time.Duration(t * float64(time.Second))
	if p.duration > 0 && d >= p.duration {
		return 0, false
	}
	return d, true
}

var (
	_ Pacer = (*Constant)(nil)
	_ Pacer = (*Poisson)(nil)
)
