package script

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// kind is the type of a variable's value.
type kind uint8

const (
	kUndef kind = iota // never set
	kNull
	kBool
	kInt
	kDouble
	// kText is a value stored by \gset or \aset, or :txid: text, converted to a
	// number or boolean when an expression reads it, as pgbench converts its
	// string-valued variables.
	kText
)

// value is a variable's or an expression's value. Numbers and booleans live in n
// (a float64's bits for doubles), text in b.
type value struct {
	k kind
	n uint64
	b []byte
}

func nullValue() value            { return value{k: kNull} }
func intValue(i int64) value      { return value{k: kInt, n: uint64(i)} }
func doubleValue(f float64) value { return value{k: kDouble, n: math.Float64bits(f)} }
func boolValue(b bool) value {
	if b {
		return value{k: kBool, n: 1}
	}
	return value{k: kBool}
}

func (v value) int() int64       { return int64(v.n) }
func (v value) float() float64   { return math.Float64frombits(v.n) }
func (v value) boolean() bool    { return v.n != 0 }
func (v value) typeName() string { return kindNames[v.k] }

var kindNames = [...]string{kUndef: "undefined", kNull: "null", kBool: "boolean", kInt: "int", kDouble: "double", kText: "text"}

// truth is a value's truth in \if and CASE WHEN: non-zero numbers and true are true,
// zero, false and NULL are false.
func (v value) truth() bool {
	switch v.k {
	case kBool, kInt:
		return v.n != 0
	case kDouble:
		return v.float() != 0
	}
	return false
}

func (v value) toBool() (bool, error) {
	if v.k == kBool {
		return v.boolean(), nil
	}
	return false, fmt.Errorf("cannot coerce %s to boolean", v.typeName())
}

// toInt converts an int or a double (rounded half to even, as rint does) to an int.
func (v value) toInt() (int64, error) {
	switch v.k {
	case kInt:
		return v.int(), nil
	case kDouble:
		d := math.RoundToEven(v.float())
		if math.IsNaN(d) || d < math.MinInt64 || d >= -math.MinInt64 {
			return 0, fmt.Errorf("double to int overflow for %f", d)
		}
		return int64(d), nil
	}
	return 0, fmt.Errorf("cannot coerce %s to int", v.typeName())
}

func (v value) toDouble() (float64, error) {
	switch v.k {
	case kDouble:
		return v.float(), nil
	case kInt:
		return float64(v.int()), nil
	}
	return 0, fmt.Errorf("cannot coerce %s to double", v.typeName())
}

// appendText appends the value as a statement parameter or as debug output shows
// it: integers in decimal, doubles with 15 significant digits (pgbench's %.15g),
// booleans as true or false. NULL is not text; callers handle it.
func (v value) appendText(b []byte) []byte {
	switch v.k {
	case kInt:
		return strconv.AppendInt(b, v.int(), 10)
	case kDouble:
		f := v.float()
		switch {
		case math.IsNaN(f):
			return append(b, "NaN"...)
		case math.IsInf(f, 1):
			return append(b, "Infinity"...)
		case math.IsInf(f, -1):
			return append(b, "-Infinity"...)
		}
		return strconv.AppendFloat(b, f, 'g', 15, 64)
	case kBool:
		if v.boolean() {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case kText:
		return append(b, v.b...)
	case kNull:
		return append(b, "NULL"...)
	}
	return b
}

// String renders the value as debug() prints it.
func (v value) String() string {
	switch v.k {
	case kNull:
		return "null"
	case kUndef:
		return "undefined"
	}
	return v.typeName() + " " + string(v.appendText(nil))
}

// parseText converts a text variable to a typed value the way pgbench does: NULL,
// boolean words (t, true, y, yes, on, f, false, n, no, off, and their prefixes),
// an integer, or else a double.
func parseText(name string, b []byte) (value, error) {
	s := string(b)
	prefixOf := func(word string) bool { return len(s) <= len(word) && strings.EqualFold(s, word[:len(s)]) }
	switch {
	case s == "":
		return value{}, fmt.Errorf("malformed variable %q value: \"\" (empty)", name)
	case strings.EqualFold(s, "null"):
		return nullValue(), nil
	case prefixOf("true") || prefixOf("yes") || strings.EqualFold(s, "on"):
		return boolValue(true), nil
	case prefixOf("false") || prefixOf("no") || strings.EqualFold(s, "off") || strings.EqualFold(s, "of"):
		return boolValue(false), nil
	}
	t := strings.TrimLeft(s, " \t\n\r\f\v")
	if looksInt(t) {
		t = strings.TrimPrefix(t, "+")
		i, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return value{}, fmt.Errorf("value %q of variable %q is out of range for type bigint", s, name)
		}
		return intValue(i), nil
	}
	f, err := strconv.ParseFloat(t, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return value{}, fmt.Errorf("value %q of variable %q is out of range for type double", s, name)
	case err != nil || strings.ContainsRune(t, '_'):
		return value{}, fmt.Errorf("malformed variable %q value: %q", name, s)
	}
	return doubleValue(f), nil
}

// looksInt reports whether s is [+-]digits.
func looksInt(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}
