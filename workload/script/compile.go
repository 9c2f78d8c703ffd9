package script

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Built-in variables, in their fixed slots. A script may overwrite any of them but
// :txid for the rest of an execution; each execution starts with them afresh.
const (
	slotClientID = iota
	slotSessionID
	slotScale
	slotRandomSeed
	slotDefaultSeed
	slotTxid
	numBuiltins
)

var builtinNames = [numBuiltins]string{"client_id", "session_id", "scale", "random_seed", "default_seed", "txid"}

const builtinList = ":client_id, :session_id, :scale, :random_seed, :default_seed and :txid"

// opcode is an instruction of a compiled script.
type opcode uint8

const (
	opSQL opcode = iota
	opSet
	opSleep
	opBranch // evaluate cond; jump to target when false
	opJump
)

// instr is one instruction of a compiled script.
type instr struct {
	op     opcode
	line   int
	target int   // opBranch, opJump
	slot   int   // opSet; opSleep (-1: a constant)
	expr   *node // opSet, opBranch
	stmt   *stmt // opSQL
	// opSleep
	sleepN    int64
	sleepUnit time.Duration
}

// stmt is a compiled SQL command.
type stmt struct {
	// sql is the text sent: with $1, $2 ... for a prepared statement; for a compound
	// command (joined with \;) the pieces between the variables, which are sent
	// inline as quoted literals over the simple protocol, since a prepared statement
	// holds one command.
	sql      string
	pieces   []string
	params   []int // slot of each parameter, in order
	compound bool
	txn      txnClass
	verb     string // the first keyword, lower-cased
	result   resultMode
	// columns maps a \gset or \aset result column (without the prefix) to a slot.
	columns  map[string]int
	prefix   string
	usesTxid bool
	first    string // the command's first line, for messages
	shape    string // the text with $n for every variable, to work out result columns
}

// bitset is a set of slots.
type bitset []uint64

func newBitset(n int) bitset    { return make(bitset, (n+63)/64) }
func (b bitset) has(i int) bool { return b[i/64]&(1<<(uint(i)%64)) != 0 }
func (b bitset) add(i int)      { b[i/64] |= 1 << (uint(i) % 64) }
func (b bitset) clone() bitset  { return append(bitset(nil), b...) }
func (b bitset) union(o bitset) {
	for i := range b {
		b[i] |= o[i]
	}
}
func (b bitset) intersect(o bitset) {
	for i := range b {
		b[i] &= o[i]
	}
}

// symbols gives every variable name of the workload's scripts a slot: variables
// belong to the session, not to one script, as in pgbench.
type symbols struct {
	slots map[string]int
	names []string
}

func newSymbols() *symbols {
	s := &symbols{slots: map[string]int{}}
	for _, n := range builtinNames {
		s.slot(n)
	}
	return s
}

func (s *symbols) slot(name string) int {
	if i, ok := s.slots[name]; ok {
		return i
	}
	s.slots[name] = len(s.names)
	s.names = append(s.names, name)
	return len(s.names) - 1
}

// declare gives slots to every variable the commands set or read.
func (s *symbols) declare(cmds []rawCmd) {
	for _, c := range cmds {
		switch c.kind {
		case cSet:
			s.slot(c.name)
		case cSleep:
			if c.sleepVar != "" {
				s.slot(c.sleepVar)
			}
		case cSQL:
			for _, v := range c.sql.vars {
				s.slot(v)
			}
		}
		if c.expr != nil {
			walkVars(c.expr, func(n *node) { s.slot(n.name) })
		}
	}
}

// defs is what is known about which variables are set at a point of a script: may
// holds those set on some path from the start of the execution, must those set on
// every path.
type defs struct{ may, must bitset }

func (d defs) clone() defs { return defs{d.may.clone(), d.must.clone()} }

// ifFrame is an open \if while compiling.
type ifFrame struct {
	line    int
	entry   defs
	exit    defs
	hasExit bool
	hasElse bool
	branch  int   // the pending opBranch, or -1
	jumps   []int // the opJumps to the \endif
}

// compiled is one script's program and what the compiler learned about it.
type compiled struct {
	prog     []instr
	usesTxid bool
	// liveIn is the set of slots an execution may read before setting them: their
	// values must persist from the session's previous execution.
	liveIn bitset
}

// compile checks a parsed script (undefined variables, \if structure) and
// compiles it to instructions with jumps.
func (s *symbols) compile(file string, cmds []rawCmd) (*compiled, []problem) {
	n := len(s.names)
	var problems []problem
	bad := func(line int, format string, args ...any) {
		problems = append(problems, problem{file, line, fmt.Sprintf(format, args...)})
	}
	builtins := newBitset(n)
	for i := range numBuiltins {
		builtins.add(i)
	}
	cur := defs{builtins.clone(), builtins.clone()}
	out := &compiled{liveIn: newBitset(n)}
	reported := map[string]bool{}
	use := func(line int, name string) {
		i := s.slots[name]
		if i == slotTxid {
			out.usesTxid = true
		}
		if !cur.may.has(i) {
			key := fmt.Sprintf("%d:%s", line, name)
			if !reported[key] {
				reported[key] = true
				bad(line, "undefined variable :%s: set it with \\set (or a query ending in \\gset) before this line, or use a built-in (%s)", name, builtinList)
			}
			return
		}
		if !cur.must.has(i) {
			out.liveIn.add(i)
		}
	}
	useExpr := func(line int, e *node) {
		if e == nil {
			return
		}
		walkVars(e, func(v *node) {
			use(line, v.name)
			v.slot = s.slots[v.name]
		})
	}
	set := func(i int) {
		cur.may.add(i)
		cur.must.add(i)
	}
	var stack []*ifFrame
	merge := func(f *ifFrame, d defs) {
		if !f.hasExit {
			f.exit, f.hasExit = d.clone(), true
			return
		}
		f.exit.may.union(d.may)
		f.exit.must.intersect(d.must)
	}
	emit := func(in instr) int {
		out.prog = append(out.prog, in)
		return len(out.prog) - 1
	}
	for _, c := range cmds {
		switch c.kind {
		case cSet:
			useExpr(c.line, c.expr)
			if c.name == "txid" {
				bad(c.line, `\set txid: :txid is set by rehearse for every execution and cannot be set; choose another name`)
				continue
			}
			i := s.slots[c.name]
			set(i)
			emit(instr{op: opSet, line: c.line, slot: i, expr: c.expr})
		case cSleep:
			in := instr{op: opSleep, line: c.line, slot: -1, sleepN: c.sleepN, sleepUnit: c.sleepUnit}
			if c.sleepVar != "" {
				use(c.line, c.sleepVar)
				in.slot = s.slots[c.sleepVar]
			}
			emit(in)
		case cSQL:
			st, err := s.statement(c.sql)
			if err != nil {
				bad(c.line, "%v", err)
				continue
			}
			for _, v := range c.sql.vars {
				use(c.line, v)
			}
			if st.usesTxid {
				out.usesTxid = true
			}
			// A query ending in \gset sets the variables named after its columns,
			// \aset may (a query returning no row sets nothing). When the columns
			// cannot be worked out from the text, any variable with the prefix may be
			// set, and none surely is.
			if st.result != resultNone {
				cols, known := resultColumns(st.shape, st.result == resultGset)
				if !known {
					for _, i := range st.columns {
						cur.may.add(i)
					}
				}
				for _, col := range cols {
					if i, ok := st.columns[col]; ok {
						cur.may.add(i)
						if st.result == resultGset {
							cur.must.add(i)
						}
					}
				}
			}
			emit(instr{op: opSQL, line: c.line, stmt: st})
		case cIf:
			useExpr(c.line, c.expr)
			f := &ifFrame{line: c.line, entry: cur.clone()}
			f.branch = emit(instr{op: opBranch, line: c.line, expr: c.expr})
			stack = append(stack, f)
		case cElif, cElse:
			what := map[cmdKind]string{cElif: `\elif`, cElse: `\else`}[c.kind]
			if len(stack) == 0 {
				bad(c.line, "%s without a matching \\if: add the \\if, or remove this line", what)
				continue
			}
			f := stack[len(stack)-1]
			if f.hasElse {
				bad(c.line, "%s after \\else (the \\if at line %d): \\else must be the last branch", what, f.line)
				continue
			}
			merge(f, cur)
			f.jumps = append(f.jumps, emit(instr{op: opJump, line: c.line}))
			cur = f.entry.clone()
			out.prog[f.branch].target = len(out.prog)
			f.branch = -1
			if c.kind == cElif {
				useExpr(c.line, c.expr)
				f.branch = emit(instr{op: opBranch, line: c.line, expr: c.expr})
			} else {
				f.hasElse = true
			}
		case cEndif:
			if len(stack) == 0 {
				bad(c.line, "\\endif without a matching \\if: add the \\if, or remove this line")
				continue
			}
			f := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			merge(f, cur)
			if !f.hasElse {
				merge(f, f.entry)
			}
			cur = f.exit
			end := len(out.prog)
			if f.branch >= 0 {
				out.prog[f.branch].target = end
			}
			for _, j := range f.jumps {
				out.prog[j].target = end
			}
		}
	}
	for _, f := range stack {
		bad(f.line, "\\if without a matching \\endif: add \\endif after its last branch")
	}
	return out, problems
}

// statement compiles an SQL command: its text with parameters, the slots of its
// parameters, and the slots its \gset or \aset may set.
func (s *symbols) statement(t *sqlText) (*stmt, error) {
	st := &stmt{compound: t.compound, txn: t.txn, verb: t.verb, result: t.result, prefix: t.prefix}
	var b strings.Builder
	for i, piece := range t.pieces {
		b.WriteString(piece)
		if i < len(t.vars) {
			slot := s.slots[t.vars[i]]
			st.params = append(st.params, slot)
			st.usesTxid = st.usesTxid || slot == slotTxid
			if !t.compound {
				// One parameter per reference, as pgbench does: each may be inferred a
				// different type.
				b.WriteString("$" + strconv.Itoa(len(st.params)))
			}
		}
	}
	var shape strings.Builder
	for i, piece := range t.pieces {
		shape.WriteString(piece)
		if i < len(t.vars) {
			shape.WriteString(" $" + strconv.Itoa(i+1) + " ")
		}
	}
	st.shape = shape.String()
	if len(st.params) > 65535 {
		return nil, fmt.Errorf("the command uses %d variables; PostgreSQL takes at most 65535 parameters", len(st.params))
	}
	if t.compound {
		st.pieces = t.pieces
	}
	if !t.compound {
		st.sql = b.String()
	}
	var full strings.Builder
	for i, piece := range t.pieces {
		full.WriteString(piece)
		if i < len(t.vars) {
			full.WriteString(":" + t.vars[i])
		}
	}
	st.first = firstLine(full.String())
	if st.result != resultNone {
		st.columns = map[string]int{}
		for name, i := range s.slots {
			if strings.HasPrefix(name, st.prefix) && i != slotTxid {
				st.columns[name[len(st.prefix):]] = i
			}
		}
	}
	return st, nil
}

// firstLine shortens a command to its first line, for messages.
func firstLine(sql string) string {
	if i := strings.IndexByte(sql, '\n'); i >= 0 {
		sql = sql[:i] + " …"
	}
	if r := []rune(sql); len(r) > 80 {
		sql = string(r[:77]) + "…"
	}
	return sql
}
