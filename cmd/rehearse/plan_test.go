package main

import (
	"strings"
	"testing"
)

// plan prints the cutover a run would perform, its cycles too, without starting
// anything.
func TestPlanShowsTheRunsCutover(t *testing.T) {
	cut := "name: p\ncutover:\n  enabled: true\n"
	tests := []struct {
		name, yaml string
		want       []string
		not        []string
	}{
		{"one cycle", cut, []string{"Cutover plan for p: strategy in_cluster", "switchover", "keep_rollback_target", "decommission"}, []string{"cycles,", "cycle 2"}},
		{"three cycles", cut + "  cycles: 3\n  settle: 4s\n", []string{"3 cycles, 4s apart (cutover.settle)", "cycle 2 (failback onto the original writer)", "cycle 3 (switchover onto the new writer)", "settle"}, []string{"cycle 4"}},
		{"blue/green", cut + "  strategy: blue_green\n", []string{"strategy blue_green", "create_green", "delete_deployment", "cutover.switchover_timeout"}, []string{"create_replica"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, t.Context(), "plan", writeFile(t, "p.yaml", tt.yaml))
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.err)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.out, w) {
					t.Errorf("plan lacks %q:\n%s", w, r.out)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(r.out, w) {
					t.Errorf("plan has %q:\n%s", w, r.out)
				}
			}
		})
	}
}
