package script

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A script is parsed the way pgbench parses one: SQL commands end at a semicolon
// outside quotes, comments and parentheses (so they may span lines), "\;" joins two
// commands into one round trip, and a backslash starts a meta-command that runs to
// the end of its line (a backslash before the newline continues it).

// cmdKind is the kind of a parsed command.
type cmdKind uint8

const (
	cSQL cmdKind = iota
	cSet
	cSleep
	cIf
	cElif
	cElse
	cEndif
)

// resultMode says what happens to a query's result: discarded, or stored in
// variables by \gset (exactly one row) or \aset (every query of a compound command
// that returns rows).
type resultMode uint8

const (
	resultNone resultMode = iota
	resultGset
	resultAset
)

// txnClass classifies a statement by its first keyword, to know whether it can
// commit: BEGIN and ROLLBACK never do, COMMIT does inside a transaction block, and
// anything else does outside one.
type txnClass uint8

const (
	txnOther txnClass = iota
	txnBegin
	txnCommit
	txnRollback
)

// sqlText is an SQL command as written, cut at its :variable references: the
// text is pieces[0] vars[0] pieces[1] ... vars[n-1] pieces[n].
type sqlText struct {
	pieces   []string
	vars     []string
	compound bool // joined with \;
	txn      txnClass
	verb     string // the first keyword, lower-cased
	result   resultMode
	prefix   string // \gset or \aset prefix
}

// rawCmd is one parsed command, before variables are given slots.
type rawCmd struct {
	kind cmdKind
	line int
	sql  *sqlText
	// \set: the variable; \set, \if, \elif: the expression.
	name string
	expr *node
	// \sleep: a constant count or a variable, and the unit.
	sleepVar  string
	sleepN    int64
	sleepUnit time.Duration
}

// problem is one thing wrong with the input, reported as "file:line: msg".
type problem struct {
	file string
	line int
	msg  string
}

func (p problem) String() string {
	if p.line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.file, p.line, p.msg)
	}
	return fmt.Sprintf("%s: %s", p.file, p.msg)
}

// source is a script's text with its line starts, to turn offsets into lines.
type source struct {
	file  string
	text  string
	lines []int // offset of each line's first byte
}

func newSource(file, text string) *source {
	s := &source{file: file, text: text, lines: []int{0}}
	for i := 0; i < len(text); i++ {
		if text[i] == '\n' {
			s.lines = append(s.lines, i+1)
		}
	}
	return s
}

// pos returns the 1-based line and column of offset off.
func (s *source) pos(off int) (line, col int) {
	i := sort.Search(len(s.lines), func(i int) bool { return s.lines[i] > off }) - 1
	return i + 1, off - s.lines[i] + 1
}

func (s *source) line(off int) int { l, _ := s.pos(off); return l }

// scriptParser turns a script's text into commands, collecting every problem.
type scriptParser struct {
	src      *source
	pos      int
	cmds     []rawCmd
	problems []problem
}

func (p *scriptParser) problemf(off int, format string, args ...any) {
	p.problems = append(p.problems, problem{p.src.file, p.src.line(off), fmt.Sprintf(format, args...)})
}

// parseScript parses a script file's text.
func parseScript(file, text string) ([]rawCmd, []problem) {
	p := &scriptParser{src: newSource(file, text)}
	for p.pos < len(text) {
		sql, start, backslash := p.scanSQL()
		if sql != nil {
			p.cmds = append(p.cmds, rawCmd{kind: cSQL, line: p.src.line(start), sql: sql})
		}
		if backslash {
			p.meta()
		}
	}
	return p.cmds, p.problems
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// isIdentCont reports whether c continues an SQL identifier (which, unlike a
// variable name, may contain $).
func isIdentCont(c byte) bool { return isAlnum(c) || c == '$' }

// scanSQL reads one SQL command, up to and including its semicolon, or up to a
// backslash that starts a meta-command, or to the end of the text. It returns nil
// for a command holding only white space and comments.
func (p *scriptParser) scanSQL() (sql *sqlText, start int, backslash bool) {
	src := p.src.text
	var (
		cur        strings.Builder // the current piece
		t          sqlText
		started    bool
		depth      int // parentheses
		beginDepth int // BEGIN ATOMIC ... END in CREATE FUNCTION bodies
		idents     []string
		firstWord  string
	)
	start = p.pos
	emit := func(s string, significant bool) {
		if significant && !started {
			started = true
			start = p.pos
		}
		if started {
			cur.WriteString(s)
		}
	}
	finish := func() *sqlText {
		if !started {
			return nil
		}
		t.pieces = append(t.pieces, strings.TrimRightFunc(cur.String(), func(r rune) bool { return r < 0x80 && isSpace(byte(r)) }))
		t.txn = classify(firstWord)
		t.verb = firstWord
		return &t
	}
	for p.pos < len(src) {
		c := src[p.pos]
		switch {
		case isSpace(c):
			emit(src[p.pos:p.pos+1], false)
			p.pos++
		case strings.HasPrefix(src[p.pos:], "--"):
			end := strings.IndexByte(src[p.pos:], '\n')
			if end < 0 {
				end = len(src) - p.pos
			}
			emit(src[p.pos:p.pos+end], false)
			p.pos += end
		case strings.HasPrefix(src[p.pos:], "/*"):
			end := blockCommentEnd(src, p.pos)
			if end < 0 {
				p.problemf(p.pos, "unterminated /* comment: close it with */")
				end = len(src)
			}
			emit(src[p.pos:end], false)
			p.pos = end
		case c == '\'':
			escapes := p.pos > 0 && (src[p.pos-1] == 'e' || src[p.pos-1] == 'E') &&
				(p.pos < 2 || !isIdentCont(src[p.pos-2]))
			end := quoteEnd(src, p.pos, '\'', escapes)
			if end < 0 {
				p.problemf(p.pos, "unterminated quoted string: close it with '")
				end = len(src)
			}
			emit(src[p.pos:end], true)
			p.pos = end
		case c == '"':
			end := quoteEnd(src, p.pos, '"', false)
			if end < 0 {
				p.problemf(p.pos, `unterminated quoted identifier: close it with "`)
				end = len(src)
			}
			emit(src[p.pos:end], true)
			p.pos = end
		case c == '$':
			if p.pos+1 < len(src) && isDigit(src[p.pos+1]) {
				p.problemf(p.pos, "positional parameters such as $1 are not supported in scripts: use :variables, which become parameters")
				emit("$", true)
				p.pos++
				continue
			}
			tag := dollarTag(src, p.pos)
			if tag == "" {
				emit("$", true)
				p.pos++
				continue
			}
			end := strings.Index(src[p.pos+len(tag):], tag)
			if end < 0 {
				p.problemf(p.pos, "unterminated dollar-quoted string: close it with %s", tag)
				emit(src[p.pos:], true)
				p.pos = len(src)
				continue
			}
			end += p.pos + 2*len(tag)
			emit(src[p.pos:end], true)
			p.pos = end
		case isAlpha(c):
			end := p.pos
			for end < len(src) && isIdentCont(src[end]) {
				end++
			}
			word := src[p.pos:end]
			lw := strings.ToLower(word)
			if firstWord == "" {
				firstWord = lw
			}
			if len(idents) < 4 {
				idents = append(idents, lw)
			}
			if depth == 0 && isRoutine(idents) {
				switch {
				case lw == "begin":
					beginDepth++
				case lw == "case" && beginDepth > 0:
					beginDepth++
				case lw == "end" && beginDepth > 0:
					beginDepth--
				}
			}
			emit(word, true)
			p.pos = end
		case isDigit(c):
			end := p.pos
			for end < len(src) && (isAlnum(src[end]) || src[end] == '.') {
				end++
			}
			emit(src[p.pos:end], true)
			p.pos = end
		case c == '(':
			depth++
			emit("(", true)
			p.pos++
		case c == ')':
			depth = max(depth-1, 0)
			emit(")", true)
			p.pos++
		case c == ';':
			p.pos++
			if depth == 0 && beginDepth == 0 {
				return finish(), start, false
			}
			emit(";", true)
		case c == ':':
			end := p.pos + 1
			switch {
			case end < len(src) && src[end] == ':':
				// A cast (::type), never a variable.
				for end < len(src) && src[end] == ':' {
					end++
				}
				emit(src[p.pos:end], true)
			case end < len(src) && isAlpha(src[end]):
				for end < len(src) && isAlnum(src[end]) {
					end++
				}
				emit("", true)
				t.pieces = append(t.pieces, cur.String())
				t.vars = append(t.vars, src[p.pos+1:end])
				cur.Reset()
			default:
				emit(":", true)
			}
			p.pos = end
		case c == '\\':
			if p.pos+1 < len(src) && (src[p.pos+1] == ';' || src[p.pos+1] == ':') {
				// \; joins commands into one round trip; \: is a literal colon.
				if src[p.pos+1] == ';' {
					t.compound = true
					idents = idents[:0]
				}
				emit(src[p.pos+1:p.pos+2], true)
				p.pos += 2
				continue
			}
			p.pos++
			return finish(), start, true
		default:
			emit(src[p.pos:p.pos+1], true)
			p.pos++
		}
	}
	return finish(), start, false
}

// isRoutine reports whether the statement's first words are CREATE [OR REPLACE]
// FUNCTION or PROCEDURE, whose SQL-standard body (BEGIN ATOMIC ... END) holds
// semicolons that do not end the command.
func isRoutine(w []string) bool {
	routine := func(s string) bool { return s == "function" || s == "procedure" }
	if len(w) < 2 || w[0] != "create" {
		return false
	}
	return routine(w[1]) || len(w) >= 4 && w[1] == "or" && w[2] == "replace" && routine(w[3])
}

func classify(first string) txnClass {
	switch first {
	case "begin", "start":
		return txnBegin
	case "commit", "end":
		return txnCommit
	case "rollback", "abort":
		return txnRollback
	}
	return txnOther
}

// blockCommentEnd returns the offset after the /* comment at i (they nest), or -1.
func blockCommentEnd(src string, i int) int {
	depth := 0
	for i < len(src)-1 {
		switch {
		case src[i] == '/' && src[i+1] == '*':
			depth++
			i += 2
		case src[i] == '*' && src[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return -1
}

// quoteEnd returns the offset after the quoted string or identifier at i, where a
// doubled quote stands for itself and, in E” strings, a backslash escapes the next
// character; or -1.
func quoteEnd(src string, i int, q byte, escapes bool) int {
	for j := i + 1; j < len(src); j++ {
		switch {
		case escapes && src[j] == '\\':
			j++
		case src[j] == q:
			if j+1 < len(src) && src[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return -1
}

// dollarTag returns the $tag$ or $$ opening a dollar-quoted string at i, or "".
func dollarTag(src string, i int) string {
	j := i + 1
	if j < len(src) && isAlpha(src[j]) {
		for j < len(src) && isAlnum(src[j]) {
			j++
		}
	}
	if j < len(src) && src[j] == '$' {
		return src[i : j+1]
	}
	return ""
}

// metaLine returns the end of the meta-command line starting at i: the offset of
// its newline (or the end of the text), skipping backslash-newline continuations.
func metaLineEnd(src string, i int) int {
	for i < len(src) {
		switch {
		case src[i] == '\\' && strings.HasPrefix(src[i+1:], "\n"):
			i += 2
		case src[i] == '\\' && strings.HasPrefix(src[i+1:], "\r\n"):
			i += 3
		case src[i] == '\n':
			return i
		default:
			i++
		}
	}
	return i
}

// words splits a meta-command's arguments at white space, treating continuations
// as white space, and returns each word with its offset.
func words(src string, from, to int) (ws []string, offs []int) {
	i := from
	for i < to {
		for i < to && (isSpace(src[i]) || src[i] == '\\' && i+1 < to && (src[i+1] == '\n' || src[i+1] == '\r')) {
			i++
		}
		if i >= to {
			break
		}
		j := i
		for j < to && !isSpace(src[j]) && !(src[j] == '\\' && j+1 < to && (src[j+1] == '\n' || src[j+1] == '\r')) {
			j++
		}
		ws = append(ws, src[i:j])
		offs = append(offs, i)
		i = j
	}
	return ws, offs
}

// Meta-commands pgbench has and rehearse does not run, with what to do instead.
var unsupported = map[string]string{
	"shell":         "rehearse does not run shell commands during a load; do that work in SQL, or before the run",
	"setshell":      "rehearse does not run shell commands during a load; compute the value with \\set or with a query and \\gset",
	"startpipeline": "each command is one round trip; remove \\startpipeline and \\endpipeline (or join commands with \\; to send them together)",
	"endpipeline":   "each command is one round trip; remove \\startpipeline and \\endpipeline (or join commands with \\; to send them together)",
	"syncpipeline":  "each command is one round trip; remove the pipeline commands (or join commands with \\; to send them together)",
}

// meta parses the meta-command whose backslash is just before p.pos.
func (p *scriptParser) meta() {
	src := p.src.text
	at := p.pos - 1 // the backslash
	end := metaLineEnd(src, p.pos)
	defer func() {
		p.pos = min(end+1, len(src))
	}()
	ws, offs := words(src, p.pos, end)
	line := p.src.line(at)
	if len(ws) == 0 {
		p.problemf(at, `a lone backslash is not a meta-command: remove it, or write \; to join commands`)
		return
	}
	name := strings.ToLower(ws[0])
	args, argOffs := ws[1:], offs[1:]
	cmd := rawCmd{line: line}
	switch name {
	case "set":
		if len(args) == 0 {
			p.problemf(at, `\set: missing variable name and expression: write \set name expression`)
			return
		}
		cmd.kind, cmd.name = cSet, args[0]
		if !validName(args[0]) {
			p.problemf(at, `\set: invalid variable name %q: use letters, digits and underscores, not starting with a digit`, args[0])
			return
		}
		// A \set whose expression is wrong still names its variable, so later uses
		// are not reported as undefined too.
		cmd.expr = p.expression(argOffs[0]+len(args[0]), end, `\set `+args[0])
	case "if", "elif":
		cmd.kind = cIf
		if name == "elif" {
			cmd.kind = cElif
		}
		cmd.expr = p.expression(offs[0]+len(ws[0]), end, `\`+name)
	case "else", "endif":
		cmd.kind = cElse
		if name == "endif" {
			cmd.kind = cEndif
		}
		if len(args) > 0 {
			p.problemf(at, `\%s takes no argument, got %q: put the condition on \if or \elif`, name, strings.Join(args, " "))
		}
	case "sleep":
		if !p.sleep(&cmd, at, args) {
			return
		}
	case "gset", "aset":
		p.resultMeta(at, name, args)
		return
	default:
		if hint, ok := unsupported[name]; ok {
			p.problemf(at, `\%s is not supported: %s`, ws[0], hint)
		} else {
			p.problemf(at, `\%s is not supported: it is not a pgbench meta-command (rehearse runs \set, \sleep, \if, \elif, \else, \endif, \gset and \aset)`, ws[0])
		}
		return
	}
	p.cmds = append(p.cmds, cmd)
}

// expression parses the expression in src[from:to], reporting a problem at the
// line and column where it went wrong.
func (p *scriptParser) expression(from, to int, what string) *node {
	n, err := parseExpr(p.src.text[from:to])
	if err == nil {
		return n
	}
	var ee *exprError
	if !errors.As(err, &ee) {
		p.problemf(from, "%s: %v", what, err)
		return nil
	}
	off := from + ee.col
	line, col := p.src.pos(off)
	p.problems = append(p.problems, problem{p.src.file, line, fmt.Sprintf("%s: %s (column %d)", what, ee.msg, col)})
	return nil
}

func (p *scriptParser) sleep(cmd *rawCmd, at int, args []string) bool {
	cmd.kind = cSleep
	switch {
	case len(args) == 0:
		p.problemf(at, `\sleep: missing duration: write \sleep 10 ms (us, ms or s; seconds by default) or \sleep :variable ms`)
		return false
	case len(args) > 2:
		p.problemf(at, `\sleep: too many arguments %q: write \sleep N [us|ms|s]`, strings.Join(args, " "))
		return false
	}
	num, unit := args[0], ""
	if len(args) == 2 {
		unit = args[1]
	}
	if strings.HasPrefix(num, ":") {
		cmd.sleepVar = num[1:]
		if !validName(cmd.sleepVar) {
			p.problemf(at, `\sleep: invalid variable name %q`, num)
			return false
		}
	} else {
		// The number and its unit may be written together, as in \sleep 10ms.
		i := 0
		if i < len(num) && (num[i] == '+' || num[i] == '-') {
			i++
		}
		j := i
		for j < len(num) && isDigit(num[j]) {
			j++
		}
		if j == i || j < len(num) && unit != "" {
			p.problemf(at, `\sleep: invalid duration %q: it must be an integer, optionally followed by us, ms or s`, num)
			return false
		}
		if j < len(num) {
			unit = num[j:]
		}
		n, err := strconv.ParseInt(num[:j], 10, 64)
		if err != nil {
			p.problemf(at, `\sleep: duration %q is out of range`, num)
			return false
		}
		cmd.sleepN = n
	}
	switch strings.ToLower(unit) {
	case "", "s":
		cmd.sleepUnit = time.Second
	case "ms":
		cmd.sleepUnit = time.Millisecond
	case "us":
		cmd.sleepUnit = time.Microsecond
	default:
		p.problemf(at, `\sleep: unknown time unit %q: use us, ms or s`, unit)
		return false
	}
	return true
}

// resultMeta attaches \gset or \aset to the SQL command just before it.
func (p *scriptParser) resultMeta(at int, name string, args []string) {
	if len(args) > 1 {
		p.problemf(at, `\%s: too many arguments %q: it takes at most a variable name prefix`, name, strings.Join(args, " "))
		return
	}
	n := len(p.cmds)
	if n == 0 || p.cmds[n-1].kind != cSQL || p.cmds[n-1].sql.result != resultNone {
		p.problemf(at, `\%s must follow an SQL command: end the query with \%s instead of its semicolon`, name, name)
		return
	}
	s := p.cmds[n-1].sql
	s.result = resultGset
	if name == "aset" {
		s.result = resultAset
	}
	if len(args) == 1 {
		s.prefix = args[0]
	}
}

// validName reports whether s is a variable name pgbench accepts: letters (any
// non-ASCII byte counts as one), digits and underscores, not starting with a digit.
func validName(s string) bool {
	if s == "" || isDigit(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return true
}
