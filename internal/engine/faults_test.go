package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/internal/faults"
	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/local"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// faultYAML is a small banking load on one embedded node, with a short operation
// timeout so a hang shows as timeouts within the run.
const faultYAML = `name: engine-faults
workload:
  name: banking
  customers: 500
load:
  model: open
  sessions: 100
  rate: 100
  duration: 7s
  pool_size: 4
  workers: 8
  op_timeout: 1s
  grace: 3s
target:
  kind: local
  fsync: false
`

// faultScenario is faultYAML with the faults given (a faults: section's items).
func faultScenario(t *testing.T, base, items string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Parse("faults.yaml", []byte(base+"faults:\n"+items))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// openFaults opens sc's target with its log captured.
func openFaults(t *testing.T, sc *scenarios.Scenario) (*Rehearsal, *testutil.SyncBuffer) {
	t.Helper()
	log := &testutil.SyncBuffer{}
	reh, err := Open(t.Context(), sc, Config{Target: TargetConfig{Dir: t.TempDir(), Log: log}, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reh.Close(context.Background(), false) })
	return reh, log
}

// stepDir is a fresh directory for a step's files.
func stepDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "out")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// onlyFault returns the one fault of a step's result, after checking it struck.
func onlyFault(t *testing.T, res *result.Result) result.Fault {
	t.Helper()
	if len(res.Faults) != 1 {
		t.Fatalf("faults: %+v", res.Faults)
	}
	f := res.Faults[0]
	if f.Status != faults.StatusOK || f.NodeID != "node1" || f.EndS <= f.StartS {
		t.Fatalf("fault %+v: want it struck on node1 and ended", f)
	}
	return f
}

// Each fault kind, on real PostgreSQL under load, one step each on one node: the
// errors the clients saw during it are the kind's, the fault has its own window
// on the timeline, and the node serves again afterwards (integrity holds).
func TestFaultKinds(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	testutil.RequireTool(t, "initdb", "postgresql")
	// A network fault in the scenario puts the fault proxy in front of the node.
	reh, _ := openFaults(t, faultScenario(t, faultYAML, "  - {at: 2s, kind: reset}\n"))
	tests := []struct {
		fault string
		// allowed are the error classes the clients may see; want must be among
		// those seen (all of them with every).
		allowed, want []string
		every         bool
	}{
		// A frozen writer hangs every operation until the client gives up.
		{"{at: 2s, kind: freeze, for: 2500ms}", []string{"timeout", "pool_exhausted"}, []string{"timeout", "pool_exhausted"}, false},
		// So does a blackhole.
		{"{at: 2s, kind: blackhole, for: 2500ms}", []string{"timeout", "pool_exhausted"}, []string{"timeout", "pool_exhausted"}, false},
		// A reset ends the open connections: the operations on them fail.
		{"{at: 2s, kind: reset}", []string{"connection_reset"}, []string{"connection_reset"}, true},
		// A crash refuses connections, then the restarted node is in crash
		// recovery (57P03: starting up), then it serves.
		{"{at: 2s, kind: crash}", []string{"connection_refused", "connection_reset", "admin_shutdown"}, []string{"connection_refused"}, true},
		// Latency fails nothing.
		{"{at: 2s, kind: latency, add: 100ms, for: 2s}", nil, nil, false},
	}
	for _, tt := range tests {
		fs := faultScenario(t, faultYAML, "  - "+tt.fault+"\n").Faults
		kind := fs[0].Kind
		t.Run(kind, func(t *testing.T) {
			reh.sc.Faults = fs
			out, err := reh.Step(t.Context(), StepSpec{Dir: stepDir(t)})
			if err != nil {
				t.Fatal(err)
			}
			res := out.Result
			f := onlyFault(t, res)
			for c := range f.Errors {
				if !slices.Contains(tt.allowed, c) {
					t.Errorf("clients saw %s during the fault (%v); want only %v", c, f.Errors, tt.allowed)
				}
			}
			found := 0
			for _, c := range tt.want {
				if f.Errors[c] > 0 {
					found++
				}
			}
			if len(tt.want) > 0 && (found == 0 || tt.every && found < len(tt.want)) {
				t.Errorf("errors during the fault %v, want %v", f.Errors, tt.want)
			}
			var win *result.PhaseWindow
			var labels []string
			for i := range res.PhaseWindows {
				w := &res.PhaseWindows[i]
				labels = append(labels, w.Label)
				if w.Kind == result.DisruptionFault {
					win = w
				}
			}
			if win == nil || win.Label != "fault: "+fs[0].Describe() || math.Abs(win.StartS-f.StartS) > 0.001 {
				t.Fatalf("phase windows %q: want one for the fault at %v", labels, f.StartS)
			}
			if kind == scenarios.FaultLatency && win.LatencyMs.P50 < 100 {
				t.Errorf("p50 during 100 ms of latency = %v ms", win.LatencyMs.P50)
			}
			if !res.Integrity.Checked || res.Integrity.LostAcknowledgedWrites != 0 || out.VerifyErr != nil {
				t.Errorf("integrity %+v (%v)", res.Integrity, out.VerifyErr)
			}
			last := res.Timeline[len(res.Timeline)-1]
			if last.Errors > 0 || last.Ops == 0 {
				t.Errorf("the run's last second %+v: the node must serve again after the fault", last)
			}
			rec := "none"
			if f.RecoveryS != nil {
				rec = fmt.Sprintf("%.1fs (recovered %v)", *f.RecoveryS, f.Recovered)
			}
			t.Logf("%s: errors %v, window [%v, %v], recovery %s", kind, f.Errors, win.StartS, win.EndS, rec)
		})
	}
	if st := reh.tgt.(faultable).faultProxies().State(); len(st.Toxics) != 0 {
		t.Errorf("toxics left after the steps: %v", st.Toxics)
	}
}

// Interrupting a run (Ctrl-C) during each fault kind leaves nothing behind: no
// stopped process, no toxic, the crashed node serving again; closing the target
// closes the proxies.
func TestFaultsInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	testutil.RequireTool(t, "initdb", "postgresql")
	sc := faultScenario(t, faultYAML, "  - {at: 1s, kind: reset}\n")
	sc.Load.Duration = scenarios.Duration(30 * time.Second)
	reh, log := openFaults(t, sc)
	node := reh.tgt.(*localNode).node
	px := reh.tgt.(faultable).faultProxies()
	for _, fault := range []string{
		"{at: 1s, kind: freeze, for: 20s}",
		"{at: 1s, kind: blackhole, for: 20s}",
		"{at: 1s, kind: latency, add: 200ms, for: 20s}",
		"{at: 1s, kind: reset}",
		"{at: 1s, kind: crash}",
	} {
		f := faultScenario(t, faultYAML, "  - "+fault+"\n").Faults[0]
		t.Run(f.Kind, func(t *testing.T) {
			reh.sc.Faults = []scenarios.Fault{f}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			mark := len(log.String())
			type stepped struct {
				out *StepOutcome
				err error
			}
			done := make(chan stepped, 1)
			go func() {
				out, err := reh.Step(ctx, StepSpec{Dir: stepDir(t)})
				done <- stepped{out, err}
			}()
			testutil.Eventually(t, 20*time.Second, "the fault to strike", func() bool {
				return strings.Contains(log.String()[mark:], "fault: "+f.Describe()+" (node1) at")
			})
			if f.Kind == scenarios.FaultFreeze {
				if frozen := stopped(node.Processes()); len(frozen) == 0 {
					t.Error("no process of the node is stopped during the freeze")
				}
			}
			cancel()
			s := <-done
			if s.err != nil {
				t.Fatal(s.err)
			}
			res := s.out.Result
			if !res.Interrupted || len(res.Faults) != 1 || res.Faults[0].Status != faults.StatusOK {
				t.Errorf("interrupted %v, faults %+v", res.Interrupted, res.Faults)
			}
			if left := stopped(node.Processes()); len(left) > 0 {
				t.Errorf("processes still stopped after the interruption: %v", left)
			}
			if !node.Running() {
				t.Error("the node is not running after the interruption")
			}
			if st := px.State(); len(st.Toxics) != 0 || len(st.Listening) != 1 {
				t.Errorf("proxies after the interruption: %+v, want one listening and no toxic", st)
			}
			if !res.Integrity.Checked || res.Integrity.LostAcknowledgedWrites != 0 {
				t.Errorf("integrity %+v", res.Integrity)
			}
		})
	}
	reh.Close(context.Background(), false)
	if st := px.State(); len(st.Listening)+len(st.Toxics) != 0 {
		t.Errorf("proxies after Close: %+v", st)
	}
}

// stopped lists the processes of pids in state T.
func stopped(pids []int) []int {
	var out []int
	for _, p := range pids {
		if s, ok := local.ProcState(p); ok && (s == 'T' || s == 't') {
			out = append(out, p)
		}
	}
	return out
}

// With a cutover through the proxy endpoints, faults strike on the path PgBouncer
// uses, at a time and at a step, on the node they name as it is then: a blackhole
// on the writer before the plan, a reset of the replica (the writer by then) as
// keep_rollback_target starts. The cutover completes and loses nothing. (A reset
// as validate starts can break validate's health query, which then undoes the
// plan: what such a fault does.)
func TestFaultsWithCutover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and PgBouncer")
	}
	testutil.RequireTool(t, "initdb", "postgresql")
	testutil.RequireTool(t, "pgbouncer", "pgbouncer")
	sc := cutoverScenario(t, "faults:\n  - {at: 1s, kind: blackhole, node: writer, for: 1s}\n  - {at: keep_rollback_target, kind: reset, node: replica}\n")
	sc.Cutover.Warmup = scenarios.Duration(3 * time.Second)
	out := wetStep(t, sc)
	if out.CutoverErr != nil {
		t.Fatal(out.CutoverErr)
	}
	res := out.Result
	want := []struct{ kind, node, id, at string }{
		{"blackhole", "writer", "node1", "1s"},
		{"reset", "replica", "node2", "keep_rollback_target"},
	}
	if len(res.Faults) != len(want) {
		t.Fatalf("faults %+v", res.Faults)
	}
	for i, w := range want {
		f := res.Faults[i]
		if f.Kind != w.kind || f.Node != w.node || f.NodeID != w.id || f.At != w.at || f.Status != faults.StatusOK || f.RecoveryS == nil {
			t.Errorf("fault %d = %+v, want %+v, struck, with its recovery", i, f, w)
		}
	}
	var step result.Step
	for _, s := range res.Migration.Steps {
		if s.Name == "keep_rollback_target" {
			step = s
		}
	}
	if d := res.Faults[1].StartS - step.StartS; d < -0.001 || d > 1 { // step times are in whole ms
		t.Errorf("the reset struck at %v, keep_rollback_target started at %v", res.Faults[1].StartS, step.StartS)
	}
	if !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.HasPrefix(n, "Faults: a fault proxy") }) {
		t.Errorf("notes %q: want the fault proxies explained", res.Notes)
	}
}

// A fault naming a reader when the cluster has none fails with why, and the run
// goes on.
func TestFaultWithoutReader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	testutil.RequireTool(t, "initdb", "postgresql")
	sc := faultScenario(t, strings.Replace(faultYAML, "7s", "3s", 1), "  - {at: 1s, kind: freeze, node: reader, for: 1s}\n")
	reh, _ := openFaults(t, sc)
	out, err := reh.Step(t.Context(), StepSpec{Dir: stepDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	if fs := out.Result.Faults; len(fs) != 1 || fs[0].Status != faults.StatusFailed || !strings.Contains(fs[0].Error, "no reader to strike") {
		t.Errorf("faults %+v", fs)
	}
	if _, ok := reh.tgt.(faultable); !ok || reh.tgt.(faultable).faultProxies() != nil {
		t.Error("a scenario without network faults must have no fault proxy")
	}
	if errors.Is(out.VerifyErr, context.Canceled) || !out.Result.Integrity.Checked {
		t.Errorf("integrity %+v (%v)", out.Result.Integrity, out.VerifyErr)
	}
}
