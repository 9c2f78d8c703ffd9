package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/result"
)

// cutoverScenario is the smoke load shortened for tests: a 3 s warm-up, a 1 s soak
// and an 8 s load (which runs on until the cutover has settled).
func cutoverScenario(t *testing.T, extra string) string {
	t.Helper()
	return writeFile(t, "cut.yaml", `name: cut
workload:
  customers: 2000
target:
  fsync: false
  dns_ttl: 1s
load:
  sessions: 500
  rate: 200
  duration: 8s
  pool_size: 8
cutover:
  enabled: true
  warmup: 3s
  soak: 1s
  stale_dns_window: 1s
`+extra)
}

func runCutover(t *testing.T, args ...string) *result.Result {
	t.Helper()
	res, _ := runCutoverOut(t, args...)
	return res
}

func runCutoverOut(t *testing.T, args ...string) (*result.Result, string) {
	t.Helper()
	dir := t.TempDir()
	// The postgres OS user must reach the work directory (else a fallback under the
	// temp directory is used, and removed with its logs).
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "o")
	r := cli(t, t.Context(), append(append([]string{"run"}, args...), "--out", out, "--quiet")...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	res := readResult(t, out)
	if res.Migration == nil {
		t.Fatal("no migration in the result")
	}
	// Nothing is left running: every node's data directory is gone.
	ents, _ := filepath.Glob(filepath.Join(out, "pg", "node*", "PG_VERSION"))
	if len(ents) != 0 {
		t.Errorf("data directories left behind: %v", ents)
	}
	return res, out
}

func stepsOK(t *testing.T, m *result.Migration, want string) {
	t.Helper()
	var got []string
	for _, s := range m.Steps {
		got = append(got, s.Name+"="+s.Status)
	}
	if g := strings.Join(got, " "); g != want {
		t.Errorf("steps:\n got %s\nwant %s", g, want)
	}
}

const allOK = "preflight=ok create_replica=ok catch_up=ok forward_writes=ok switchover=ok redirect=ok validate=ok keep_rollback_target=ok decommission=ok"

func checkIntegrity(t *testing.T, res *result.Result) {
	t.Helper()
	in := res.Integrity
	if !in.Checked || !in.BalanceConserved || in.LostAcknowledgedWrites != 0 {
		t.Errorf("integrity = %+v", in)
	}
	for _, p := range []string{result.PhaseBefore, result.PhaseDuring, result.PhaseAfter} {
		var n int64
		for _, op := range res.Operations {
			n += op.Phases[p].Count
		}
		if n == 0 {
			t.Errorf("no operations in phase %s", p)
		}
	}
}

func TestWetCutoverThroughPgBouncer(t *testing.T) {
	res := runCutover(t, cutoverScenario(t, ""), "--mode", "wet", "--endpoint", "proxy")
	m := res.Migration
	stepsOK(t, m, allOK)
	if m.Outcome != "completed" || m.WriterBefore == m.WriterAfter {
		t.Errorf("outcome %s, writer %s → %s", m.Outcome, m.WriterBefore, m.WriterAfter)
	}
	// PgBouncer holds clients through the switchover: nothing fails.
	if res.Totals.Failed != 0 || res.Totals.Ambiguous != 0 {
		t.Errorf("totals %+v, errors %+v: a PgBouncer switchover should fail nothing", res.Totals, res.Errors)
	}
	checkIntegrity(t, res)
	t.Logf("proxy: write stall %.0f ms, read stall %.0f ms, lag at promotion %+v",
		res.Availability.WriteUnavailableMaxMs, res.Availability.ReadUnavailableMaxMs, m.LagAtPromotion)
}

func TestWetCutoverDNSAndRollback(t *testing.T) {
	res := runCutover(t, cutoverScenario(t, ""), "--mode", "wet", "--endpoint", "dns", "--rollback")
	m := res.Migration
	stepsOK(t, m, "preflight=ok create_replica=ok catch_up=ok forward_writes=ok switchover=ok redirect=ok validate=ok keep_rollback_target=ok rollback=ok decommission=ok")
	if m.Outcome != "rolled_back" || m.WriterAfter != m.WriterBefore {
		t.Errorf("outcome %s, writer %s → %s; want rolled back to the first writer", m.Outcome, m.WriterBefore, m.WriterAfter)
	}
	// DNS drops the old writer's connections: some operations fail, none is lost.
	if res.Totals.Failed == 0 {
		t.Log("no failed operations through the dns endpoint (unusual but possible at low rates)")
	}
	checkIntegrity(t, res)
	t.Logf("dns: write unavailable %.0f ms (stale window 1 s)", res.Availability.WriteUnavailableMaxMs)
}

func TestWetCrashFailover(t *testing.T) {
	res := runCutover(t, cutoverScenario(t, "  kind: crash\n"), "--mode", "wet", "--endpoint", "dns")
	m := res.Migration
	stepsOK(t, m, allOK)
	if m.WriterBefore == m.WriterAfter {
		t.Errorf("writer did not change: %s", m.WriterAfter)
	}
	// The crash makes operations fail (the writer is killed under load), and the
	// synchronous standby means none that was acknowledged is lost.
	if res.Totals.Failed == 0 {
		t.Error("no operation failed although the writer was killed under load")
	}
	var sw result.Step
	for _, s := range m.Steps {
		if s.Name == "keep_rollback_target" {
			sw = s
		}
	}
	if sw.Detail["rewound"] == nil {
		t.Errorf("keep_rollback_target detail lacks rewound: %v", sw.Detail)
	}
	checkIntegrity(t, res)
}

func TestDryRunLeavesClusterAsItWas(t *testing.T) {
	res, out := runCutoverOut(t, cutoverScenario(t, ""), "--mode", "dry")
	// Each node leaves its server log behind; a dry run must have made only node1.
	logs, _ := filepath.Glob(filepath.Join(out, "pg", "node*.log"))
	if len(logs) != 1 || filepath.Base(logs[0]) != "node1.log" {
		t.Errorf("server logs after a dry run: %v, want only node1's", logs)
	}
	m := res.Migration
	if m.Outcome != "dry" || m.WriterAfter != m.WriterBefore || m.WriterBefore != "node1" {
		t.Errorf("outcome %s, writer %s → %s", m.Outcome, m.WriterBefore, m.WriterAfter)
	}
	for _, s := range m.Steps {
		if s.Status != "planned" {
			t.Errorf("dry step %s status %s", s.Name, s.Status)
		}
		if s.Name == "create_replica" && s.Detail["would_run"] == nil {
			t.Errorf("create_replica does not say what it would run: %v", s.Detail)
		}
	}
	if res.Mode != "dry" {
		t.Errorf("mode %s", res.Mode)
	}
	checkIntegrity(t, res)
}

func TestWetNeedsACutover(t *testing.T) {
	sc := writeFile(t, "nocut.yaml", "name: nocut\n")
	r := cli(t, t.Context(), "run", sc, "--mode", "wet")
	if r.code != 2 || !strings.Contains(r.err, "cutover") {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
}

// Misrouted writes (sent to the reader endpoint) fail with read_only (25006) once
// the reader endpoint reaches the new replica, until write forwarding is on and the
// clients' cached DNS answers for the reader endpoint (TTL 1 s here) have expired:
// what forwarding prevents.
func TestMisroutedWritesAndForwarding(t *testing.T) {
	sc := writeFile(t, "misrouted.yaml", `name: misrouted
workload:
  customers: 2000
  misrouted_write_fraction: 0.3
target:
  fsync: false
  dns_ttl: 1s
load:
  sessions: 500
  rate: 200
  duration: 10s              # room for an after phase when the replica is slow to start
  pool_size: 8
  conn_max_lifetime: 300ms   # recycle quickly, so the reader endpoint's changes reach the pool
cutover:
  enabled: true
  warmup: 2s
  catch_up_samples: 20
  steps: [preflight, create_replica, catch_up, forward_writes]
`)
	res := runCutover(t, sc, "--mode", "wet", "--endpoint", "dns")
	var readOnly *result.ErrorClass
	for i, e := range res.Errors {
		if e.Class == "read_only" {
			readOnly = &res.Errors[i]
		}
	}
	if readOnly == nil || readOnly.SQLState != "25006" {
		t.Fatalf("no read_only (25006) errors from writes sent to the replica: %+v", res.Errors)
	}
	var created, forwarded float64
	for _, s := range res.Migration.Steps {
		switch s.Name {
		case "create_replica":
			created = s.EndS
		case "forward_writes":
			forwarded = s.EndS
		}
	}
	const ttl = 1.0
	if readOnly.FirstS < created-0.5 || readOnly.LastS > forwarded+ttl+0.5 {
		t.Errorf("read_only errors from %.3f s to %.3f s; want them only between the replica joining the reader endpoint (%.3f s) and forwarding (%.3f s) plus the DNS TTL (%.0f s)",
			readOnly.FirstS, readOnly.LastS, created, forwarded, ttl)
	}
	checkIntegrity(t, res)
}
