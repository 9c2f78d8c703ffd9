package script

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// splitmix is a session's random stream (SplitMix64). Its whole state is one word,
// so a session carries it in workload.Session.Token: each session draws its own
// reproducible sequence from the seed, whichever worker runs it.
type splitmix struct{ s uint64 }

func (r *splitmix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// mix64 is SplitMix64's output function, a bijection of 64-bit words.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// float returns a double in [0, 1).
func (r *splitmix) float() float64 { return float64(r.next()>>11) * 0x1p-53 }

// upTo returns a uniform integer in [0, n] (n inclusive), by bitmask rejection.
func (r *splitmix) upTo(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	shift := uint(bits.LeadingZeros64(n))
	for {
		if v := r.next() >> shift; v <= n {
			return v
		}
	}
}

// The distribution parameters' limits, as pgbench documents them.
const (
	minGaussianParam = 2.0
	minZipfianParam  = 1.001
	maxZipfianParam  = 1000.0
)

var (
	errEmptyRange     = errors.New("empty range given to random (the lower bound is above the upper bound)")
	errRangeTooLarge  = errors.New("random range is too large (upper bound - lower bound + 1 overflows a bigint)")
	errPermuteSize    = errors.New("permute size parameter must be greater than zero")
	errDivisionByZero = errors.New("division by zero")
)

// randomRange checks a random function's bounds and returns ub - lb.
func randomRange(lb, ub int64) (uint64, error) {
	if lb > ub {
		return 0, errEmptyRange
	}
	d := uint64(ub) - uint64(lb)
	if d >= math.MaxInt64 { // ub - lb + 1 would overflow, as pgbench checks
		return 0, errRangeTooLarge
	}
	return d, nil
}

func checkRandomParam(f fn, param float64) error {
	switch f {
	case fnRandomGaussian:
		if !(param >= minGaussianParam) {
			return fmt.Errorf("gaussian parameter must be at least %f (not %f)", minGaussianParam, param)
		}
	case fnRandomZipfian:
		if !(param >= minZipfianParam && param <= maxZipfianParam) {
			return fmt.Errorf("zipfian parameter must be in range [%.3f, %.0f] (not %f)", minZipfianParam, maxZipfianParam, param)
		}
	case fnRandomExponential:
		if !(param > 0) {
			return fmt.Errorf("exponential parameter must be greater than zero (not %f)", param)
		}
	}
	return nil
}

// uniform draws from [lb, lb+d].
func (r *splitmix) uniform(lb int64, d uint64) int64 { return int64(uint64(lb) + r.upTo(d)) }

// exponential draws from [lb, lb+d]: a truncated exponential distribution, the
// density at the upper bound being exp(-param) of that at the lower.
func (r *splitmix) exponential(lb int64, d uint64, param float64) int64 {
	cut := math.Exp(-param)
	u := 1 - r.float() // (0, 1]
	x := -math.Log(cut+(1-cut)*u) / param
	return lb + int64(float64(d+1)*x)
}

// gaussian draws from [lb, lb+d]: a normal distribution truncated at ±param
// standard deviations (Box-Muller, redrawn outside the truncation).
func (r *splitmix) gaussian(lb int64, d uint64, param float64) int64 {
	var stdev float64
	for {
		u1, u2 := 1-r.float(), 1-r.float()
		stdev = math.Sqrt(-2*math.Log(u1)) * math.Sin(2*math.Pi*u2)
		if stdev >= -param && stdev < param {
			break
		}
	}
	x := (stdev + param) / (param * 2)
	return lb + int64(float64(d+1)*x)
}

// zipfian draws from [lb, lb+d] with P(k)/P(k+1) = ((k+1)/k)^s, by the rejection
// method of Devroye, "Non-Uniform Random Variate Generation" (1986), p. 550.
func (r *splitmix) zipfian(lb int64, d uint64, s float64) int64 {
	n := float64(d + 1)
	if d == 0 {
		return lb
	}
	b := math.Pow(2, s-1)
	var x float64
	for {
		u, v := r.float(), r.float()
		x = math.Floor(math.Pow(u, -1/(s-1)))
		t := math.Pow(1+1/x, s-1)
		if v*x*(t-1)/(b-1) <= t/b && x <= n {
			break
		}
	}
	return lb - 1 + int64(x)
}

// The hash functions are pgbench's, bit for bit, so hash(10, 5432) gives the
// value pgbench documents.
const (
	fnvPrime       = 0x100000001b3
	fnvOffsetBasis = 0xcbf29ce484222325
	mm2Mul         = 0xc6a4a7935bd1e995
	mm2MulTimes8   = 0x35253c9ade8f4ca8
	mm2Rot         = 47
)

func hashFNV1a(val int64, seed uint64) int64 {
	h := uint64(fnvOffsetBasis) ^ seed
	for range 8 {
		h ^= uint64(val & 0xff)
		h *= fnvPrime
		val >>= 8
	}
	return int64(h)
}

func hashMurmur2(val int64, seed uint64) int64 {
	h := seed ^ mm2MulTimes8
	k := uint64(val)
	k *= mm2Mul
	k ^= k >> mm2Rot
	k *= mm2Mul
	h ^= k
	h *= mm2Mul
	h ^= h >> mm2Rot
	h *= mm2Mul
	h ^= h >> mm2Rot
	return int64(h)
}

// xoroshiro is PostgreSQL's pg_prng (xoroshiro128**), needed to give permute the
// same permutations pgbench gives for a seed.
type xoroshiro struct{ s0, s1 uint64 }

func newXoroshiro(seed uint64) xoroshiro {
	next := func() uint64 { seed += 0x9e3779b97f4a7c15; return mix64(seed) }
	x := xoroshiro{next(), next()}
	if x.s0 == 0 && x.s1 == 0 {
		x = xoroshiro{0x5851f42d4c957f2d, 0x14057b7ef767814f}
	}
	return x
}

func (x *xoroshiro) next() uint64 {
	s0 := x.s0
	sx := x.s1 ^ s0
	v := bits.RotateLeft64(s0*5, 7) * 9
	x.s0 = bits.RotateLeft64(s0, 24) ^ sx ^ sx<<16
	x.s1 = bits.RotateLeft64(sx, 37)
	return v
}

// upTo returns a uniform value in [0, n] by bitmask rejection, as pg_prng does.
func (x *xoroshiro) upTo(n uint64) uint64 {
	if n == 0 {
		return 0
	}
	shift := uint(bits.LeadingZeros64(n))
	for {
		if v := x.next() >> shift; v <= n {
			return v
		}
	}
}

// permute returns val's position (modulo size) in a pseudorandom permutation of
// [0, size) chosen by seed: six rounds of multiply-xor-rotate on overlapping power-of-
// two halves and a random offset, exactly as pgbench computes it.
func permute(val, size, seed int64) int64 {
	if size < 2 {
		return 0
	}
	x := newXoroshiro(uint64(seed))
	n := uint64(size)
	v := uint64(val) % n
	masklen := uint(63 - bits.LeadingZeros64(n))
	mask := uint64(1)<<masklen - 1
	for range 6 {
		m := x.next()&mask | 1
		r := x.next() & mask
		if v <= mask {
			v = (v*m ^ r) & mask
			v = v<<1&mask | v>>(masklen-1)
		}
		m = x.next()&mask | 1
		r = x.next() & mask
		if t := n - 1 - v; t <= mask {
			t = (t*m ^ r) & mask
			t = t<<1&mask | t>>(masklen-1)
			v = n - 1 - t
		}
		v = (v + x.upTo(n-1)) % n
	}
	return int64(v)
}
