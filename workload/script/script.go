// Package script is the script workload: a team's own transactions, written in
// pgbench's script language, run as a rehearsal's load.
//
// A file that runs under `pgbench -M prepared -f` runs here unchanged: SQL commands
// (each a statement prepared once per connection, its :variables its parameters,
// sent as text), \set with pgbench's expression language and functions, \sleep,
// \if/\elif/\else/\endif, and \gset/\aset. What pgbench has and rehearse does
// not run (\shell, \setshell, pipelines) is rejected when the workload is built,
// with the file and line, never skipped; so are undefined variables, bad
// expressions and unbalanced conditionals, all at once.
//
// Each script file is one operation, drawn by weight. A session is one simulated
// user, pgbench's client: its variables persist from one execution to the next,
// and :client_id and :session_id (the same number: a rehearse session is what
// pgbench calls a client) are its index. :scale, :random_seed and :default_seed
// are built in too, and rehearse adds :txid, a fresh UUID per execution, as text: a
// write script that stores it lets Verify check that every acknowledged execution
// left its row exactly once, on any schema. Invariants, queries with an expected
// value, are checked before and after the load.
//
// The engine's sequence is New, Setup (on the writer), Baseline (on the writer,
// after Setup and before the load), the load, then Verify (on the writer).
//
// Where it differs from pgbench:
//   - A NULL stored by \gset or \aset, or set by \set, is sent as SQL NULL
//     (pgbench sends an empty string or the text NULL).
//   - :variables inside quoted strings, quoted identifiers and comments are not
//     substituted; pgbench substitutes them, which breaks prepared statements.
//   - Built-in variables start afresh with every execution: a script may overwrite
//     them (not :txid) for the rest of that execution.
//   - Each session draws its random values from its own stream, seeded from the
//     seed and the session's index, so runs repeat but the values are not
//     pgbench's; hash and permute give pgbench's values. :default_seed is derived
//     from the seed.
//   - A command joined with \; is sent in one round trip with the simple protocol,
//     its variables as quoted literals (pgbench -M prepared cannot prepare it).
//   - least and greatest take any number of arguments (pgbench: 16), a statement
//     any number of variables (pgbench: 255).
package script

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/workload"
)

// ErrInvalid is wrapped by every error about the workload's input: its
// configuration, its script, setup and invariant SQL files, and what Setup and
// Baseline find wrong with them in the database. The message lists each problem on
// a line of its own, as file:line: what is wrong and how to fix it.
var ErrInvalid = errors.New("invalid script workload")

// Config mirrors the scenario's workload section for name: script. Paths are
// already resolved (absolute or relative to the working directory).
type Config struct {
	// Setup is an SQL file run on the writer before the load when SetupCheck
	// returns no row ("" = none).
	Setup string
	// SetupCheck is SQL; setup runs only when it returns no row ("" = always run
	// setup if given).
	SetupCheck string
	// Scripts are the transactions, at least one.
	Scripts []ScriptFile
	// Invariants are checked before and after the load.
	Invariants []Invariant
	// Acknowledged names where write scripts store :txid; nil = no lost-write check.
	Acknowledged *Acknowledged
	// Scale is :scale (default 1).
	Scale int
	// Seed is :random_seed and seeds every session's random functions.
	Seed uint64
}

// ScriptFile is one script and how often it runs.
type ScriptFile struct {
	// File is the script's path.
	File string
	// Weight is the script's share of the executions; it must be positive.
	Weight float64
	// Kind is "write" (default, run on the writer) or "read" (run on the reader).
	Kind string
}

// Invariant is an SQL query returning one value, checked before and after the load.
type Invariant struct {
	// Name names the invariant in results.
	Name string
	// SQL returns exactly one row with one column.
	SQL string
	// Expect is "unchanged" (the value after the load equals the value before) or a
	// number both values must equal, e.g. "0".
	Expect string
}

// Acknowledged is the table and column in which write scripts store :txid. Each
// acknowledged execution of a write script that uses :txid must leave exactly one
// row holding it: Verify reports a missing one as a lost write and extra ones as
// duplicates. An execution whose statements using :txid did not run (skipped by
// \if) is not checked.
type Acknowledged struct {
	// Table is the table's name as SQL would write it, optionally schema-qualified.
	Table string
	// Column is the column's name as the catalog holds it; it must be of type uuid
	// or a text type.
	Column string
}

// ExpectUnchanged is the Expect of an invariant whose value must not change.
const ExpectUnchanged = "unchanged"

// Workload is the script workload. It is safe for concurrent use.
type Workload struct {
	scripts []*script
	ops     []workload.Op
	cum     []float64 // cumulative weights, in script order
	total   float64

	sym   *symbols
	scale int64
	seed  uint64
	// defaultSeed is :default_seed, the hash and permute functions' default seed.
	defaultSeed int64

	// persistent lists the slots whose values carry over from one execution of a
	// session to the next (those a script may read before setting); store keeps
	// them, per session, only for sessions that have set one.
	persistent []int
	store      *sessionStore
	frames     sync.Pool

	setupFile  string
	setup      []setupStmt
	setupCheck string

	invariants []invariant
	ack        *ackTarget
	log        outcomeLog

	saltHi, saltLo uint64
	seq            atomic.Uint64

	debugMu  sync.Mutex
	debugOut io.Writer
}

var _ workload.Workload = (*Workload)(nil)

// script is one compiled script file.
type script struct {
	file     string
	name     string
	kind     workload.Kind
	weight   float64
	prog     []instr
	tracked  bool // a write script storing :txid, checked by Verify
	usesTxid bool // the script reads :txid
}

// invalid returns an error wrapping ErrInvalid that lists the problems.
func invalid(problems []string) error {
	return &invalidError{problems: problems, fields: make([]string, len(problems))}
}

// invalidAt is invalid for problems with fields of the workload's configuration:
// fields[i] names the one problems[i] is about, as the scenario's workload section
// spells it ("invariants[1].sql"), or is "" when the problem names its own place.
func invalidAt(fields, problems []string) error {
	return &invalidError{problems: problems, fields: fields}
}

type invalidError struct{ problems, fields []string }

// Problems returns the problems of an error wrapping ErrInvalid, one by one, and
// the field of the workload's configuration each is about ("" when the problem
// names its own place, a file and line, or is about no one field). An error that
// is not one of the workload's returns nothing.
func Problems(err error) (fields, problems []string) {
	var ie *invalidError
	if !errors.As(err, &ie) {
		return nil, nil
	}
	return ie.fields, ie.problems
}

func (e *invalidError) Error() string { return strings.Join(e.problems, "\n") }
func (e *invalidError) Unwrap() error { return ErrInvalid }

// New reads and parses every script, the setup file and the invariants, and
// reports every problem at once in one error wrapping ErrInvalid.
func New(cfg Config) (*Workload, error) {
	w := &Workload{scale: int64(cfg.Scale), seed: cfg.Seed, sym: newSymbols()}
	var problems []problem
	var top []string // problems not in a file
	if w.scale == 0 {
		w.scale = 1
	}
	if w.scale < 0 {
		top = append(top, fmt.Sprintf("scale %d: must be positive (it is :scale)", cfg.Scale))
	}
	if len(cfg.Scripts) == 0 {
		top = append(top, "no scripts: give at least one script file")
	}
	type parsed struct {
		cmds []rawCmd
		ok   bool
	}
	files := make([]parsed, len(cfg.Scripts))
	for i, sf := range cfg.Scripts {
		s := &script{file: sf.File, weight: sf.Weight, kind: workload.Write}
		w.scripts = append(w.scripts, s)
		switch strings.ToLower(sf.Kind) {
		case "", "write":
		case "read":
			s.kind = workload.Read
		default:
			problems = append(problems, problem{sf.File, 0, fmt.Sprintf("kind %q: use write or read", sf.Kind)})
		}
		if !(sf.Weight > 0) || math.IsInf(sf.Weight, 0) {
			problems = append(problems, problem{sf.File, 0, fmt.Sprintf("weight %g: must be a positive number", sf.Weight)})
		}
		text, err := os.ReadFile(sf.File)
		if err != nil {
			problems = append(problems, problem{sf.File, 0, fmt.Sprintf("cannot read the script: %v", unwrapPath(err))})
			continue
		}
		cmds, ps := parseScript(sf.File, strings.TrimPrefix(string(text), "\ufeff"))
		problems = append(problems, ps...)
		if len(cmds) == 0 && len(ps) == 0 {
			problems = append(problems, problem{sf.File, 0, "the script is empty: write at least one SQL command"})
		}
		files[i] = parsed{cmds, true}
		w.sym.declare(cmds)
	}
	var txidWriters int
	for i, s := range w.scripts {
		if !files[i].ok {
			continue
		}
		c, ps := w.sym.compile(s.file, files[i].cmds)
		problems = append(problems, ps...)
		s.prog = c.prog
		s.usesTxid = c.usesTxid
		s.tracked = c.usesTxid && s.kind == workload.Write && cfg.Acknowledged != nil
		if s.tracked {
			txidWriters++
		}
		for slot := range len(w.sym.names) {
			if c.liveIn.has(slot) && !contains(w.persistent, slot) {
				w.persistent = append(w.persistent, slot)
			}
		}
	}
	sort.Ints(w.persistent)
	if len(w.persistent) > 0 {
		w.store = newSessionStore(w.persistent)
	}
	w.nameOps()
	for _, s := range w.scripts {
		if s.weight > 0 {
			w.total += s.weight
		}
		w.cum = append(w.cum, w.total)
	}

	if a := cfg.Acknowledged; a != nil {
		switch {
		case a.Table == "" || a.Column == "":
			top = append(top, "acknowledged: give both the table and the column that store :txid")
		case txidWriters == 0 && len(cfg.Scripts) > 0:
			top = append(top, fmt.Sprintf("acknowledged: no write script uses :txid, so no write can be checked: store :txid in %s.%s in a write script", a.Table, a.Column))
		}
		w.ack = &ackTarget{table: a.Table, column: a.Column}
	}
	top = append(top, w.newInvariants(cfg.Invariants)...)
	if cfg.Setup != "" {
		text, err := os.ReadFile(cfg.Setup)
		if err != nil {
			problems = append(problems, problem{cfg.Setup, 0, fmt.Sprintf("cannot read the setup file: %v", unwrapPath(err))})
		} else {
			stmts, ps := splitSetup(cfg.Setup, strings.TrimPrefix(string(text), "\ufeff"))
			problems = append(problems, ps...)
			w.setup = stmts
			w.setupFile = cfg.Setup
		}
	}
	w.setupCheck = cfg.SetupCheck
	if cfg.SetupCheck != "" && cfg.Setup == "" {
		top = append(top, "setup_check is given without a setup file: give the setup file it guards, or remove the check")
	}

	if len(top) > 0 || len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool {
			return problems[i].file == problems[j].file && problems[i].line < problems[j].line
		})
		lines := top
		for _, p := range problems {
			lines = append(lines, p.String())
		}
		return nil, invalid(lines)
	}

	var salt [16]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return nil, fmt.Errorf("script: txid salt: %w", err)
	}
	w.saltHi = binary.BigEndian.Uint64(salt[:8])
	w.saltLo = binary.BigEndian.Uint64(salt[8:])
	w.defaultSeed = int64(mix64(w.seed ^ 0x5eed5eed5eed5eed))
	n := len(w.sym.names)
	w.frames.New = func() any { return newFrame(n) }
	return w, nil
}

// unwrapPath drops the path from a file error: the message already names the file.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func contains(s []int, x int) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// nameOps names each operation after its file's base name without extension,
// adding _2, _3 ... to repeated names.
func (w *Workload) nameOps() {
	used := map[string]bool{}
	for _, s := range w.scripts {
		base := filepath.Base(s.file)
		base = strings.TrimSuffix(base, filepath.Ext(base))
		if base == "" || base == "." || base == string(filepath.Separator) {
			base = "script"
		}
		name := base
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s_%d", base, i)
		}
		used[name] = true
		s.name = name
		sc := s
		w.ops = append(w.ops, workload.Op{Name: name, Kind: s.kind, Run: func(ctx context.Context, c *pgx.Conn, sess *workload.Session, _ *mrand.Rand) error {
			return w.run(ctx, c, sess, sc)
		}})
	}
}

// Name returns "script".
func (w *Workload) Name() string { return "script" }

// Ops lists one operation per script file, in the configuration's order; the
// slice must not be modified.
func (w *Workload) Ops() []workload.Op { return w.ops }

// NewSession returns simulated session i: Customer holds i (the session's
// :client_id and :session_id) and Token the state of the session's own random
// stream, derived from the seed and i, so a session draws the same values whichever
// worker runs it.
func (w *Workload) NewSession(i int, _ *mrand.Rand) workload.Session {
	return workload.Session{Customer: int64(i), Token: int64(mix64(w.seed ^ mix64(uint64(i)+0x632be59bd9b4e019)))}
}

// Next draws the session's next script by weight, from the session's own stream.
func (w *Workload) Next(s *workload.Session, _ *mrand.Rand) int {
	if len(w.cum) == 1 {
		return 0
	}
	r := splitmix{uint64(s.Token)}
	u := r.float() * w.total
	s.Token = int64(r.s)
	for i, c := range w.cum {
		if u < c {
			return i
		}
	}
	return len(w.cum) - 1
}

// Acknowledged is the number of acknowledged executions of tracked write scripts
// (those storing :txid) so far.
func (w *Workload) Acknowledged() int64 { a, _ := w.log.counts(); return a }

// exactNumber parses a number exactly (integers, decimals, exponents).
func exactNumber(s string) (*big.Rat, bool) {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
	return r, ok
}
