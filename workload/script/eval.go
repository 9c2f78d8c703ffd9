package script

import (
	"errors"
	"fmt"
	"math"
)

// evaluator evaluates expressions against one execution's variables.
type evaluator struct {
	slots []value
	rng   *splitmix
	// debug receives debug()'s argument; nil discards it.
	debug func(value)
}

var (
	errAddRange = errors.New("bigint add out of range")
	errSubRange = errors.New("bigint sub out of range")
	errMulRange = errors.New("bigint mul out of range")
	errDivRange = errors.New("bigint div out of range")
)

func (e *evaluator) eval(n *node) (value, error) {
	switch n.fn {
	case fnConst:
		return n.c, nil
	case fnVar:
		v := e.slots[n.slot]
		switch v.k {
		case kUndef:
			return value{}, fmt.Errorf("undefined variable %q", n.name)
		case kText:
			return parseText(n.name, v.b)
		}
		return v, nil
	case fnAnd, fnOr:
		return e.logic(n)
	case fnCase:
		last := len(n.args) - 1
		for i := 0; i < last; i += 2 {
			c, err := e.eval(n.args[i])
			if err != nil {
				return value{}, err
			}
			if c.truth() {
				return e.eval(n.args[i+1])
			}
		}
		return e.eval(n.args[last])
	}
	// Every other function evaluates all its arguments first; most return NULL
	// when one is NULL.
	var buf [4]value
	args := buf[:0]
	hasNull := false
	for _, a := range n.args {
		v, err := e.eval(a)
		if err != nil {
			return value{}, err
		}
		hasNull = hasNull || v.k == kNull
		args = append(args, v)
	}
	if hasNull && n.fn != fnIs && n.fn != fnDebug {
		return nullValue(), nil
	}
	return e.apply(n.fn, args)
}

// logic evaluates AND and OR lazily: the right side is evaluated only when the left
// does not decide. A NULL left side gives NULL, as in pgbench.
func (e *evaluator) logic(n *node) (value, error) {
	l, err := e.eval(n.args[0])
	if err != nil {
		return value{}, err
	}
	if l.k == kNull {
		return nullValue(), nil
	}
	lb, err := l.toBool()
	if err != nil {
		return value{}, err
	}
	if lb == (n.fn == fnOr) {
		return boolValue(lb), nil
	}
	r, err := e.eval(n.args[1])
	if err != nil {
		return value{}, err
	}
	if r.k == kNull {
		return nullValue(), nil
	}
	rb, err := r.toBool()
	if err != nil {
		return value{}, err
	}
	return boolValue(rb), nil
}

func (e *evaluator) apply(f fn, args []value) (value, error) {
	switch f {
	case fnAdd, fnSub, fnMul, fnDiv, fnMod, fnEq, fnNe, fnLe, fnLt:
		return arith(f, args[0], args[1])
	case fnBitAnd, fnBitOr, fnBitXor, fnLShift, fnRShift:
		l, err := args[0].toInt()
		if err != nil {
			return value{}, err
		}
		r, err := args[1].toInt()
		if err != nil {
			return value{}, err
		}
		switch f {
		case fnBitAnd:
			return intValue(l & r), nil
		case fnBitOr:
			return intValue(l | r), nil
		case fnBitXor:
			return intValue(l ^ r), nil
		}
		if r < 0 || r > 63 {
			return value{}, fmt.Errorf("shift count %d is out of range [0, 63]", r)
		}
		if f == fnLShift {
			return intValue(l << r), nil
		}
		return intValue(l >> r), nil
	case fnNot:
		b, err := args[0].toBool()
		if err != nil {
			return value{}, err
		}
		return boolValue(!b), nil
	case fnIs:
		// As pgbench: same type, and for booleans the same value.
		l, r := args[0], args[1]
		return boolValue(l.k == r.k && (l.k != kBool || l.n == r.n)), nil
	case fnPi:
		return doubleValue(math.Pi), nil
	case fnAbs:
		switch args[0].k {
		case kInt:
			if i := args[0].int(); i < 0 {
				return intValue(-i), nil
			}
			return args[0], nil
		case kDouble:
			return doubleValue(math.Abs(args[0].float())), nil
		}
		return value{}, fmt.Errorf("cannot coerce %s to a number", args[0].typeName())
	case fnDebug:
		if e.debug != nil {
			e.debug(args[0])
		}
		return args[0], nil
	case fnDouble, fnSqrt, fnLn, fnExp:
		d, err := args[0].toDouble()
		if err != nil {
			return value{}, err
		}
		switch f {
		case fnSqrt:
			d = math.Sqrt(d)
		case fnLn:
			d = math.Log(d)
		case fnExp:
			d = math.Exp(d)
		}
		return doubleValue(d), nil
	case fnInt:
		i, err := args[0].toInt()
		if err != nil {
			return value{}, err
		}
		return intValue(i), nil
	case fnLeast, fnGreatest:
		return extremum(f, args)
	case fnRandom, fnRandomExponential, fnRandomGaussian, fnRandomZipfian:
		return e.random(f, args)
	case fnPow:
		l, err := args[0].toDouble()
		if err != nil {
			return value{}, err
		}
		r, err := args[1].toDouble()
		if err != nil {
			return value{}, err
		}
		return doubleValue(math.Pow(l, r)), nil
	case fnHashMurmur2, fnHashFNV1a:
		v, err := args[0].toInt()
		if err != nil {
			return value{}, err
		}
		seed, err := args[1].toInt()
		if err != nil {
			return value{}, err
		}
		if f == fnHashMurmur2 {
			return intValue(hashMurmur2(v, uint64(seed))), nil
		}
		return intValue(hashFNV1a(v, uint64(seed))), nil
	case fnPermute:
		var iv [3]int64
		for i := range iv {
			x, err := args[i].toInt()
			if err != nil {
				return value{}, err
			}
			iv[i] = x
		}
		if iv[1] <= 0 {
			return value{}, errPermuteSize
		}
		return intValue(permute(iv[0], iv[1], iv[2])), nil
	}
	return value{}, fmt.Errorf("internal error: function %d has no implementation", f)
}

// arith applies an arithmetic or comparison operator: in doubles when either side
// is a double (except %), else in integers, with pgbench's overflow errors.
func arith(f fn, lv, rv value) (value, error) {
	if (lv.k == kDouble || rv.k == kDouble) && f != fnMod {
		l, err := lv.toDouble()
		if err != nil {
			return value{}, err
		}
		r, err := rv.toDouble()
		if err != nil {
			return value{}, err
		}
		switch f {
		case fnAdd:
			return doubleValue(l + r), nil
		case fnSub:
			return doubleValue(l - r), nil
		case fnMul:
			return doubleValue(l * r), nil
		case fnDiv:
			return doubleValue(l / r), nil
		case fnEq:
			return boolValue(l == r), nil
		case fnNe:
			return boolValue(l != r), nil
		case fnLe:
			return boolValue(l <= r), nil
		default:
			return boolValue(l < r), nil
		}
	}
	l, err := lv.toInt()
	if err != nil {
		return value{}, err
	}
	r, err := rv.toInt()
	if err != nil {
		return value{}, err
	}
	switch f {
	case fnAdd:
		s := l + r
		if (s > l) != (r > 0) {
			return value{}, errAddRange
		}
		return intValue(s), nil
	case fnSub:
		s := l - r
		if (s < l) != (r > 0) {
			return value{}, errSubRange
		}
		return intValue(s), nil
	case fnMul:
		p := l * r
		if l != 0 && (p/l != r || l == -1 && r == math.MinInt64) {
			return value{}, errMulRange
		}
		return intValue(p), nil
	case fnEq:
		return boolValue(l == r), nil
	case fnNe:
		return boolValue(l != r), nil
	case fnLe:
		return boolValue(l <= r), nil
	case fnLt:
		return boolValue(l < r), nil
	}
	// fnDiv, fnMod
	if r == 0 {
		return value{}, errDivisionByZero
	}
	if r == -1 {
		if f == fnMod {
			return intValue(0), nil
		}
		if l == math.MinInt64 {
			return value{}, errDivRange
		}
		return intValue(-l), nil
	}
	if f == fnDiv {
		return intValue(l / r), nil
	}
	return intValue(l % r), nil
}

// extremum is least or greatest: in doubles when any argument is a double.
func extremum(f fn, args []value) (value, error) {
	anyDouble := false
	for _, a := range args {
		anyDouble = anyDouble || a.k == kDouble
	}
	if anyDouble {
		best, err := args[0].toDouble()
		if err != nil {
			return value{}, err
		}
		for _, a := range args[1:] {
			d, err := a.toDouble()
			if err != nil {
				return value{}, err
			}
			if f == fnLeast && d < best || f == fnGreatest && d > best {
				best = d
			}
		}
		return doubleValue(best), nil
	}
	best, err := args[0].toInt()
	if err != nil {
		return value{}, err
	}
	for _, a := range args[1:] {
		i, err := a.toInt()
		if err != nil {
			return value{}, err
		}
		if f == fnLeast && i < best || f == fnGreatest && i > best {
			best = i
		}
	}
	return intValue(best), nil
}

func (e *evaluator) random(f fn, args []value) (value, error) {
	lb, err := args[0].toInt()
	if err != nil {
		return value{}, err
	}
	ub, err := args[1].toInt()
	if err != nil {
		return value{}, err
	}
	d, err := randomRange(lb, ub)
	if err != nil {
		return value{}, err
	}
	if f == fnRandom {
		return intValue(e.rng.uniform(lb, d)), nil
	}
	param, err := args[2].toDouble()
	if err != nil {
		return value{}, err
	}
	if err := checkRandomParam(f, param); err != nil {
		return value{}, err
	}
	switch f {
	case fnRandomExponential:
		return intValue(e.rng.exponential(lb, d, param)), nil
	case fnRandomGaussian:
		return intValue(e.rng.gaussian(lb, d, param)), nil
	}
	return intValue(e.rng.zipfian(lb, d, param)), nil
}
