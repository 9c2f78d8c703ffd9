package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/local"
	"github.com/rehearse-dev/rehearse/result"
)

type run struct {
	code     int
	out, err string
}

func cli(t *testing.T, ctx context.Context, args ...string) run {
	t.Helper()
	var out, errb bytes.Buffer
	code := execute(ctx, streams{in: strings.NewReader(""), out: &out, err: &errb}, args)
	return run{code, out.String(), errb.String()}
}

func readResult(t *testing.T, dir string) *result.Result {
	t.Helper()
	res, err := result.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// sharedServer is one embedded PostgreSQL for the tests that only need a DSN.
var shared struct {
	once sync.Once
	node *local.Node
	err  error
}

func sharedDSN(t *testing.T) string {
	t.Helper()
	shared.once.Do(func() {
		ctx := context.Background()
		bin, err := local.FindBinaries(ctx, "")
		if err != nil {
			shared.err = err
			return
		}
		dir, err := os.MkdirTemp("", "rehearse-cmd-test-")
		if err != nil {
			shared.err = err
			return
		}
		shared.node, shared.err = local.InitPrimary(ctx, local.Config{Dir: dir, Name: "shared", Bin: bin, Fsync: false})
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.node.DSN("rehearse")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.node != nil {
		_ = shared.node.Close(context.Background())
		_ = os.RemoveAll(shared.node.WorkDir())
	}
	os.Exit(code)
}

// The core's acceptance check: a smoke rehearsal on the embedded local target.
func TestRunSmokeEmbedded(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x")
	r := cli(t, t.Context(), "run", "../../scenarios/smoke.yaml", "--duration", "10s", "--out", out, "--quiet")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.err)
	}
	if r.err != "" {
		t.Errorf("--quiet run wrote to stderr: %q", r.err)
	}
	if !strings.Contains(r.out, "PASS") || !strings.Contains(r.out, filepath.Join(out, "report.html")) {
		t.Errorf("summary lacks verdict or report path: %q", r.out)
	}
	res := readResult(t, out)
	if res.Schema != result.SchemaV1 || res.Mode != "dry" || res.Interrupted {
		t.Errorf("schema/mode/interrupted = %q/%q/%v", res.Schema, res.Mode, res.Interrupted)
	}
	active := 0
	for _, op := range res.Operations {
		if op.Count == 0 {
			continue
		}
		active++
		l := op.LatencyMs
		if !(l.P50 > 0 && l.P50 <= l.P99 && l.P99 <= l.Max) {
			t.Errorf("%s latency not ordered: %+v", op.Name, l)
		}
	}
	if active < 6 {
		t.Errorf("%d operations ran, want ≥ 6: %+v", active, res.Operations)
	}
	if n := len(res.Timeline); n < 10 {
		t.Errorf("timeline rows = %d, want ≥ 10", n)
	}
	in := res.Integrity
	if !in.Checked || !in.BalanceConserved || in.LostAcknowledgedWrites != 0 || in.AcknowledgedWrites == 0 {
		t.Errorf("integrity = %+v", in)
	}
	if res.Totals.Transactions == 0 || res.Totals.Succeeded+res.Totals.Failed+res.Totals.Ambiguous != res.Totals.Transactions {
		t.Errorf("totals = %+v", res.Totals)
	}
	for _, f := range []string{"latency.hlog", "report.md", "report.html"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
	// The embedded server is gone: its data directory was removed.
	if _, err := os.Stat(filepath.Join(out, "pg", "node1", "PG_VERSION")); !os.IsNotExist(err) {
		t.Errorf("embedded server's data directory still there: %v", err)
	}
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func closedPort(t *testing.T) string { return testutil.FreeAddr(t, "127.0.0.1") }

func TestBadInput(t *testing.T) {
	smoke := "../../scenarios/smoke.yaml"
	occupied := t.TempDir()
	if err := os.WriteFile(filepath.Join(occupied, "result.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no args", []string{"run"}, 2, "expected one scenario file"},
		{"missing file", []string{"run", "nope.yaml"}, 2, "nope.yaml"},
		{"empty file", []string{"run", writeFile(t, "empty.yaml", "")}, 2, "empty"},
		{"not yaml", []string{"run", writeFile(t, "bad.yaml", "{{{ :")}, 2, "not valid YAML"},
		{"not a mapping", []string{"run", writeFile(t, "list.yaml", "- a\n- b\n")}, 2, "list.yaml:1:1"},
		{"negative sessions in file", []string{"run", writeFile(t, "neg.yaml", "load:\n  sessions: -5\n")}, 2, "neg.yaml:2:13: load.sessions"},
		{"zero sessions flag", []string{"run", smoke, "--sessions", "0"}, 2, "--sessions 0"},
		{"negative rate flag", []string{"run", smoke, "--rate", "-3"}, 2, "--rate -3"},
		{"bad duration flag", []string{"run", smoke, "--duration", "5 parsecs"}, 2, "--duration"},
		{"unknown target", []string{"run", smoke, "--target", "mainframe"}, 2, "target"},
		{"unknown mode", []string{"run", smoke, "--mode", "damp"}, 2, "mode"},
		{"malformed dsn", []string{"run", smoke, "--dsn", "postgres://a:b@127.0.0.1:notaport/x"}, 2, "DSN is malformed"},
		{"unreachable dsn", []string{"run", smoke, "--dsn", "postgres://postgres@" + closedPort(t) + "/rehearse", "--out", t.TempDir()}, 1, "connection refused"},
		{"out holds a result", []string{"run", smoke, "--out", occupied}, 2, "already holds"},
		{"unknown flag", []string{"run", smoke, "--bogus"}, 2, "unknown flag"},
		{"metrics off loopback", []string{"run", smoke, "--metrics-addr", "0.0.0.0:9464"}, 2,
			`--metrics-addr 0.0.0.0:9464: must be a loopback host:port such as 127.0.0.1:9464 (got "0.0.0.0:9464"): metrics are served to this machine only; to serve them beyond it, add --metrics-allow-remote`},
		{"metrics on a port past 65535", []string{"run", smoke, "--metrics-addr", "127.0.0.1:70000"}, 2, "--metrics-addr 127.0.0.1:70000: must be a loopback host:port"},
		{"metrics off loopback in file", []string{"run", writeFile(t, "metrics.yaml", "telemetry:\n  metrics_addr: 0.0.0.0:9464\n")}, 2,
			"metrics.yaml:2:17: telemetry.metrics_addr: must be a loopback host:port such as 127.0.0.1:9464 (got \"0.0.0.0:9464\"): metrics are served to this machine only; to serve them beyond it, set telemetry.metrics_allow_remote: true (--metrics-allow-remote)"},
		{"dns off loopback in file", []string{"run", writeFile(t, "dns.yaml", "target:\n  dns_addr: 0.0.0.0:53\n")}, 2, "dns.yaml:2:13: target.dns_addr: must be a loopback host:port"},
		{"dns on a host name in file", []string{"run", writeFile(t, "dnsname.yaml", "target:\n  dns_addr: localhost:5353\n")}, 2, "target.dns_addr: must be a loopback host:port with an IP address"},
		{"report of a non-result", []string{"report", "render", writeFile(t, "x.json", `{"a":1}`)}, 2, "not a rehearse result"},
		{"report of another schema", []string{"report", "render", writeFile(t, "y.json", `{"schema":"rehearse/result/v9"}`)}, 2, "schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, t.Context(), tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d\nstderr: %s", r.code, tt.code, r.err)
			}
			if !strings.Contains(r.err, tt.want) {
				t.Errorf("stderr %q lacks %q", r.err, tt.want)
			}
		})
	}
}

func TestScenarioCommands(t *testing.T) {
	r := cli(t, t.Context(), "scenario", "validate", "../../scenarios/banking.yaml", "../../scenarios/smoke.yaml")
	if r.code != 0 || strings.Count(r.out, ": ok") != 2 {
		t.Fatalf("validate: exit %d out %q err %q", r.code, r.out, r.err)
	}
	bad := writeFile(t, "bad.yaml", "load:\n  sessions: lots\n  duraton: 5s\nworkload:\n  name: chess\n")
	r = cli(t, t.Context(), "scenario", "validate", bad)
	if r.code != 2 {
		t.Fatalf("validate bad: exit %d", r.code)
	}
	for _, want := range []string{"bad.yaml:2:13: load.sessions", "bad.yaml:3:3: load.duraton", "bad.yaml:5:9: workload.name"} {
		if !strings.Contains(r.err, want) {
			t.Errorf("validate output lacks %q:\n%s", want, r.err)
		}
	}
	r = cli(t, t.Context(), "scenario", "init")
	if r.code != 0 || !strings.Contains(r.out, "sessions:") {
		t.Fatalf("init: exit %d", r.code)
	}
	starter := writeFile(t, "starter.yaml", r.out)
	if r := cli(t, t.Context(), "scenario", "validate", starter); r.code != 0 {
		t.Fatalf("the starter scenario does not validate: %s", r.err)
	}
	if r := cli(t, t.Context(), "version"); r.code != 0 || !strings.HasPrefix(r.out, "rehearse ") {
		t.Fatalf("version: %d %q", r.code, r.out)
	}
}

func TestImpossibleSLOExits3(t *testing.T) {
	dsn := sharedDSN(t)
	sc := writeFile(t, "strict.yaml", `name: strict
workload:
  customers: 2000
load:
  sessions: 200
  rate: 100
  duration: 3s
slo:
  latency:
    - op: transfer
      percentile: 99
      max: 1us
`)
	out := filepath.Join(t.TempDir(), "o")
	r := cli(t, t.Context(), "run", sc, "--dsn", dsn, "--out", out, "--quiet")
	if r.code != 3 {
		t.Fatalf("exit %d, want 3\n%s\n%s", r.code, r.out, r.err)
	}
	if !strings.Contains(r.out, "FAIL") || !strings.Contains(r.out, "transfer") {
		t.Errorf("verdict does not name the breached SLO: %q", r.out)
	}
	res := readResult(t, out)
	if res.SLO.Passed {
		t.Error("slo.passed = true")
	}
}

// cancelAfter cancels once the progress output shows n seconds of load.
type cancelAfter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	mark   string
	cancel context.CancelFunc
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.mark) {
		c.cancel()
	}
	return len(p), nil
}

func TestInterruptWritesResultsAndExits130(t *testing.T) {
	dsn := sharedDSN(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errw := &cancelAfter{mark: "    2s ", cancel: cancel}
	out := filepath.Join(t.TempDir(), "o")
	var stdout bytes.Buffer
	code := execute(ctx, streams{in: strings.NewReader(""), out: &stdout, err: errw},
		[]string{"run", "../../scenarios/smoke.yaml", "--dsn", dsn, "--duration", "60s", "--out", out})
	if code != 130 {
		t.Fatalf("exit %d, want 130\n%s", code, errw.buf.String())
	}
	res := readResult(t, out)
	if !res.Interrupted {
		t.Error("result not marked interrupted")
	}
	if res.Totals.Succeeded == 0 || len(res.Timeline) < 2 {
		t.Errorf("recorded work lost: totals %+v, %d timeline rows", res.Totals, len(res.Timeline))
	}
	if res.DurationS > 30 {
		t.Errorf("duration %v s: the run did not stop at the interrupt", res.DurationS)
	}
	if !res.Integrity.Checked {
		t.Error("integrity not checked after interrupt")
	}
	var raw map[string]any
	b, _ := os.ReadFile(filepath.Join(out, "result.json"))
	if err := json.Unmarshal(b, &raw); err != nil || raw["interrupted"] != true {
		t.Errorf("result.json interrupted field: %v %v", raw["interrupted"], err)
	}
}

// A DSN naming a role the server does not know is an input problem (exit 2) with a
// message that says what to fix; a database that does not exist likewise.
func TestWrongCredentialsAndDatabase(t *testing.T) {
	dsn := sharedDSN(t)
	tests := []struct {
		name, dsn, want string
	}{
		{"unknown user", strings.Replace(dsn, "postgres@", "nosuchuser@", 1), "rejected user"},
		{"unknown database", strings.Replace(dsn, "/rehearse?", "/nosuchdb?", 1), "has no database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, t.Context(), "run", "../../scenarios/smoke.yaml", "--dsn", tt.dsn, "--out", t.TempDir(), "--quiet")
			if r.code != 2 || !strings.Contains(r.err, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 mentioning %q", r.code, r.err, tt.want)
			}
		})
	}
}
