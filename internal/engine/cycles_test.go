package engine

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// cutoverScenario is a small banking load through the proxy endpoints of a local
// cluster, with the cutover section given.
func cutoverScenario(t *testing.T, cutover string) *scenarios.Scenario {
	t.Helper()
	src := `name: engine-cutover
workload:
  name: banking
  customers: 500
load:
  model: open
  sessions: 50
  rate: 60
  duration: 8s
  pool_size: 4
  grace: 5s
target:
  kind: local
  fsync: false
  endpoint: proxy
cutover:
  enabled: true
  warmup: 2s
  soak: 1s
` + cutover
	sc, err := scenarios.Parse("cutover.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	sc.Mode = scenarios.ModeWet
	return sc
}

// wetStep opens sc's target and runs one wet step with its cutover.
func wetStep(t *testing.T, sc *scenarios.Scenario) *StepOutcome {
	t.Helper()
	dir := t.TempDir()
	reh, err := Open(t.Context(), sc, Config{Target: TargetConfig{Dir: dir}, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer reh.Close(t.Context(), false)
	stepDir := filepath.Join(dir, "out")
	if err := os.MkdirAll(stepDir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := reh.Step(t.Context(), StepSpec{Cutover: true, Dir: stepDir})
	if err != nil {
		t.Fatal(err)
	}
	if out.VerifyErr != nil || !out.Result.Integrity.Checked || out.Result.Integrity.LostAcknowledgedWrites != 0 {
		t.Errorf("integrity %+v (%v)", out.Result.Integrity, out.VerifyErr)
	}
	return out
}

// Three cycles under load: switchover, failback, switchover; each cycle recorded
// with its own disruption window, and the cycles' counts add up to the run's.
func TestCyclesUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and PgBouncer")
	}
	out := wetStep(t, cutoverScenario(t, "  cycles: 3\n  settle: 2s\n"))
	if out.CutoverErr != nil {
		t.Fatal(out.CutoverErr)
	}
	res := out.Result
	m := res.Migration
	if m.Outcome != "completed" || m.WriterBefore != "node1" || m.WriterAfter != "node2" {
		t.Errorf("outcome %s, writer %s → %s; want completed, node1 → node2", m.Outcome, m.WriterBefore, m.WriterAfter)
	}
	if len(m.Cycles) != 3 {
		t.Fatalf("cycles: %+v", m.Cycles)
	}
	var tx, failed, attempts, failedAttempts int64
	for i, c := range m.Cycles {
		if c.Outcome != "completed" || c.Direction != migrate.Direction(i+1) || c.Stall == nil || c.Stall.TotalMs <= 0 {
			t.Errorf("cycle %d: %s %s %s→%s stall %+v", c.Cycle, c.Outcome, c.Direction, c.From, c.To, c.Stall)
		}
		if c.Transactions == 0 {
			t.Errorf("cycle %d counted no transactions", c.Cycle)
		}
		tx, failed, attempts, failedAttempts = tx+c.Transactions, failed+c.Failed, attempts+c.Attempts, failedAttempts+c.FailedAttempts
	}
	tot := res.Totals
	if tx != tot.Transactions || failed != tot.Failed || attempts != tot.Attempts || failedAttempts != tot.FailedAttempts {
		t.Errorf("cycles add up to %d tx, %d failed, %d attempts, %d failed attempts; the run's totals are %+v", tx, failed, attempts, failedAttempts, tot)
	}
	if c := res.Availability.Cycles; c == nil || c.Count != 3 || c.WriteUnavailableMs.Max < c.WriteUnavailableMs.Min {
		t.Errorf("availability.cycles = %+v", c)
	}
	var labels []string
	for _, w := range res.PhaseWindows {
		if w.Phase == result.PhaseDuring {
			labels = append(labels, w.Label)
		}
	}
	want := []string{"switchover (cycle 1)", "failback (cycle 2)", "switchover (cycle 3)"}
	if len(labels) != 3 || labels[0] != want[0] || labels[1] != want[1] || labels[2] != want[2] {
		t.Errorf("disruption windows %q, want %q", labels, want)
	}
}

// A guardrail no load can meet aborts the plan before the switchover, which leaves
// the original writer serving writes, and the breach is recorded.
func TestGuardrailAborts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and PgBouncer")
	}
	out := wetStep(t, cutoverScenario(t, "  abort_if:\n    - {metric: p99, window: 2s, max: 1us}\n"))
	if out.CutoverErr == nil || !errors.Is(out.CutoverErr, ErrAborted) {
		t.Fatalf("cutover error %v, want one wrapping ErrAborted", out.CutoverErr)
	}
	m := out.Result.Migration
	if m.Outcome != "aborted" || m.WriterAfter != "node1" || m.Abort == nil {
		t.Fatalf("outcome %s, writer after %s, abort %+v", m.Outcome, m.WriterAfter, m.Abort)
	}
	if len(m.Guardrails) != 1 || !m.Guardrails[0].Fired || m.Guardrails[0].Value <= m.Guardrails[0].Max {
		t.Errorf("guardrails %+v", m.Guardrails)
	}
}
