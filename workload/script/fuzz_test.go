package script

import "testing"

// FuzzParse feeds arbitrary text to the script parser and compiler (and to the
// setup file splitter): they must report problems, never panic or hang.
func FuzzParse(f *testing.F) {
	f.Add("\\set aid random(1, 100000 * :scale)\nBEGIN;\nUPDATE t SET v = v + :aid WHERE id = :aid;\nEND;\n")
	f.Fuzz(func(t *testing.T, text string) {
		cmds, problems := parseScript("f.sql", text)
		sym := newSymbols()
		sym.declare(cmds)
		if len(problems) == 0 {
			c, _ := sym.compile("f.sql", cmds)
			for _, in := range c.prog {
				if (in.op == opBranch || in.op == opJump) && (in.target < 0 || in.target > len(c.prog)) {
					t.Fatalf("jump target %d outside the program of %d instructions", in.target, len(c.prog))
				}
			}
		}
		_, _ = splitSetup("setup.sql", text)
	})
}

// FuzzExpr feeds arbitrary text to the expression parser and evaluates what
// parses, with variables of every kind: errors, never a panic or a hang.
func FuzzExpr(f *testing.F) {
	f.Add("random(1, 100000 * :scale)")
	f.Fuzz(func(t *testing.T, src string) {
		n, err := parseExpr(src)
		if err != nil {
			return
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
		rng := splitmix{uint64(len(src))}
		ev := evaluator{slots: slots, rng: &rng, debug: func(value) {}}
		_, _ = ev.eval(n)
	})
}
