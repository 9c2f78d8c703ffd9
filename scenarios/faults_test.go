package scenarios_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// cut is a scenario with a cutover over 60 s of load, to add faults, cycles and
// guardrails to.
const cut = "load:\n  duration: 60s\ncutover:\n  enabled: true\n"

func TestFaultsCyclesGuardrailsValid(t *testing.T) {
	tests := []struct{ name, src string }{
		{"every fault kind", cut + `faults:
  - {at: 20s, kind: freeze, node: writer, for: 2s}
  - {at: 30s, kind: blackhole, node: writer, for: 5s}
  - {at: 40s, kind: latency, node: reader, add: 50ms, jitter: 10ms, for: 10s}
  - {at: 50s, kind: reset, node: writer}
  - {at: 55s, kind: crash, node: writer}
  - {at: switchover, kind: reset, node: replica}
  - {at: 1s, kind: latency, node: node2, add: 5ms, for: 1s}
`},
		{"reset during a freeze", cut + "faults:\n  - {at: 10s, kind: freeze, for: 5s}\n  - {at: 12s, kind: reset}\n"},
		{"cycles", "load:\n  duration: 30s\ncutover:\n  enabled: true\n  cycles: 5\n"},
		{"cycles with every_cycle", "load:\n  duration: 60s\ncutover:\n  enabled: true\n  cycles: 3\nfaults:\n  - {at: switchover, kind: reset, every_cycle: true}\n"},
		{"guardrails", cut + `  abort_if:
    - {metric: error_rate, window: 5s, max: 0.5}
    - {metric: p99, op: transfer, window: 5s, max: 2s}
    - {metric: write_unavailable, max: 10s}
    - {metric: p99, window: 2s, max: 1ms}
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := scenarios.Parse("t.yaml", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range s.Faults {
				if f.Node == "" {
					t.Errorf("fault %+v has no node (default writer)", f)
				}
			}
		})
	}
}

func TestFaultsCyclesGuardrailsInvalid(t *testing.T) {
	tests := []struct {
		name, src string
		// want is the field and a fragment of the message.
		want string
	}{
		{"unknown kind", cut + "faults:\n  - {at: 10s, kind: meteor}\n", `faults[0].kind: unknown value "meteor"; use one of: freeze, blackhole, latency, reset, crash`},
		{"at past the end", cut + "faults:\n  - {at: 90s, kind: reset}\n", "faults[0].at: is 90s, past the run's end (load.duration 1m)"},
		{"at an unknown step", cut + "faults:\n  - {at: switchback, kind: reset}\n", `faults[0].at: "switchback" is neither a duration (20s) nor a step of the plan`},
		{"at a step without cutover", "faults:\n  - {at: switchover, kind: reset}\n", "cutover.enabled is false"},
		{"at missing", cut + "faults:\n  - {kind: reset}\n", "faults[0].at: is required"},
		{"for missing", cut + "faults:\n  - {at: 10s, kind: blackhole}\n", "faults[0].for: is required for a blackhole"},
		{"for on a reset", cut + "faults:\n  - {at: 10s, kind: reset, for: 2s}\n", "faults[0].for: a reset strikes once and does not last"},
		{"latency without add", cut + "faults:\n  - {at: 10s, kind: latency, for: 2s}\n", "faults[0].add: is required for a latency fault"},
		{"add on a freeze", cut + "faults:\n  - {at: 10s, kind: freeze, for: 2s, add: 5ms}\n", "faults[0].add: add and jitter apply to latency faults only"},
		{"unknown node", cut + "faults:\n  - {at: 10s, kind: reset, node: node7}\n", `faults[0].node: no node is named "node7" on the local target; use writer, reader, replica or one of: node1, node2`},
		{"overlap", cut + "faults:\n  - {at: 10s, kind: freeze, for: 5s}\n  - {at: 12s, kind: blackhole, for: 5s}\n", "faults[1]: blackhole writer for 5s overlaps faults[0] (freeze writer for 5s at 10s)"},
		{"overlap at one step", cut + "faults:\n  - {at: switchover, kind: freeze, for: 2s}\n  - {at: switchover, kind: blackhole, for: 2s}\n", "faults[1]: blackhole writer for 2s overlaps faults[0] (freeze writer for 2s at switchover)"},
		{"overlap on the writer by its name", "faults:\n  - {at: 10s, kind: freeze, for: 5s}\n  - {at: 12s, kind: blackhole, node: node1, for: 2s}\n", "faults[1]: blackhole node1 for 2s overlaps faults[0] (freeze writer for 5s at 10s)"},
		{"every_cycle without cycles", cut + "faults:\n  - {at: switchover, kind: reset, every_cycle: true}\n", "faults[0].every_cycle: repeats the fault in every cutover cycle, but cutover.cycles is 1"},
		{"aurora freeze", "target:\n  kind: aurora\n" + cut + "faults:\n  - {at: 10s, kind: freeze, for: 1s}\n", "faults[0].kind: the aurora target can inject only a crash"},
		{"faults on a dsn", "target:\n  dsn: postgres://app@127.0.0.1:5432/bank\nfaults:\n  - {at: 1s, kind: reset}\n", "faults: target.dsn points at a database rehearse does not run"},
		{"cycles 0", cut + "  cycles: 0\n", "cutover.cycles: must be at least 1 (got 0)"},
		{"cycles that do not fit", "load:\n  duration: 30s\ncutover:\n  enabled: true\n  cycles: 8\n", "cutover.cycles: 8 cycles with a 5s settle after each and a 5s warmup need load.duration of at least 45s (it is 30s)"},
		{"cycles with rollback", cut + "  cycles: 2\n  rollback: true\n", "cutover.rollback: cycles already alternate direction"},
		{"cycles without keep_rollback_target", cut + "  cycles: 2\n  steps: [preflight, create_replica, catch_up, switchover, redirect, validate]\n", "cutover.steps: 2 cycles need switchover, redirect and keep_rollback_target"},
		{"cycles on blue/green", cut + "  cycles: 2\n  strategy: blue_green\n", "cutover.cycles: cycles apply to the in_cluster strategy"},
		{"unknown metric", cut + "  abort_if:\n    - {metric: p42.5x, max: 1s}\n", `cutover.abort_if[0].metric: unknown metric "p42.5x"`},
		{"unknown op", cut + "  abort_if:\n    - {metric: p99, op: wire, max: 1s}\n", `cutover.abort_if[0].op: unknown operation "wire" for workload banking`},
		{"op on unavailability", cut + "  abort_if:\n    - {metric: write_unavailable, op: transfer, max: 1s}\n", "cutover.abort_if[0].op: write_unavailable is measured over every operation; drop op"},
		{"short window", cut + "  abort_if:\n    - {metric: p99, window: 500ms, max: 1s}\n", "cutover.abort_if[0].window: must be at least 1s (got 500ms)"},
		{"rate above 1", cut + "  abort_if:\n    - {metric: error_rate, max: 1.5}\n", "cutover.abort_if[0].max: error_rate is a fraction of operations"},
		{"latency without unit", cut + "  abort_if:\n    - {metric: p99, max: 2}\n", "cutover.abort_if[0].max: p99 is a duration"},
		{"max missing", cut + "  abort_if:\n    - {metric: p99}\n", "cutover.abort_if[0].max: is required"},
		{"guardrail without cutover", "cutover:\n  abort_if:\n    - {metric: p99, max: 1s}\n", "cutover.abort_if: guardrails watch a cutover, but cutover.enabled is false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := parseErrs(t, tc.src)
			if !strings.Contains(errs.Error(), tc.want) {
				t.Errorf("errors:\n%v\nwant one containing %q", errs, tc.want)
			}
		})
	}
}

// The shipped faults.yaml strikes every kind once on the writer of one local node,
// without a cutover, and runs in under a minute.
func TestShippedFaultsScenario(t *testing.T) {
	s, err := scenarios.LoadFile("faults.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, f := range s.Faults {
		kinds = append(kinds, f.Kind)
		if f.Node != scenarios.NodeWriter {
			t.Errorf("%s strikes %s, want the writer", f.Describe(), f.Node)
		}
	}
	slices.Sort(kinds)
	if want := slices.Sorted(slices.Values(scenarios.FaultKinds)); !slices.Equal(kinds, want) {
		t.Errorf("fault kinds %v, want each of %v once", kinds, want)
	}
	if s.Cutover.Enabled || s.Target.Kind != scenarios.TargetLocal || s.Load.Duration.D() > 45*time.Second {
		t.Errorf("cutover %v, target %s, duration %v: want a local run of at most 45s without cutover", s.Cutover.Enabled, s.Target.Kind, s.Load.Duration)
	}
}

// Faults on one node at different moments, or on different nodes, combine.
func TestFaultsThatDoNotOverlap(t *testing.T) {
	for name, yaml := range map[string]string{
		"after the cutover the writer is another node": cut + "faults:\n  - {at: 30s, kind: freeze, for: 5s}\n  - {at: 31s, kind: blackhole, node: node1, for: 2s}\n",
		"different steps":                cut + "faults:\n  - {at: catch_up, kind: freeze, for: 2s}\n  - {at: switchover, kind: blackhole, for: 2s}\n",
		"a reset combines with anything": cut + "faults:\n  - {at: switchover, kind: freeze, for: 2s}\n  - {at: switchover, kind: reset}\n",
		"one after the other":            "faults:\n  - {at: 10s, kind: freeze, for: 2s}\n  - {at: 12s, kind: blackhole, node: node1, for: 2s}\n",
	} {
		if _, err := scenarios.Parse("f.yaml", []byte(yaml)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
