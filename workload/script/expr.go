package script

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The expression language of pgbench's \set, \if and \elif: integer, double, boolean
// and NULL values, :variables, SQL-like operators with SQL precedence, CASE, and a
// fixed set of functions. Operators are parsed into the same function nodes as
// function calls, as pgbench does, so one evaluator serves both.

// fn identifies an expression node: a constant, a variable, or a function.
type fn uint8

const (
	fnConst fn = iota
	fnVar
	fnAdd
	fnSub
	fnMul
	fnDiv
	fnMod
	fnAbs
	fnLeast
	fnGreatest
	fnDebug
	fnPi
	fnSqrt
	fnLn
	fnExp
	fnInt
	fnDouble
	fnRandom
	fnRandomGaussian
	fnRandomExponential
	fnRandomZipfian
	fnPow
	fnAnd
	fnOr
	fnNot
	fnBitAnd
	fnBitOr
	fnBitXor
	fnLShift
	fnRShift
	fnEq
	fnNe
	fnLe
	fnLt
	fnIs
	fnCase
	fnHashMurmur2
	fnHashFNV1a
	fnPermute
)

// Argument count rules of the callable functions.
const (
	nargsVariadic = -1 // at least one (least, greatest)
	nargsHash     = -2 // value [, seed]
	nargsPermute  = -3 // i, size [, seed]
)

// functions lists what a script may call by name, with its argument count. Names
// are matched case-insensitively, as pgbench matches them.
var functions = map[string]struct {
	fn    fn
	nargs int
}{
	"abs":                {fnAbs, 1},
	"debug":              {fnDebug, 1},
	"double":             {fnDouble, 1},
	"exp":                {fnExp, 1},
	"greatest":           {fnGreatest, nargsVariadic},
	"hash":               {fnHashMurmur2, nargsHash},
	"hash_fnv1a":         {fnHashFNV1a, nargsHash},
	"hash_murmur2":       {fnHashMurmur2, nargsHash},
	"int":                {fnInt, 1},
	"least":              {fnLeast, nargsVariadic},
	"ln":                 {fnLn, 1},
	"mod":                {fnMod, 2},
	"permute":            {fnPermute, nargsPermute},
	"pi":                 {fnPi, 0},
	"pow":                {fnPow, 2},
	"power":              {fnPow, 2},
	"random":             {fnRandom, 2},
	"random_exponential": {fnRandomExponential, 3},
	"random_gaussian":    {fnRandomGaussian, 3},
	"random_zipfian":     {fnRandomZipfian, 3},
	"sqrt":               {fnSqrt, 1},
}

// functionNames is the sorted list shown when a script calls an unknown function.
const functionNames = "abs, debug, double, exp, greatest, hash, hash_fnv1a, hash_murmur2, int, least, ln, mod, permute, pi, pow, power, random, random_exponential, random_gaussian, random_zipfian, sqrt"

// node is one node of a parsed expression.
type node struct {
	fn   fn
	c    value  // fnConst
	name string // fnVar: the variable's name
	slot int    // fnVar: the variable's slot, once compiled
	args []*node
}

// Limits that keep hostile input from exhausting the stack.
const (
	maxExprDepth = 256
	maxExprLen   = 1 << 16
)

// tok is a token of the expression language.
type tok uint8

const (
	tEnd tok = iota
	tInt
	tMaxIntPlusOne // 9223372036854775808: valid only after a unary minus
	tDouble
	tBool
	tNull
	tVar
	tIdent
	tOp // one of + - * / % = <> != <= >= << >> < > | & # ~ ( ) ,
	tAnd
	tOr
	tNot
	tIs
	tIsNull
	tNotNull
	tCase
	tWhen
	tThen
	tElse
	tEndKw
)

type token struct {
	t   tok
	s   string // operator, identifier or variable name
	i   int64
	f   float64
	b   bool
	col int // byte offset in the expression, for messages
}

var keywords = map[string]tok{
	"and": tAnd, "or": tOr, "not": tNot, "is": tIs, "isnull": tIsNull, "notnull": tNotNull,
	"case": tCase, "when": tWhen, "then": tThen, "else": tElse, "end": tEndKw,
	"true": tBool, "false": tBool, "null": tNull,
}

// exprError is a problem found while parsing an expression; col is a byte offset.
type exprError struct {
	col int
	msg string
}

func (e *exprError) Error() string { return fmt.Sprintf("%s (at column %d)", e.msg, e.col+1) }

func isAlpha(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool { return isAlpha(c) || isDigit(c) }

// lexer splits an expression into tokens. A newline ends the expression; a backslash
// before a newline continues it, as in pgbench.
type lexer struct {
	src string
	pos int
}

func (l *lexer) skipSpace() {
	for l.pos < len(l.src) {
		switch c := l.src[l.pos]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			l.pos++
		case c == '\\' && strings.HasPrefix(l.src[l.pos+1:], "\n"):
			l.pos += 2
		case c == '\\' && strings.HasPrefix(l.src[l.pos+1:], "\r\n"):
			l.pos += 3
		default:
			return
		}
	}
}

func (l *lexer) next() (token, error) {
	l.skipSpace()
	start := l.pos
	if l.pos >= len(l.src) || l.src[l.pos] == '\n' {
		return token{t: tEnd, col: start}, nil
	}
	c := l.src[l.pos]
	switch {
	case isDigit(c) || c == '.' && l.pos+1 < len(l.src) && isDigit(l.src[l.pos+1]):
		return l.number()
	case isAlpha(c):
		for l.pos < len(l.src) && isAlnum(l.src[l.pos]) {
			l.pos++
		}
		word := l.src[start:l.pos]
		if k, ok := keywords[strings.ToLower(word)]; ok {
			return token{t: k, s: word, b: strings.EqualFold(word, "true"), col: start}, nil
		}
		return token{t: tIdent, s: word, col: start}, nil
	case c == ':':
		l.pos++
		for l.pos < len(l.src) && isAlnum(l.src[l.pos]) {
			l.pos++
		}
		if l.pos == start+1 {
			return token{}, &exprError{start, `unexpected character ":" (a variable reference is :name)`}
		}
		return token{t: tVar, s: l.src[start+1 : l.pos], col: start}, nil
	}
	for _, op := range [...]string{"<>", "!=", "<=", ">=", "<<", ">>"} {
		if strings.HasPrefix(l.src[l.pos:], op) {
			l.pos += 2
			if op == "!=" {
				op = "<>"
			}
			return token{t: tOp, s: op, col: start}, nil
		}
	}
	if strings.IndexByte("+-*/%=<>|&#~(),", c) >= 0 {
		l.pos++
		return token{t: tOp, s: l.src[start:l.pos], col: start}, nil
	}
	return token{}, &exprError{start, fmt.Sprintf("unexpected character %q", l.src[start:start+1])}
}

// number lexes an integer or a double: digits[.digits][e[+-]digits] or .digits[e...].
func (l *lexer) number() (token, error) {
	start := l.pos
	for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
		l.pos++
	}
	isDouble := false
	if l.pos < len(l.src) && l.src[l.pos] == '.' {
		isDouble = true
		l.pos++
		for l.pos < len(l.src) && isDigit(l.src[l.pos]) {
			l.pos++
		}
	}
	if l.pos < len(l.src) && (l.src[l.pos] == 'e' || l.src[l.pos] == 'E') {
		p := l.pos + 1
		if p < len(l.src) && (l.src[p] == '+' || l.src[p] == '-') {
			p++
		}
		if p < len(l.src) && isDigit(l.src[p]) {
			for p < len(l.src) && isDigit(l.src[p]) {
				p++
			}
			isDouble = true
			l.pos = p
		}
	}
	text := l.src[start:l.pos]
	if !isDouble {
		if text == "9223372036854775808" {
			return token{t: tMaxIntPlusOne, s: text, col: start}, nil
		}
		i, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return token{}, &exprError{start, fmt.Sprintf("bigint constant overflow (%s)", text)}
		}
		return token{t: tInt, i: i, s: text, col: start}, nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(f, 0) {
		return token{}, &exprError{start, fmt.Sprintf("double constant overflow (%s)", text)}
	}
	return token{t: tDouble, f: f, s: text, col: start}, nil
}

// Binding strengths, lowest first, as in pgbench's grammar (taken from SQL's).
const (
	precOr = iota + 1
	precAnd
	precNot
	precIs // IS, ISNULL, NOTNULL
	precCmp
	precBit // | # & << >> and prefix ~
	precAdd
	precMul
	precUnary
)

// parser is a precedence-climbing parser that yields the same trees as pgbench's
// bison grammar: comparisons do not chain, a > b is b < a, -x is 0 - x, ~x is -1 # x.
type parser struct {
	lex   lexer
	tok   token
	depth int
}

// parseExpr parses a whole expression (the rest of a \set, \if or \elif line).
func parseExpr(src string) (*node, error) {
	if len(src) > maxExprLen {
		return nil, &exprError{0, fmt.Sprintf("expression longer than %d bytes", maxExprLen)}
	}
	p := &parser{lex: lexer{src: src}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.t == tEnd {
		return nil, &exprError{p.tok.col, "missing expression"}
	}
	n, err := p.expr(precOr)
	if err != nil {
		return nil, err
	}
	if p.tok.t != tEnd {
		return nil, p.unexpected("an operator or the end of the expression")
	}
	return n, nil
}

func (p *parser) advance() error {
	t, err := p.lex.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) unexpected(want string) error {
	got := "the end of the expression"
	if p.tok.t != tEnd {
		got = fmt.Sprintf("%q", p.tok.s)
		if p.tok.t == tVar {
			got = fmt.Sprintf("%q", ":"+p.tok.s)
		}
	}
	return &exprError{p.tok.col, fmt.Sprintf("syntax error: expected %s, got %s", want, got)}
}

func (p *parser) isOp(s string) bool { return p.tok.t == tOp && p.tok.s == s }

// binary returns the binding strength of the current token as an infix or postfix
// operator, or 0.
func (p *parser) binary() int {
	switch p.tok.t {
	case tOr:
		return precOr
	case tAnd:
		return precAnd
	case tIs, tIsNull, tNotNull:
		return precIs
	case tOp:
		switch p.tok.s {
		case "=", "<>", "<", ">", "<=", ">=":
			return precCmp
		case "|", "#", "&", "<<", ">>":
			return precBit
		case "+", "-":
			return precAdd
		case "*", "/", "%":
			return precMul
		}
	}
	return 0
}

func call(f fn, args ...*node) *node { return &node{fn: f, args: args} }

func intConst(i int64) *node { return &node{fn: fnConst, c: intValue(i)} }

// expr parses operators binding at least as tightly as min.
func (p *parser) expr(min int) (*node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxExprDepth {
		return nil, &exprError{p.tok.col, fmt.Sprintf("expression nested too deeply (more than %d levels)", maxExprDepth)}
	}
	left, err := p.prefix()
	if err != nil {
		return nil, err
	}
	lastCmp := false
	for {
		prec := p.binary()
		if prec == 0 || prec < min {
			return left, nil
		}
		op := p.tok
		if prec == precIs {
			if left, err = p.isTest(left); err != nil {
				return nil, err
			}
			lastCmp = false
			continue
		}
		if prec == precCmp && lastCmp {
			return nil, &exprError{op.col, fmt.Sprintf("syntax error: comparisons do not chain (%q after a comparison); use AND", op.s)}
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		right, err := p.expr(prec + 1)
		if err != nil {
			return nil, err
		}
		lastCmp = prec == precCmp
		switch op.t {
		case tOr:
			left = call(fnOr, left, right)
		case tAnd:
			left = call(fnAnd, left, right)
		default:
			left = binaryNode(op.s, left, right)
		}
	}
}

func binaryNode(op string, l, r *node) *node {
	switch op {
	case "+":
		return call(fnAdd, l, r)
	case "-":
		return call(fnSub, l, r)
	case "*":
		return call(fnMul, l, r)
	case "/":
		return call(fnDiv, l, r)
	case "%":
		return call(fnMod, l, r)
	case "=":
		return call(fnEq, l, r)
	case "<>":
		return call(fnNe, l, r)
	case "<":
		return call(fnLt, l, r)
	case "<=":
		return call(fnLe, l, r)
	case ">": // a > b is b < a, evaluated right first, as in pgbench
		return call(fnLt, r, l)
	case ">=":
		return call(fnLe, r, l)
	case "|":
		return call(fnBitOr, l, r)
	case "#":
		return call(fnBitXor, l, r)
	case "&":
		return call(fnBitAnd, l, r)
	case "<<":
		return call(fnLShift, l, r)
	default: // ">>"
		return call(fnRShift, l, r)
	}
}

// isTest parses the postfix null and boolean tests: ISNULL, NOTNULL,
// IS [NOT] NULL, IS [NOT] TRUE, IS [NOT] FALSE.
func (p *parser) isTest(left *node) (*node, error) {
	t := p.tok.t
	if err := p.advance(); err != nil {
		return nil, err
	}
	switch t {
	case tIsNull:
		return call(fnIs, left, &node{fn: fnConst, c: nullValue()}), nil
	case tNotNull:
		return call(fnNot, call(fnIs, left, &node{fn: fnConst, c: nullValue()})), nil
	}
	negate := false
	if p.tok.t == tNot {
		negate = true
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	var rhs value
	switch p.tok.t {
	case tNull:
		rhs = nullValue()
	case tBool:
		rhs = boolValue(p.tok.b)
	default:
		return nil, p.unexpected("NULL, TRUE or FALSE after IS")
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	n := call(fnIs, left, &node{fn: fnConst, c: rhs})
	if negate {
		n = call(fnNot, n)
	}
	return n, nil
}

// prefix parses a primary expression with any prefix operators.
func (p *parser) prefix() (*node, error) {
	t := p.tok
	switch {
	case t.t == tOp && (t.s == "-" || t.s == "+"):
		if err := p.advance(); err != nil {
			return nil, err
		}
		if t.s == "-" && p.tok.t == tMaxIntPlusOne {
			if err := p.advance(); err != nil {
				return nil, err
			}
			return intConst(math.MinInt64), nil
		}
		operand, err := p.expr(precUnary)
		if err != nil {
			return nil, err
		}
		if t.s == "+" {
			return operand, nil
		}
		// Fold the negation of a numeric constant, so that constant arguments such
		// as random_gaussian(1, 10, -1.0) are checked when the script is loaded.
		if operand.fn == fnConst && operand.c.k == kDouble {
			return &node{fn: fnConst, c: doubleValue(0 - operand.c.float())}, nil
		}
		if operand.fn == fnConst && operand.c.k == kInt && operand.c.int() != math.MinInt64 {
			return intConst(-operand.c.int()), nil
		}
		return call(fnSub, intConst(0), operand), nil
	case t.t == tOp && t.s == "~":
		if err := p.advance(); err != nil {
			return nil, err
		}
		operand, err := p.expr(precBit + 1)
		if err != nil {
			return nil, err
		}
		return call(fnBitXor, intConst(-1), operand), nil
	case t.t == tNot:
		if err := p.advance(); err != nil {
			return nil, err
		}
		operand, err := p.expr(precNot)
		if err != nil {
			return nil, err
		}
		return call(fnNot, operand), nil
	}
	return p.primary()
}

func (p *parser) primary() (*node, error) {
	t := p.tok
	var n *node
	switch t.t {
	case tInt:
		n = intConst(t.i)
	case tDouble:
		n = &node{fn: fnConst, c: doubleValue(t.f)}
	case tBool:
		n = &node{fn: fnConst, c: boolValue(t.b)}
	case tNull:
		n = &node{fn: fnConst, c: nullValue()}
	case tVar:
		n = &node{fn: fnVar, name: t.s}
	case tMaxIntPlusOne:
		return nil, &exprError{t.col, "bigint constant overflow (9223372036854775808)"}
	case tIdent:
		return p.function()
	case tCase:
		return p.caseExpr()
	case tOp:
		if t.s == "(" {
			if err := p.advance(); err != nil {
				return nil, err
			}
			inner, err := p.expr(precOr)
			if err != nil {
				return nil, err
			}
			if !p.isOp(")") {
				return nil, p.unexpected(`")"`)
			}
			return inner, p.advance()
		}
		return nil, p.unexpected("a value, a :variable, a function call or (")
	default:
		return nil, p.unexpected("a value, a :variable, a function call or (")
	}
	return n, p.advance()
}

func (p *parser) function() (*node, error) {
	name := p.tok
	f, ok := functions[strings.ToLower(name.s)]
	if !ok {
		return nil, &exprError{name.col, fmt.Sprintf("unknown function %q (the functions are %s)", name.s, functionNames)}
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if !p.isOp("(") {
		return nil, p.unexpected(fmt.Sprintf(`"(" after the function name %s`, name.s))
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	var args []*node
	if !p.isOp(")") {
		for {
			a, err := p.expr(precOr)
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			if p.isOp(")") {
				break
			}
			if !p.isOp(",") {
				return nil, p.unexpected(`"," or ")"`)
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	lname := strings.ToLower(name.s)
	bad := func(want string) error {
		return &exprError{name.col, fmt.Sprintf("%s takes %s, got %d", lname, want, len(args))}
	}
	switch f.nargs {
	case nargsVariadic:
		if len(args) == 0 {
			return nil, bad("at least one argument")
		}
	case nargsHash:
		if len(args) < 1 || len(args) > 2 {
			return nil, bad("1 or 2 arguments (value [, seed])")
		}
		if len(args) == 1 {
			args = append(args, &node{fn: fnVar, name: "default_seed"})
		}
	case nargsPermute:
		if len(args) < 2 || len(args) > 3 {
			return nil, bad("2 or 3 arguments (i, size [, seed])")
		}
		if len(args) == 2 {
			args = append(args, &node{fn: fnVar, name: "default_seed"})
		}
	default:
		if len(args) != f.nargs {
			want := fmt.Sprintf("%d arguments", f.nargs)
			if f.nargs == 1 {
				want = "1 argument"
			}
			return nil, bad(want)
		}
	}
	n := call(f.fn, args...)
	if err := checkConstArgs(n); err != nil {
		return nil, &exprError{name.col, err.Error()}
	}
	return n, nil
}

// checkConstArgs applies the functions' argument checks at load time when the
// arguments are constants, so a script that would fail on every execution is
// rejected before the load.
func checkConstArgs(n *node) error {
	constArg := func(i int) (value, bool) {
		if n.args[i].fn == fnConst {
			return n.args[i].c, true
		}
		return value{}, false
	}
	switch n.fn {
	case fnRandom, fnRandomExponential, fnRandomGaussian, fnRandomZipfian:
		lo, ok1 := constArg(0)
		hi, ok2 := constArg(1)
		if ok1 && ok2 && lo.k == kInt && hi.k == kInt {
			if _, err := randomRange(lo.int(), hi.int()); err != nil {
				return err
			}
		}
		if n.fn != fnRandom {
			if param, ok := constArg(2); ok && (param.k == kInt || param.k == kDouble) {
				f, _ := param.toDouble()
				return checkRandomParam(n.fn, f)
			}
		}
	case fnPermute:
		if size, ok := constArg(1); ok && size.k == kInt && size.int() <= 0 {
			return errPermuteSize
		}
	}
	return nil
}

func (p *parser) caseExpr() (*node, error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	var args []*node
	for p.tok.t == tWhen {
		if err := p.advance(); err != nil {
			return nil, err
		}
		cond, err := p.expr(precOr)
		if err != nil {
			return nil, err
		}
		if p.tok.t != tThen {
			return nil, p.unexpected("THEN")
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
		then, err := p.expr(precOr)
		if err != nil {
			return nil, err
		}
		args = append(args, cond, then)
	}
	if len(args) == 0 {
		return nil, p.unexpected("WHEN after CASE")
	}
	elseNode := &node{fn: fnConst, c: nullValue()}
	if p.tok.t == tElse {
		if err := p.advance(); err != nil {
			return nil, err
		}
		e, err := p.expr(precOr)
		if err != nil {
			return nil, err
		}
		elseNode = e
	}
	if p.tok.t != tEndKw {
		return nil, p.unexpected("WHEN, ELSE or END")
	}
	return call(fnCase, append(args, elseNode)...), p.advance()
}

// walkVars calls f for every variable node of the expression.
func walkVars(n *node, f func(*node)) {
	if n.fn == fnVar {
		f(n)
	}
	for _, a := range n.args {
		walkVars(a, f)
	}
}
