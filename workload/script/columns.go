package script

import (
	"strings"
)

// A query ending in \gset or \aset sets the variables named after its result
// columns. To check scripts for undefined variables, and to know which variables
// must be kept from one execution to the next, the compiler works out those names
// from the SQL text when it safely can, the way PostgreSQL names result columns:
// an alias, a column's name, a function's name, "case", or ?column?. When it
// cannot tell (SELECT *, casts of expressions, subqueries ...), it says so, and
// the query counts as possibly setting any variable.

type sqlTokKind uint8

const (
	stIdent  sqlTokKind = iota // unquoted identifier or keyword (lower-cased)
	stQuoted                   // "quoted identifier" (unquoted text)
	stLiteral
	stParam // $n
	stOp    // operator characters
	stPunct // ( ) [ ] , ; . ::
)

type sqlTok struct {
	kind sqlTokKind
	text string
}

// sqlTokens splits SQL text into tokens, dropping white space and comments.
func sqlTokens(src string) []sqlTok {
	var out []sqlTok
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case isSpace(c):
			i++
		case strings.HasPrefix(src[i:], "--"):
			j := strings.IndexByte(src[i:], '\n')
			if j < 0 {
				return out
			}
			i += j
		case strings.HasPrefix(src[i:], "/*"):
			j := blockCommentEnd(src, i)
			if j < 0 {
				return out
			}
			i = j
		case c == '\'':
			escapes := i > 0 && (src[i-1] == 'e' || src[i-1] == 'E') && (i < 2 || !isIdentCont(src[i-2]))
			j := quoteEnd(src, i, '\'', escapes)
			if j < 0 {
				j = len(src)
			}
			if n := len(out); escapes && n > 0 && out[n-1].kind == stIdent && out[n-1].text == "e" {
				out = out[:n-1]
			}
			out = append(out, sqlTok{stLiteral, src[i:j]})
			i = j
		case c == '"':
			j := quoteEnd(src, i, '"', false)
			if j < 0 {
				j = len(src)
			}
			out = append(out, sqlTok{stQuoted, strings.ReplaceAll(src[i+1:max(j-1, i+1)], `""`, `"`)})
			i = j
		case c == '$':
			j := i + 1
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			if j > i+1 {
				out = append(out, sqlTok{stParam, src[i:j]})
				i = j
				continue
			}
			tag := dollarTag(src, i)
			if tag == "" {
				out = append(out, sqlTok{stOp, "$"})
				i++
				continue
			}
			end := strings.Index(src[i+len(tag):], tag)
			if end < 0 {
				end = len(src)
			} else {
				end += i + 2*len(tag)
			}
			out = append(out, sqlTok{stLiteral, src[i:end]})
			i = end
		case isAlpha(c):
			j := i
			for j < len(src) && isIdentCont(src[j]) {
				j++
			}
			out = append(out, sqlTok{stIdent, strings.ToLower(src[i:j])})
			i = j
		case isDigit(c) || c == '.' && i+1 < len(src) && isDigit(src[i+1]):
			j := i
			for j < len(src) && (isAlnum(src[j]) || src[j] == '.') {
				j++
			}
			out = append(out, sqlTok{stLiteral, src[i:j]})
			i = j
		case strings.HasPrefix(src[i:], "::"):
			out = append(out, sqlTok{stPunct, "::"})
			i += 2
		case strings.IndexByte("()[],;.", c) >= 0:
			out = append(out, sqlTok{stPunct, src[i : i+1]})
			i++
		default:
			j := i
			for j < len(src) && strings.IndexByte("+-*/<>=~!@#%^&|`?:", src[j]) >= 0 {
				j++
			}
			if j == i {
				j++
			}
			out = append(out, sqlTok{stOp, src[i:j]})
			i = j
		}
	}
	return out
}

// resultColumns returns the names of the columns of each statement's result
// (statements are separated by ;), and whether it could tell them all.
func resultColumns(sql string, lastOnly bool) (names []string, known bool) {
	toks := sqlTokens(sql)
	var stmts [][]sqlTok
	start, depth := 0, 0
	for i, t := range toks {
		switch {
		case t.kind == stPunct && (t.text == "(" || t.text == "["):
			depth++
		case t.kind == stPunct && (t.text == ")" || t.text == "]"):
			depth--
		case t.kind == stPunct && t.text == ";" && depth == 0:
			if i > start {
				stmts = append(stmts, toks[start:i])
			}
			start = i + 1
		}
	}
	if start < len(toks) {
		stmts = append(stmts, toks[start:])
	}
	if lastOnly && len(stmts) > 0 {
		stmts = stmts[len(stmts)-1:]
	}
	for _, s := range stmts {
		cols, ok := statementColumns(s)
		if !ok {
			return nil, false
		}
		names = append(names, cols...)
	}
	return names, true
}

func isWord(t sqlTok, w string) bool { return t.kind == stIdent && t.text == w }

// depthScan calls f for each token with its nesting depth (parentheses, brackets
// and CASE ... END); f returns false to stop.
func depthScan(toks []sqlTok, f func(i, depth int) bool) {
	depth := 0
	for i, t := range toks {
		opens := t.kind == stPunct && (t.text == "(" || t.text == "[") || isWord(t, "case")
		closes := t.kind == stPunct && (t.text == ")" || t.text == "]") || isWord(t, "end")
		if closes {
			depth--
		}
		if !opens && !closes && !f(i, depth) {
			return
		}
		if (opens || closes) && !f(i, depth) {
			return
		}
		if opens {
			depth++
		}
	}
}

// statementColumns names the result columns of one statement.
func statementColumns(toks []sqlTok) ([]string, bool) {
	if len(toks) == 0 {
		return nil, true
	}
	first := toks[0]
	if isWord(first, "with") {
		// The main statement is the first SELECT, INSERT, UPDATE, DELETE or MERGE
		// outside the parenthesised common table expressions.
		main := -1
		depthScan(toks[1:], func(i, depth int) bool {
			t := toks[1+i]
			if depth == 0 && t.kind == stIdent && (t.text == "select" || t.text == "insert" || t.text == "update" || t.text == "delete" || t.text == "merge") {
				main = 1 + i
				return false
			}
			return true
		})
		if main < 0 {
			return nil, false
		}
		return statementColumns(toks[main:])
	}
	if first.kind != stIdent {
		return nil, false
	}
	switch first.text {
	case "select":
		i := 1
		if i < len(toks) && isWord(toks[i], "all") {
			i++
		} else if i < len(toks) && isWord(toks[i], "distinct") {
			i++
			if i < len(toks) && isWord(toks[i], "on") {
				return nil, false
			}
		}
		end := len(toks)
		depthScan(toks[i:], func(j, depth int) bool {
			if depth == 0 && toks[i+j].kind == stIdent && selectEnds[toks[i+j].text] {
				end = i + j
				return false
			}
			return true
		})
		return targetList(toks[i:end])
	case "insert", "update", "delete", "merge":
		ret := -1
		depthScan(toks, func(i, depth int) bool {
			if depth == 0 && isWord(toks[i], "returning") {
				ret = i
				return false
			}
			return true
		})
		if ret < 0 {
			return nil, true
		}
		return targetList(toks[ret+1:])
	case "begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release",
		"set", "reset", "lock", "create", "drop", "alter", "truncate", "vacuum", "analyze",
		"grant", "revoke", "discard", "listen", "unlisten", "notify", "refresh", "cluster",
		"reindex", "comment", "prepare", "deallocate", "checkpoint", "load":
		return nil, true
	}
	return nil, false
}

// selectEnds are the keywords that end a SELECT's target list.
var selectEnds = map[string]bool{
	"from": true, "into": true, "where": true, "group": true, "having": true, "window": true,
	"union": true, "intersect": true, "except": true, "order": true, "limit": true,
	"offset": true, "fetch": true, "for": true,
}

// targetList names the items of a target list.
func targetList(toks []sqlTok) ([]string, bool) {
	var names []string
	start := 0
	ok := true
	depthScan(toks, func(i, depth int) bool {
		if depth == 0 && toks[i].kind == stPunct && toks[i].text == "," {
			name, known := itemName(toks[start:i])
			names, ok = append(names, name), known
			start = i + 1
			return ok
		}
		return true
	})
	if !ok {
		return nil, false
	}
	if start < len(toks) {
		name, known := itemName(toks[start:])
		if !known {
			return nil, false
		}
		names = append(names, name)
	}
	return names, true
}

// exprKeywords are keywords that make an item an expression (named ?column?) or
// that cannot be a bare alias.
var exprKeywords = map[string]bool{
	"and": true, "or": true, "not": true, "is": true, "isnull": true, "notnull": true,
	"in": true, "like": true, "ilike": true, "similar": true, "between": true, "overlaps": true,
	"escape": true, "null": true, "true": true, "false": true, "case": true, "when": true,
	"then": true, "else": true, "end": true, "as": true, "collate": true, "at": true,
	"any": true, "all": true, "some": true, "distinct": true, "from": true, "array": true,
	"row": true, "exists": true, "cast": true, "interval": true, "filter": true, "over": true,
	"within": true, "unknown": true, "document": true, "normalized": true, "user": true, "current_user": true, "session_user": true,
	"current_role": true, "system_user": true, "current_catalog": true, "current_schema": true,
}

func identName(t sqlTok) string { return t.text } // identifiers are lower-cased when lexed

// itemName names one target-list item as PostgreSQL would, or says it cannot.
func itemName(toks []sqlTok) (string, bool) {
	n := len(toks)
	if n == 0 {
		return "", false
	}
	// expr AS alias
	if n >= 2 && isWord(toks[n-2], "as") && (toks[n-1].kind == stIdent || toks[n-1].kind == stQuoted) {
		return identName(toks[n-1]), true
	}
	// expr alias: a name right after a token that can end an expression.
	last, prev := toks[n-1], sqlTok{kind: stOp}
	if n >= 2 {
		prev = toks[n-2]
	}
	if (last.kind == stQuoted || last.kind == stIdent && !exprKeywords[last.text]) && endsExpr(prev) {
		ambiguous := false
		depthScan(toks[:n-1], func(i, depth int) bool {
			t := toks[i]
			// After a cast or in a typed literal, a word may belong to the type
			// (double precision, interval '1' day).
			ambiguous = depth == 0 && (t.kind == stPunct && t.text == "::" || t.kind == stIdent && typeWords[t.text])
			return !ambiguous
		})
		if ambiguous {
			return "", false
		}
		return identName(last), true
	}
	return exprName(toks)
}

// endsExpr reports whether an expression can end with t, so that a name after it
// is an alias.
func endsExpr(t sqlTok) bool {
	switch t.kind {
	case stQuoted, stLiteral, stParam:
		return true
	case stIdent:
		return !exprKeywords[t.text] || t.text == "null" || t.text == "true" || t.text == "false" || t.text == "end"
	case stPunct:
		return t.text == ")" || t.text == "]"
	}
	return false
}

// typeWords appear in type names and typed literals, where a following word may
// be part of the type rather than an alias.
var typeWords = map[string]bool{
	"interval": true, "time": true, "timestamp": true, "date": true, "zone": true, "precision": true,
	"varying": true, "with": true, "without": true, "year": true, "month": true, "day": true,
	"hour": true, "minute": true, "second": true, "national": true, "character": true, "char": true,
	"bit": true, "double": true,
}

// operatorKeywords make an item an expression, which PostgreSQL names ?column?.
var operatorKeywords = map[string]bool{
	"and": true, "or": true, "not": true, "is": true, "isnull": true, "notnull": true,
	"in": true, "like": true, "ilike": true, "similar": true, "between": true,
	"overlaps": true, "escape": true,
}

// exprName names an expression without an alias.
func exprName(toks []sqlTok) (string, bool) {
	n := len(toks)
	hasOp, hasCast, unknown := false, false, false
	depthScan(toks, func(i, depth int) bool {
		t := toks[i]
		if depth != 0 {
			return true
		}
		switch {
		case t.kind == stOp && t.text == "*" && (i == 0 || toks[i-1].kind == stPunct && toks[i-1].text == "."):
			unknown = true // * and t.* stand for several columns
		case t.kind == stIdent && (t.text == "collate" || t.text == "at"):
			unknown = true // named after an argument or a function: not worked out here
		case t.kind == stOp || t.kind == stIdent && operatorKeywords[t.text]:
			hasOp = true
		case t.kind == stPunct && t.text == "::":
			hasCast = true
		}
		return !unknown
	})
	switch {
	case unknown:
		return "", false
	case hasOp && !hasCast:
		return "?column?", true
	case hasCast:
		// x::type is named after x when x is a column; otherwise after the type,
		// which is not worked out here.
		cut := -1
		depthScan(toks, func(i, depth int) bool {
			if depth == 0 && toks[i].kind == stPunct && toks[i].text == "::" {
				cut = i
				return false
			}
			return true
		})
		if hasOp || cut <= 0 || !isColumnRef(toks[:cut]) || !castChain(toks[cut:]) {
			return "", false
		}
		return exprName(toks[:cut])
	}
	first := toks[0]
	switch {
	case n == 1 && (first.kind == stLiteral || first.kind == stParam):
		return "?column?", true
	case n == 1 && first.kind == stIdent && (first.text == "true" || first.text == "false"):
		return "bool", true
	case n == 1 && isWord(first, "null"):
		return "?column?", true
	case isWord(first, "case") && isWord(toks[n-1], "end"):
		return "case", true
	case (isWord(first, "array") || isWord(first, "row") || isWord(first, "exists")) && n >= 3 &&
		toks[1].kind == stPunct && (toks[1].text == "(" || toks[1].text == "[") && closesAt(toks, 1) == n-1:
		return first.text, true
	case isColumnRef(toks):
		last := toks[n-1]
		if last.kind == stIdent && exprKeywords[last.text] {
			return "", false
		}
		return identName(last), true
	}
	// f(...), s.f(...)
	p := 0
	for p < n && (toks[p].kind == stIdent || toks[p].kind == stQuoted || toks[p].kind == stPunct && toks[p].text == ".") {
		p++
	}
	if p > 0 && p < n && toks[p].kind == stPunct && toks[p].text == "(" && closesAt(toks, p) == n-1 && isColumnRef(toks[:p]) {
		name := identName(toks[p-1])
		switch name {
		case "trim", "extract", "cast", "treat", "collation", "normalize", "xmlelement", "xmlforest", "xmlparse",
			"xmlpi", "xmlroot", "xmlserialize", "xmlexists", "json_object", "json_array":
			return "", false
		}
		if toks[p-1].kind == stIdent && exprKeywords[name] {
			return "", false
		}
		return name, true
	}
	return "", false
}

// castChain reports whether toks is a chain of simple casts: ::name[.name][(...)][[]]...
func castChain(toks []sqlTok) bool {
	i := 0
	for i < len(toks) {
		if !(toks[i].kind == stPunct && toks[i].text == "::") || i+1 >= len(toks) {
			return false
		}
		i++
		if toks[i].kind != stIdent && toks[i].kind != stQuoted {
			return false
		}
		i++
		if i+1 < len(toks) && toks[i].kind == stPunct && toks[i].text == "." && (toks[i+1].kind == stIdent || toks[i+1].kind == stQuoted) {
			i += 2
		}
		if i < len(toks) && toks[i].kind == stPunct && toks[i].text == "(" {
			end := closesAt(toks, i)
			if end < 0 {
				return false
			}
			i = end + 1
		}
		for i+1 < len(toks) && toks[i].kind == stPunct && toks[i].text == "[" && toks[i+1].kind == stPunct && toks[i+1].text == "]" {
			i += 2
		}
	}
	return true
}

// isColumnRef reports whether toks is name(.name)*.
func isColumnRef(toks []sqlTok) bool {
	if len(toks)%2 == 0 {
		return false
	}
	for i, t := range toks {
		if i%2 == 0 && t.kind != stIdent && t.kind != stQuoted {
			return false
		}
		if i%2 == 1 && !(t.kind == stPunct && t.text == ".") {
			return false
		}
	}
	return true
}

// closesAt returns the index of the bracket closing the one at open, or -1.
func closesAt(toks []sqlTok, open int) int {
	depth := 0
	for i := open; i < len(toks); i++ {
		t := toks[i]
		if t.kind != stPunct {
			continue
		}
		switch t.text {
		case "(", "[":
			depth++
		case ")", "]":
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}
