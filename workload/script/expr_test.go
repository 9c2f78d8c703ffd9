package script

import (
	"math"
	"strings"
	"testing"
)

func text(s string) value { return value{k: kText, b: []byte(s)} }

// testVars are the variables the expression tests may read, of every kind.
var testVars = map[string]value{
	"zero":   intValue(0),
	"one":    doubleValue(1.0),
	"n0":     nullValue(),
	"d1":     boolValue(false),
	"n":      text("null"),
	"f":      text("of"),
	"t":      text("t"),
	"y":      text("ye"),
	"o":      text("o"),
	"foo":    text("bla"),
	"i":      text("+3"),
	"sp":     text(" 42"),
	"tr":     text("42 "),
	"d":      text("-10.1e1"),
	"big":    text("99999999999999999999"),
	"empty":  text(""),
	"minint": intValue(math.MinInt64),
	"maxint": intValue(math.MaxInt64),
	"size":   intValue(math.MaxInt64 - 10),
	"neg":    intValue(-1),
	"half":   doubleValue(2.5),
}

// evalExpr parses src and evaluates it with testVars, the seed 1 and :default_seed
// 5432, collecting debug() output.
func evalExpr(src string, debug *[]string) (value, error) {
	n, err := parseExpr(src)
	if err != nil {
		return value{}, err
	}
	sym := newSymbols()
	for name := range testVars {
		sym.slot(name)
	}
	walkVars(n, func(v *node) { v.slot = sym.slot(v.name) })
	slots := make([]value, len(sym.names))
	for name, v := range testVars {
		slots[sym.slots[name]] = v
	}
	slots[slotDefaultSeed] = intValue(5432)
	slots[slotScale] = intValue(1)
	rng := splitmix{1}
	ev := evaluator{slots: slots, rng: &rng}
	if debug != nil {
		ev.debug = func(v value) { *debug = append(*debug, v.String()) }
	}
	return ev.eval(n)
}

func TestExpressions(t *testing.T) {
	tests := []struct{ expr, want string }{
		// constants
		{"5432", "int 5432"},
		{"3.14159", "double 3.14159"},
		{".5", "double 0.5"},
		{"1.", "double 1"},
		{"1e3", "double 1000"},
		{"-0.8E1", "double -8"},
		{"TRUE", "boolean true"},
		{"false", "boolean false"},
		{"NULL", "null"},
		{"-9223372036854775808", "int -9223372036854775808"},
		{"-(:minint + 1)", "int 9223372036854775807"},
		{"- 2.0", "double -2"},
		{"-0.0", "double 0"},
		{"+5", "int 5"},
		// the operators' documented examples
		{"1 = 1 or 1 = 0", "boolean true"},
		{"true and false", "boolean false"},
		{"not false", "boolean true"},
		{"1 is null", "boolean false"},
		{"1 notnull", "boolean true"},
		{"1 isnull", "boolean false"},
		{"5 = 4", "boolean false"},
		{"5 <> 4", "boolean true"},
		{"5 != 5", "boolean false"},
		{"5 < 4", "boolean false"},
		{"5 <= 4", "boolean false"},
		{"5 > 4", "boolean true"},
		{"5 >= 4", "boolean true"},
		{"1 | 2", "int 3"},
		{"1 # 3", "int 2"},
		{"1 & 3", "int 1"},
		{"~ 1", "int -2"},
		{"1 << 2", "int 4"},
		{"8 >> 2", "int 2"},
		{"-8 >> 1", "int -4"},
		{"5 + 4", "int 9"},
		{"3 - 2.0", "double 1"},
		{"5 * 4", "int 20"},
		{"5 / 3", "int 1"},
		{"-7 / 2", "int -3"},
		{"3 % 2", "int 1"},
		{"-7 % 2", "int -1"},
		{"5 / -1", "int -5"},
		{"5 % -1", "int 0"},
		{"7.5 % 2", "int 0"}, // % works on integers: 7.5 rounds to 8
		{"1.0 / 0", "double Infinity"},
		{"-1.0 / 0", "double -Infinity"},
		// precedence and associativity, as pgbench's grammar has them
		{"2 + 3 * 4", "int 14"},
		{"(2 + 3) * 4", "int 20"},
		{"10 - 4 - 3", "int 3"},
		{"2 * 3 % 4", "int 2"},
		{"- 2 * 3", "int -6"},
		{"~ 1 + 2", "int -4"}, // ~ binds like the bitwise operators: ~(1 + 2)
		{"~ 1 | 2", "int -2"},
		{"1 | 2 = 3", "boolean true"},
		{"not 1 = 2", "boolean true"},
		{"not true and false", "boolean false"},
		{"true or true and false", "boolean true"},
		{"1 < 2 is true", "boolean true"},
		{"null is null is true", "boolean true"},
		{"1 + 2 isnull", "boolean false"},
		// pgbench's own expression tests
		{"17 / (4|1) + ( 4 + (7 >> 2))", "int 8"},
		{"- (3 * 4 - (-(~ 1) + -(~ 0))) / -1 + 3 % -1", "int 9"},
		{"10 + (0 + 0 * 0 - 0 / 1)", "int 10"},
		{"64 % (((2 + 1 * 2 + (1 # 2) | 4 * (2 & 11)) - (1 << 2)) + 2)", "int 12"},
		{"pi() * 4.9", "double 15.39380400259"},
		{"greatest(4, 2, -1.17) * 4.0 * Ln(Exp(1.0))", "double 16"},
		{"least(-5.18, .0E0, 1.0/0) * -3.3", "double 17.094"},
		{"pow(-3,3)", "double -27"},
		{"pow(2.0,10)", "double 1024"},
		{"pow(0,0)", "double 1"},
		{"pow(0.0,0.0)", "double 1"},
		{"pow(-2,-3)", "double -0.125"},
		{"pow(-2.0,-3.0)", "double -0.125"},
		{"power(-5.0,-5.0)", "double -0.00032"},
		{"pow(9223372036854775807, 2)", "double 8.50705917302346e+37"},
		{"pow(10,30)", "double 1e+30"},
		{"1.0 = 0.0 and 1.0 != 0.0", "boolean false"},
		{"0 = 1 Or 1.0 = 1", "boolean true"},
		{"case when 0 < 1 then 32 else 0 end", "int 32"},
		{"case when true then 33 else 0 end", "int 33"},
		{"case when false THEN -1 when 1 = 1 then 13 + 19 + 2.0 end", "double 34"},
		{"case when (1 > 0) and (1 >= 0) and (0 < 1) and (0 <= 1) and (0 != 1) and (0 = 0) and (0 <> 1) then 35 else 0 end", "int 35"},
		{"CASE \\\n WHEN (1.0 > 0.0) AND (0.0 <> 1.0) \\\n THEN 36 \\\n ELSE 0 \\\n END", "int 36"},
		{"CASE WHEN NOT FALSE THEN 3 * 12.3333334 END", "double 37.0000002"},
		{"case when false then 0 when 1-1 <> 0 then 1 else 38 end", "int 38"},
		{"case when false then 0 end", "null"},
		{"10 + mod(13 * 7 + 12, 13) - mod(-19 * 11 - 17, 19)", "int 39"},
		{"NOT (0 > 1) AND (1 <= 1) AND NOT (0 >= 1) AND (0 < 1) AND NOT (false and true) AND (false OR TRUE) AND (NOT :f) AND (NOT FALSE) AND NOT (NOT TRUE)", "boolean true"},
		// NULL
		{"NULL + NULL * exp(NULL)", "null"},
		{":n0", "null"},
		{"NOT (:n0 IS NOT NULL OR :d1 IS NULL)", "boolean true"},
		{":n0 IS NULL AND :d1 IS NOT NULL AND :d1 NOTNULL", "boolean true"},
		{":n0 ISNULL AND NOT :n0 IS TRUE AND :n0 IS NOT FALSE", "boolean true"},
		{"CASE WHEN :n IS NULL THEN 46 ELSE NULL END", "int 46"},
		{":n IS NULL AND NOT :f AND :t", "boolean true"},
		{"CASE WHEN 1 THEN TRUE END AND CASE WHEN 1.0 THEN TRUE END AND CASE WHEN :n THEN NULL ELSE TRUE END", "boolean true"},
		{"abs(NULL)", "null"},
		{"NULL AND true", "null"},
		{"false AND NULL", "boolean false"},
		{"true OR NULL", "boolean true"},
		{"NULL OR true", "null"},
		{"NOT NULL", "null"},
		{"NULL = NULL", "null"},
		{"true IS TRUE", "boolean true"},
		{"1 IS TRUE", "boolean false"},
		{"NULL IS FALSE", "boolean false"},
		{"false IS NOT TRUE", "boolean true"},
		// lazy evaluation: the branch not taken is not evaluated
		{"case when :zero = 0 then -1 else (1 / :zero) end", "int -1"},
		{"case when :zero = 0 or (1 / :zero) < 0 then -1 else (1 / :zero) end", "int -1"},
		{"case when :zero > 0 and (1 / :zero) < 0 then (1 / :zero) else 1 end", "int 1"},
		// functions, with the documentation's examples
		{"abs(-17)", "int 17"},
		{"abs(-1.5)", "double 1.5"},
		{"debug(5432.1)", "double 5432.1"},
		{"double(5432)", "double 5432"},
		{"exp(1.0)", "double 2.71828182845905"},
		{"greatest(5, 4, 3, 2)", "int 5"},
		{"least(5, 4, 3, 2.1)", "double 2.1"},
		{"least(3)", "int 3"},
		{"GREATEST(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17)", "int 17"},
		{"ln(2.718281828459045)", "double 1"},
		{"mod(54, 32)", "int 22"},
		{"pi()", "double 3.14159265358979"},
		{"sqrt(2.0)", "double 1.4142135623731"},
		{"int(5.4 + 3.8)", "int 9"},
		{"int(2.5)", "int 2"}, // rounded half to even, as rint does
		{"int(3.5)", "int 4"},
		{"int(-2.5)", "int -2"},
		{"int(:half)", "int 2"},
		{"hash(10, 5432)", "int -5817877081768721676"},
		{"hash_murmur2(10, 5432)", "int -5817877081768721676"},
		{"hash_fnv1a(10, 5432)", "int -7793829335365542153"},
		{"hash(10) = hash(10, :default_seed)", "boolean true"},
		{"Hash_FNV1A(10) = hash_fnv1a(10, 5432)", "boolean true"},
		// permute: pgbench's checks, including its portability values
		{"permute(0, 2) + permute(1, 2) = 1", "boolean true"},
		{"permute(0, 3) + permute(1, 3) + permute(2, 3) = 3", "boolean true"},
		{"permute(0, 4) + permute(1, 4) + permute(2, 4) + permute(3, 4) = 6", "boolean true"},
		{"permute(0, 5) + permute(1, 5) + permute(2, 5) + permute(3, 5) + permute(4, 5) = 10", "boolean true"},
		{"permute(5, 1)", "int 0"},
		{"permute(0, 2, 5431) = 0 and permute(1, 2, 5431) = 1 and permute(0, 2, 5433) = 1 and permute(1, 2, 5433) = 0", "boolean true"},
		{"permute(:size-1, :size, 5432)", "int 520382784483822430"},
		{"permute(:size-2, :size, 5432)", "int 1143715004660802862"},
		{"permute(:size-3, :size, 5432)", "int 447293596416496998"},
		{"permute(:size-4, :size, 5432)", "int 916527772266572956"},
		{"permute(:size-5, :size, 5432)", "int 2763809008686028849"},
		{"permute(:size-6, :size, 5432)", "int 8648551549198294572"},
		{"permute(:size-7, :size, 5432)", "int 4542876852200565125"},
		{"permute(12, 10) = permute(2, 10)", "boolean true"},
		{"permute(-1, 10) = permute(5, 10)", "boolean true"}, // -1 is 2^64-1 ≡ 5 (mod 10)
		// text variables (from \gset) read as pgbench reads them
		{":i + 1", "int 4"},
		{":sp + 0", "int 42"},
		{":d * 1", "double -101"},
		{":y", "boolean true"},
		{"NOT :t", "boolean false"},
		{"random(1, 1)", "int 1"},
		{"random_exponential(7, 7, 3.0)", "int 7"},
		{"random_gaussian(7, 7, 3.0)", "int 7"},
		{"random_zipfian(7, 7, 1.5)", "int 7"},
		{":scale * 100000", "int 100000"},
	}
	for _, tt := range tests {
		got, err := evalExpr(tt.expr, nil)
		if err != nil {
			t.Errorf("%s: %v", tt.expr, err)
			continue
		}
		if s := got.String(); s != tt.want {
			t.Errorf("%s = %s, want %s", tt.expr, s, tt.want)
		}
	}
}

func TestExpressionErrors(t *testing.T) {
	tests := []struct{ expr, want string }{
		// syntax, found when the script is loaded
		{"", "missing expression"},
		{"1 +", "expected a value, a :variable, a function call or (, got the end of the expression"},
		{"1 2", `expected an operator or the end of the expression, got "2"`},
		{"(1", `expected ")"`},
		{"abs(1", `expected "," or ")"`},
		{"abs 1", `expected "(" after the function name abs`},
		{";", `unexpected character ";"`},
		{"1 : 2", `unexpected character ":"`},
		{"1 < 2 < 3", "comparisons do not chain"},
		{"1 = 2 <> 3", "comparisons do not chain"},
		{"1 is 2", "expected NULL, TRUE or FALSE after IS"},
		{"CASE TRUE THEN 1 ELSE 0 END", "expected WHEN after CASE"},
		{"CASE WHEN 1 THEN 2", "expected WHEN, ELSE or END"},
		{"CASE WHEN 1 2 END", "expected THEN"},
		{"noSuchFunction()", `unknown function "noSuchFunction"`},
		{"ln(1.0, 2.0)", "ln takes 1 argument, got 2"},
		{"pi(1)", "pi takes 0 arguments, got 1"},
		{"random(1)", "random takes 2 arguments, got 1"},
		{"greatest()", "greatest takes at least one argument, got 0"},
		{"hash()", "hash takes 1 or 2 arguments (value [, seed]), got 0"},
		{"hash(1, 2, 3)", "hash takes 1 or 2 arguments"},
		{"permute(1)", "permute takes 2 or 3 arguments (i, size [, seed]), got 1"},
		{"99999999999999999999", "bigint constant overflow (99999999999999999999)"},
		{"9223372036854775808", "bigint constant overflow (9223372036854775808)"},
		{"1e400", "double constant overflow (1e400)"},
		{strings.Repeat("(", 300) + "1" + strings.Repeat(")", 300), "nested too deeply"},
		{strings.Repeat("-", 300) + "1", "nested too deeply"},
		{"random(5, 3)", "empty range given to random"},
		{"random(-9223372036854775808, 9223372036854775807)", "random range is too large"},
		{"random_gaussian(0, 10, 1.0)", "gaussian parameter must be at least 2.000000 (not 1.000000)"},
		{"random_exponential(0, 10, 0.0)", "exponential parameter must be greater than zero (not 0.000000)"},
		{"random_exponential(0, 10, -1)", "exponential parameter must be greater than zero (not -1.000000)"},
		{"random_zipfian(0, 10, 1)", "zipfian parameter must be in range [1.001, 1000] (not 1.000000)"},
		{"random_zipfian(0, 10, 1000000)", "zipfian parameter must be in range [1.001, 1000] (not 1000000.000000)"},
		{"permute(1, 0)", "permute size parameter must be greater than zero"},
		{"permute(1, -5, 3)", "permute size parameter must be greater than zero"},
		// evaluation, found when the script runs
		{"1/0", "division by zero"},
		{"1 % 0", "division by zero"},
		{"mod(5, 0)", "division by zero"},
		{":nosuchvariable", `undefined variable "nosuchvariable"`},
		{":foo + 1", `malformed variable "foo" value: "bla"`},
		{":o", `malformed variable "o" value: "o"`},
		{":tr + 1", `malformed variable "tr" value: "42 "`},
		{":empty", `malformed variable "empty" value: "" (empty)`},
		{":big", `out of range for type bigint`},
		{"NOT 0.0", "cannot coerce double to boolean"},
		{"NOT 1", "cannot coerce int to boolean"},
		{"5 or 0", "cannot coerce int to boolean"},
		{"TRUE + 2", "cannot coerce boolean to int"},
		{"true = true", "cannot coerce boolean to int"},
		{"ln(TRUE)", "cannot coerce boolean to double"},
		{"abs(TRUE)", "cannot coerce boolean to a number"},
		{"random(FALSE, TRUE)", "cannot coerce boolean to int"},
		{"int(1E32)", "double to int overflow for 100000000000000005366162204393472.000000"},
		{"int(0.0/0)", "double to int overflow for NaN"},
		{"(1<<62) + (1<<62)", "bigint add out of range"},
		{"0 - (1<<62) - (1<<62) - (1<<62)", "bigint sub out of range"},
		{"2 * (1<<62)", "bigint mul out of range"},
		{":neg * :minint", "bigint mul out of range"},
		{":minint * :neg", "bigint mul out of range"},
		{"-(:minint)", "bigint sub out of range"},
		{":minint / -1", "bigint div out of range"},
		{"1 << 64", "shift count 64 is out of range [0, 63]"},
		{"1 >> -1", "shift count -1 is out of range [0, 63]"},
		{"random(:minint, :maxint)", "random range is too large"},
		{"random(:maxint, :minint)", "empty range given to random"},
		{"random_gaussian(0, 10, :one)", "gaussian parameter must be at least 2.000000 (not 1.000000)"},
		{"random_zipfian(0, 10, :one)", "zipfian parameter must be in range"},
		{"random_exponential(0, 10, :zero)", "exponential parameter must be greater than zero"},
		{"permute(1, :zero)", "permute size parameter must be greater than zero"},
	}
	for _, tt := range tests {
		got, err := evalExpr(tt.expr, nil)
		if err == nil {
			t.Errorf("%s = %s, want an error containing %q", tt.expr, got, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q, want it to contain %q", tt.expr, err, tt.want)
		}
	}
}

func TestDebugReportsItsArgument(t *testing.T) {
	var out []string
	v, err := evalExpr("debug(1 + 1) * debug(2.5) + CASE WHEN debug(NULL) IS NULL AND debug(true) THEN 2 END", &out)
	if err != nil {
		t.Fatal(err)
	}
	if v.String() != "double 7" {
		t.Errorf("value = %s", v)
	}
	want := []string{"int 2", "double 2.5", "null", "boolean true"}
	if strings.Join(out, "|") != strings.Join(want, "|") {
		t.Errorf("debug output %q, want %q", out, want)
	}
}

// TestRandomFunctions draws many values from each distribution and checks the
// bounds, and the shape of each distribution roughly.
func TestRandomFunctions(t *testing.T) {
	r := splitmix{42}
	const n = 200000
	counts := func(draw func() int64, lo, hi int64) []int {
		c := make([]int, hi-lo+1)
		for range n {
			v := draw()
			if v < lo || v > hi {
				t.Fatalf("drew %d outside [%d, %d]", v, lo, hi)
			}
			c[v-lo]++
		}
		return c
	}
	uni := counts(func() int64 { return r.uniform(1, 9) }, 1, 10)
	for i, c := range uni {
		if c < n/10*9/10 || c > n/10*11/10 {
			t.Errorf("uniform: %d drawn %d times of %d, want about %d", i+1, c, n, n/10)
		}
	}
	// exponential with parameter 3: the first decile holds 1-e^-0.3 / 1-e^-3 ≈ 27%.
	exp := counts(func() int64 { return r.exponential(1, 9, 3.0) }, 1, 10)
	if f := float64(exp[0]) / n; f < 0.25 || f > 0.29 {
		t.Errorf("exponential: first value drawn %.3f of the time, want about 0.272", f)
	}
	if exp[0] <= exp[9] {
		t.Errorf("exponential: %v does not decrease", exp)
	}
	// gaussian with parameter 2.5: the middle is most likely, symmetric.
	gau := counts(func() int64 { return r.gaussian(1, 9, 2.5) }, 1, 10)
	if gau[4] <= gau[0] || gau[5] <= gau[9] || math.Abs(float64(gau[0]-gau[9])) > n/100 {
		t.Errorf("gaussian: %v is not bell-shaped", gau)
	}
	// zipfian with s = 2.5: P(1)/P(2) = 2^2.5 ≈ 5.66.
	zip := counts(func() int64 { return r.zipfian(1, 9, 2.5) }, 1, 10)
	if ratio := float64(zip[0]) / float64(zip[1]); ratio < 5.2 || ratio > 6.1 {
		t.Errorf("zipfian: P(1)/P(2) = %.2f, want about 5.66", ratio)
	}
	// extreme ranges stay in bounds
	for range 1000 {
		if v := r.uniform(math.MinInt64+1, math.MaxInt64-1); v == math.MinInt64 || v == math.MaxInt64 {
			t.Fatalf("uniform drew %d", v)
		}
		if v := r.zipfian(5, 0, 1.001); v != 5 {
			t.Fatalf("zipfian on one value drew %d", v)
		}
	}
}

func TestTextValues(t *testing.T) {
	tests := []struct{ in, want string }{
		{"NULL", "null"}, {"null", "null"},
		{"t", "boolean true"}, {"TRUE", "boolean true"}, {"y", "boolean true"}, {"yes", "boolean true"}, {"on", "boolean true"},
		{"f", "boolean false"}, {"fal", "boolean false"}, {"n", "boolean false"}, {"no", "boolean false"}, {"off", "boolean false"}, {"of", "boolean false"},
		{"0", "int 0"}, {"-12", "int -12"}, {"+7", "int 7"}, {"  9", "int 9"},
		{"1.5", "double 1.5"}, {"-2e3", "double -2000"}, {"  .25", "double 0.25"},
	}
	for _, tt := range tests {
		v, err := parseText("v", []byte(tt.in))
		if err != nil || v.String() != tt.want {
			t.Errorf("parseText(%q) = %s, %v; want %s", tt.in, v, err, tt.want)
		}
	}
	for _, bad := range []string{"", "o", "bla", "1 2", "1_000", "truest"} {
		if v, err := parseText("v", []byte(bad)); err == nil {
			t.Errorf("parseText(%q) = %s, want an error", bad, v)
		}
	}
}

// TestValueText checks how values are sent as parameters: pgbench's %.15g for
// doubles.
func TestValueText(t *testing.T) {
	tests := []struct {
		v    value
		want string
	}{
		{intValue(-42), "-42"},
		{doubleValue(0.1 + 0.2), "0.3"},
		{doubleValue(1e30), "1e+30"},
		{doubleValue(1e-5), "1e-05"},
		{doubleValue(123456789012345678), "1.23456789012346e+17"},
		{doubleValue(math.Inf(1)), "Infinity"},
		{doubleValue(math.NaN()), "NaN"},
		{boolValue(true), "true"},
		{text("abc"), "abc"},
	}
	for _, tt := range tests {
		if got := string(tt.v.appendText(nil)); got != tt.want {
			t.Errorf("%s as text = %q, want %q", tt.v, got, tt.want)
		}
	}
}
