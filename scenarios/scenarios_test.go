package scenarios_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// parseErrs parses src and returns its problems, failing the test if it parses.
func parseErrs(t *testing.T, src string) *scenarios.Errors {
	t.Helper()
	s, err := scenarios.Parse("t.yaml", []byte(src))
	if err == nil {
		t.Fatalf("Parse succeeded, want an error; got %+v", s)
	}
	if s != nil {
		t.Errorf("Parse returned a scenario with its error")
	}
	if !errors.Is(err, scenarios.ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
	}
	var errs *scenarios.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want *scenarios.Errors", err)
	}
	return errs
}

func mustParse(t *testing.T, src string) *scenarios.Scenario {
	t.Helper()
	s, err := scenarios.Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		// want is the expected start of the only problem's line, then a fragment of
		// its message: "t.yaml:3:14: load.sessions: must be a positive integer".
		want string
	}{
		// The file as a whole.
		{"empty", "", "t.yaml: the file is empty; write a scenario"},
		{"whitespace only", "  \n\n", "t.yaml: the file is empty"},
		{"comments only", "# nothing here\n", "t.yaml: the file holds no YAML content"},
		{"not yaml: tab", "load:\n\tsessions: 1\n", "t.yaml:2: not valid YAML: found character that cannot start any token"},
		{"not yaml: bad flow", "load: {sessions: 1\n", "t.yaml:1: not valid YAML: did not find expected ',' or '}'"},
		{"top level list", "- name: a\n", "t.yaml:1:1: the top level must be a mapping of sections (name, description, workload, load, client, target, cutover, slo, telemetry, faults); got a list"},
		{"top level scalar", "hello\n", `t.yaml:1:1: the top level must be a mapping of sections (name, description, workload, load, client, target, cutover, slo, telemetry, faults); got "hello"`},
		{"two documents", "name: a\n---\nname: b\n", "t.yaml:2:1: the file holds more than one YAML document (---); keep one scenario per file"},

		// Unknown and repeated fields.
		{"unknown top-level field", "name: a\nlaod:\n  sessions: 1\n", `t.yaml:2:1: laod: unknown field (did you mean "load"?); the top level takes: name, description, workload, load, client, target, cutover, slo`},
		{"unknown nested field", "load:\n  sesions: 10\n", `t.yaml:2:3: load.sesions: unknown field (did you mean "sessions"?); load takes: model,`},
		{"unknown field with dash", "load:\n  pool-size: 10\n", `t.yaml:2:3: load.pool-size: unknown field (did you mean "pool_size"?)`},
		{"unknown field no suggestion", "target:\n  region: eu-west-1\n", "t.yaml:2:3: target.region: unknown field; target takes: kind, dsn, endpoint, fsync, max_connections, shared_buffers"},
		{"unknown field in stages", "load:\n  stages:\n    - duration: 10s\n      rate: 5\n    - duration: 10s\n      rat: 5\n", `t.yaml:6:7: load.stages[1].rat: unknown field (did you mean "rate"?); each item of load.stages takes: duration, rate`},
		{"unknown field in latency", "slo:\n  latency:\n    - max: 1s\n      p: 99\n", "t.yaml:4:7: slo.latency[0].p: unknown field (did you mean \"op\"?); each item of slo.latency takes: op, phase, percentile, max"},
		{"unknown field in think_time", "load:\n  think_time: {mean: 1s, median: 1s}\n", `t.yaml:2:26: load.think_time.median: unknown field (did you mean "mean"?); load.think_time takes: distribution, mean`},
		{"repeated field", "load:\n  sessions: 10\n  sessions: 20\n", "t.yaml:3:3: load.sessions: is given twice (first at line 2); keep one"},
		{"repeated mix key", "workload:\n  mix: {balance: 1, balance: 2}\n", "t.yaml:2:21: workload.mix.balance: is given twice"},

		// Wrong types.
		{"int is a word", "load:\n  sessions: lots\n", `t.yaml:2:13: load.sessions: must be an integer, e.g. 2000; got "lots"`},
		{"int is quoted", "load:\n  sessions: \"2000\"\n", `t.yaml:2:13: load.sessions: must be an integer, e.g. 2000; got the string "2000" (remove the quotes)`},
		{"int is fractional", "workload:\n  customers: 1.5\n", `t.yaml:2:14: workload.customers: must be an integer, e.g. 20000; got "1.5"`},
		{"int is a list", "load:\n  pool_size: [1]\n", "t.yaml:2:14: load.pool_size: must be an integer, e.g. 32; got a list"},
		{"uint is negative", "workload:\n  seed: -1\n", `t.yaml:2:9: workload.seed: must be a non-negative integer, e.g. 1; got "-1"`},
		{"float is a word", "load:\n  rate: fast\n", `t.yaml:2:9: load.rate: must be a number, e.g. 500; got "fast"`},
		{"float is infinite", "load:\n  rate: .inf\n", `t.yaml:2:9: load.rate: must be a finite number`},
		{"bool is yes", "target:\n  fsync: yes\n", `t.yaml:2:10: target.fsync: must be true or false; got "yes"`},
		{"string is a mapping", "name: {a: b}\n", "t.yaml:1:7: name: must be a string, e.g. banking; got a mapping"},
		{"duration with bad unit", "load:\n  duration: 5 parsecs\n", `t.yaml:2:13: load.duration: must be a duration like 30s, 1m30s or 500ms (units: ns, us, ms, s, m, h); got "5 parsecs"`},
		{"duration bare number", "load:\n  duration: 30\n", "t.yaml:2:13: load.duration: needs a unit: write a unit, e.g. 30s (got 30)"},
		{"duration quoted bare number", "cutover:\n  warmup: \"60\"\n", "t.yaml:2:11: cutover.warmup: needs a unit: write a unit, e.g. 5s (got 60)"},
		{"duration in list item", "load:\n  stages:\n    - duration: 10\n      rate: 5\n", "t.yaml:3:17: load.stages[0].duration: needs a unit: write a unit, e.g. 30s"},
		{"section is a scalar", "load: fast\n", `t.yaml:1:7: load: must be a mapping of fields (model, arrival, sessions,`},
		{"struct is a scalar", "load:\n  think_time: 4s\n", `t.yaml:2:15: load.think_time: must be a mapping of fields (distribution, mean); got "4s"`},
		{"list is a scalar", "load:\n  stages: 30s\n", `t.yaml:2:11: load.stages: must be a list, e.g. [{duration: 30s, rate: 500}]; got "30s"`},
		{"list item is a scalar", "slo:\n  latency: [1s]\n", `t.yaml:2:13: slo.latency[0]: must be a mapping of fields (op, phase, percentile, max); got "1s"`},
		{"empty list item", "cutover:\n  steps:\n    -\n", "t.yaml:3:6: cutover.steps[0]: is empty; give a value, e.g. preflight, or remove the line"},
		{"mix is a scalar", "workload:\n  mix: 3\n", `t.yaml:2:8: workload.mix: must be a mapping of name: value lines, e.g. {transfer: 20}; got "3"`},
		{"mix value is a word", "workload:\n  mix: {balance: lots}\n", `t.yaml:2:18: workload.mix.balance: must be a number, e.g. 20; got "lots"`},
		{"mix value missing", "workload:\n  mix:\n    balance:\n", "t.yaml:3:13: workload.mix.balance: needs a value, e.g. balance: 20"},

		// Values that make no sense.
		{"zero sessions", "load:\n  sessions: 0\n", "t.yaml:2:13: load.sessions: must be a positive integer, e.g. 2000 (got 0)"},
		{"negative pool", "load:\n  pool_size: -1\n", "t.yaml:2:14: load.pool_size: must be a positive integer, e.g. 32 (got -1)"},
		{"negative workers", "load:\n  workers: -1\n", "t.yaml:2:12: load.workers: must be zero (2 × pool_size) or a positive integer, e.g. 64 (got -1)"},
		{"zero connections", "load:\n  connections: 0\n", "t.yaml:2:16: load.connections: must be a positive integer, e.g. 8 (got 0)"},
		{"negative retries", "load:\n  max_retries: -1\n", "t.yaml:2:16: load.max_retries: must be zero or a positive integer, e.g. 3 (got -1)"},
		{"negative rate", "load:\n  rate: -5\n", "t.yaml:2:9: load.rate: must be zero or a positive number, e.g. 500 (got -5)"},
		{"zero duration", "load:\n  duration: 0s\n", "t.yaml:2:13: load.duration: must be a positive duration, e.g. 30s (got 0s)"},
		{"negative op_timeout", "load:\n  op_timeout: -1s\n", "t.yaml:2:15: load.op_timeout: must be a positive duration, e.g. 5s (got -1s)"},
		{"negative grace", "load:\n  grace: -1s\n", "t.yaml:2:10: load.grace: must not be negative; use 0s for none or e.g. 5s (got -1s)"},
		{"zero think time open", "load:\n  think_time: {mean: 0s}\n", "t.yaml:2:22: load.think_time.mean: must be a positive duration, e.g. 4s (got 0s)"},
		{"zero stage duration", "load:\n  stages:\n    - duration: 0s\n      rate: 10\n", "t.yaml:3:17: load.stages[0].duration: must be a positive duration, e.g. 30s (got 0s)"},
		{"stage duration missing", "load:\n  stages:\n    - rate: 10\n", "t.yaml:3:7: load.stages[0].duration: must be a positive duration, e.g. 30s (got 0s)"},
		{"negative stage rate", "load:\n  stages:\n    - {duration: 1s, rate: -1}\n", "t.yaml:3:28: load.stages[0].rate: must be zero or a positive number, e.g. 500 (got -1)"},
		{"closed with stages", "load:\n  model: closed\n  stages: [{duration: 1s, rate: 1}]\n", "t.yaml:3:3: load.stages: stages ramp the open model's arrival rate"},
		{"zero customers", "workload:\n  customers: 0\n", "t.yaml:2:14: workload.customers: must be a positive integer, e.g. 20000 (got 0)"},
		{"zero accounts", "workload:\n  accounts_per_customer: 0\n", "t.yaml:2:26: workload.accounts_per_customer: must be a positive integer, e.g. 2 (got 0)"},
		{"negative balance", "workload:\n  opening_balance: -5\n", "t.yaml:2:20: workload.opening_balance: must be a positive integer, e.g. 100000 (got -5)"},
		{"zero actions", "workload:\n  actions_per_login: 0\n", "t.yaml:2:22: workload.actions_per_login: must be a positive integer, e.g. 20 (got 0)"},
		{"zero scale", "workload:\n  name: tpcb\n  scale: 0\n", "t.yaml:3:10: workload.scale: must be a positive integer, e.g. 10 (got 0)"},
		{"misrouted above 1", "workload:\n  misrouted_write_fraction: 1.5\n", "t.yaml:2:29: workload.misrouted_write_fraction: must be a fraction between 0 and 1, e.g. 0.01 (got 1.5)"},
		{"misrouted negative", "workload:\n  misrouted_write_fraction: -0.1\n", "t.yaml:2:29: workload.misrouted_write_fraction: must be a fraction between 0 and 1"},
		{"max_connections zero", "target:\n  max_connections: 0\n", "t.yaml:2:20: target.max_connections: must be a positive integer, e.g. 300 (got 0)"},
		{"max_connections too small", "load:\n  pool_size: 100\ntarget:\n  max_connections: 150\n", "t.yaml:4:20: target.max_connections: is 150 but the load needs 2 × load.pool_size + 10 = 210 connections; raise it to at least 210"},
		{"max_connections closed", "load:\n  model: closed\n  connections: 200\ntarget:\n  max_connections: 100\n", "t.yaml:5:20: target.max_connections: is 100 but the load needs load.connections + 10 = 210"},
		{"shared_buffers bad", "target:\n  shared_buffers: lots\n", `t.yaml:2:19: target.shared_buffers: must be a PostgreSQL memory size such as 256MB or 1GB (units kB, MB, GB, TB); got "lots"`},
		{"bad name", "name: my run/1\n", `t.yaml:1:7: name: "my run/1" cannot name an output directory`},
		{"zero step timeout", "cutover:\n  step_timeout: 0s\n", "t.yaml:2:17: cutover.step_timeout: must be a positive duration, e.g. 1m (got 0s)"},
		{"zero catch_up_samples", "cutover:\n  catch_up_samples: 0\n", "t.yaml:2:21: cutover.catch_up_samples: must be a positive integer, e.g. 3 (got 0)"},
		{"negative lag", "cutover:\n  catch_up_max_lag_bytes: -1\n", "t.yaml:2:27: cutover.catch_up_max_lag_bytes: must be zero or a positive integer, e.g. 1048576 (got -1)"},
		{"negative warmup", "cutover:\n  warmup: -1s\n", "t.yaml:2:11: cutover.warmup: must not be negative"},
		{"negative soak", "cutover:\n  soak: -1s\n", "t.yaml:2:9: cutover.soak: must not be negative"},
		{"warmup outlasts load", "load:\n  duration: 10s\ncutover:\n  enabled: true\n  warmup: 10s\n", "t.yaml:5:11: cutover.warmup: is 10s but the load runs only 10s"},
		{"negative lost writes", "slo:\n  max_lost_writes: -1\n", "t.yaml:2:20: slo.max_lost_writes: must be zero or a positive integer, e.g. 0 (got -1)"},
		{"error rate above 1", "slo:\n  max_error_rate: 2\n", "t.yaml:2:19: slo.max_error_rate: must be a fraction between 0 and 1, e.g. 0.01 (got 2)"},
		{"error rate negative", "slo:\n  max_error_rate: -0.5\n", "t.yaml:2:19: slo.max_error_rate: must be a fraction between 0 and 1"},
		{"achieved rate above 1", "slo:\n  min_achieved_rate: 95\n", "t.yaml:2:22: slo.min_achieved_rate: must be a fraction between 0 and 1, e.g. 0.95 (got 95)"},
		{"negative peak", "slo:\n  peak_rate: -1\n", "t.yaml:2:14: slo.peak_rate: must be zero or a positive number, e.g. 4000 (got -1)"},
		{"negative unavailable", "slo:\n  max_write_unavailable: -5s\n", "t.yaml:2:26: slo.max_write_unavailable: must not be negative"},
		{"latency without max", "slo:\n  latency:\n    - op: transfer\n", "t.yaml:3:7: slo.latency[0].max: must be a positive duration: the highest tolerated latency, e.g. 1s"},
		{"percentile zero", "slo:\n  latency:\n    - {percentile: 0, max: 1s}\n", "t.yaml:3:20: slo.latency[0].percentile: must be a percentile above 0 and at most 100, e.g. 99 or 99.9 (got 0)"},
		{"percentile above 100", "slo:\n  latency:\n    - {percentile: 101, max: 1s}\n", "t.yaml:3:20: slo.latency[0].percentile: must be a percentile above 0 and at most 100"},
		{"latency repeated", "slo:\n  latency:\n    - {max: 1s}\n    - {op: \"*\", max: 2s}\n", `t.yaml:4:7: slo.latency[1]: repeats slo.latency[0] (op "*", phase all, p99)`},

		// Unknown enumeration values.
		{"workload name", "workload:\n  name: oltp\n", `t.yaml:2:9: workload.name: unknown value "oltp"; use one of: banking, tpcb, tpcb-select`},
		{"load model", "load:\n  model: half-open\n", `t.yaml:2:10: load.model: unknown value "half-open"; use one of: open, closed`},
		{"load arrival", "load:\n  arrival: bursty\n", `t.yaml:2:12: load.arrival: unknown value "bursty"; use one of: poisson, constant`},
		{"think distribution", "load:\n  think_time:\n    distribution: normal\n", `t.yaml:3:19: load.think_time.distribution: unknown value "normal"; use one of: exponential, constant, uniform`},
		{"target kind", "target:\n  kind: k8s\n", `t.yaml:2:9: target.kind: unknown value "k8s"; use one of: local, container, aurora`},
		{"target endpoint", "target:\n  endpoint: vip\n", `t.yaml:2:13: target.endpoint: unknown value "vip"; use one of: dns, proxy`},
		{"cutover kind", "cutover:\n  kind: unplanned\n", `t.yaml:2:9: cutover.kind: unknown value "unplanned"; use one of: planned, crash`},
		{"cutover step unknown", "cutover:\n  steps: [preflight, promote]\n", `t.yaml:2:22: cutover.steps[1]: unknown step "promote"; steps are, in plan order: preflight, create_replica,`},
		{"cutover steps out of order", "cutover:\n  steps:\n    - switchover\n    - catch_up\n", `t.yaml:4:7: cutover.steps[1]: "catch_up" must come before "switchover": steps run in plan order`},
		{"cutover step twice", "cutover:\n  steps: [preflight, preflight]\n", `t.yaml:2:22: cutover.steps[1]: "preflight" is listed twice`},
		{"decommission without validate", "cutover:\n  steps: [switchover, redirect, decommission]\n", "t.yaml:2:3: cutover.steps: decommission is gated on validate (and soak); add validate before it"},
		{"rollback without target", "cutover:\n  rollback: true\n  steps: [switchover, redirect]\n", "t.yaml:2:13: cutover.rollback: failing back needs the old writer kept as a standby"},
		{"latency phase", "slo:\n  latency:\n    - {phase: cutover, max: 1s}\n", `t.yaml:3:15: slo.latency[0].phase: unknown value "cutover"; use one of: all, before, during, after`},
		{"latency op banking", "slo:\n  latency:\n    - {op: withdraw, max: 1s}\n", `t.yaml:3:12: slo.latency[0].op: unknown operation "withdraw" for workload banking; use "*" (every operation) or one of: login, balance,`},
		{"latency op tpcb", "workload: {name: tpcb}\nslo:\n  latency:\n    - {op: transfer, max: 1s}\n", `t.yaml:4:12: slo.latency[0].op: unknown operation "transfer" for workload tpcb; use "*" (every operation) or one of: tpcb`},
		{"latency op tpcb-select", "workload: {name: tpcb-select}\nslo:\n  latency:\n    - {op: tpcb, max: 1s}\n", `t.yaml:4:12: slo.latency[0].op: unknown operation "tpcb" for workload tpcb-select; use "*" (every operation) or one of: select`},
		{"mix unknown op", "workload:\n  mix: {balance: 1, withdraw: 2}\n", "t.yaml:2:21: workload.mix.withdraw: unknown operation; the banking mix weights: balance, statement, transfer, deposit, dashboard, background_job"},
		{"mix login", "workload:\n  mix:\n    login: 1\n    balance: 1\n", "t.yaml:3:5: workload.mix.login: login and logout bracket every session and cannot be weighted"},
		{"mix negative", "workload:\n  mix: {balance: -1, transfer: 1}\n", "t.yaml:2:9: workload.mix.balance: must be a weight of zero or more, e.g. 20 (got -1)"},
		{"mix all zero", "workload:\n  mix: {balance: 0}\n", "t.yaml:2:3: workload.mix: weights add up to 0; give at least one operation a positive weight"},
		{"mix empty", "workload:\n  mix: {}\n", "t.yaml:2:3: workload.mix: must weight at least one operation"},
		{"consequence of a bad duration is not reported", "load:\n  duration: 5 parsecs\ncutover: {enabled: true, warmup: 60s}\n", "t.yaml:2:13: load.duration: must be a duration like"},
		{"consequence of a bad workload name is not reported", "workload:\n  name: oltp\n  mix: {balance: 1}\nslo:\n  latency: [{op: x, max: 1s}]\n", `t.yaml:2:9: workload.name: unknown value "oltp"`},
		{"mix for tpcb", "workload:\n  name: tpcb\n  mix: {balance: 1}\n", "t.yaml:3:3: workload.mix: the mix weights banking operations; workload tpcb has no mix, remove it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := parseErrs(t, tt.src)
			if len(errs.List) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(errs.List), errs)
			}
			if got := errs.Error(); !strings.HasPrefix(got, tt.want) {
				t.Errorf("got  %s\nwant %s...", got, tt.want)
			}
		})
	}
}

// TestErrorPositions checks that the structured fields match the printed form.
func TestErrorPositions(t *testing.T) {
	errs := parseErrs(t, "load:\n  stages:\n    - duration: 1s\n      rate: 1\n    - duration: 1s\n      rate: -2\n")
	want := scenarios.FieldError{File: "t.yaml", Line: 6, Col: 13, Field: "load.stages[1].rate"}
	got := errs.List[0]
	got.Msg = ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestAllErrorsAtOnce(t *testing.T) {
	src := `load:
  sessions: lots
  duration: 5 parsecs
  colour: blue
slo:
  max_error_rate: 1.5
`
	errs := parseErrs(t, src)
	want := []string{
		`t.yaml:2:13: load.sessions: must be an integer, e.g. 2000; got "lots"`,
		`t.yaml:3:13: load.duration: must be a duration like 30s, 1m30s or 500ms (units: ns, us, ms, s, m, h); got "5 parsecs"`,
		`t.yaml:4:3: load.colour: unknown field; load takes: model, arrival, sessions, rate, think_time, stages, duration, pool_size, workers, connections, op_timeout, grace, max_retries, conn_max_lifetime`,
		`t.yaml:6:19: slo.max_error_rate: must be a fraction between 0 and 1, e.g. 0.01 (got 1.5)`,
	}
	if got := strings.Split(errs.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(errs.List) != 4 {
		t.Errorf("got %d problems, want 4", len(errs.List))
	}
	for _, e := range errs.Unwrap() {
		if !errors.Is(e, scenarios.ErrInvalid) {
			t.Errorf("problem %v does not match ErrInvalid", e)
		}
	}
}

func TestGolden(t *testing.T) {
	_, err := scenarios.LoadFile(filepath.Join("testdata", "bad.yaml"))
	if err == nil {
		t.Fatal("LoadFile(testdata/bad.yaml) succeeded")
	}
	testutil.Golden(t, filepath.Join("testdata", "bad.golden"), []byte(err.Error()+"\n"))
}

func TestLoadFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := scenarios.LoadFile(path)
	if !errors.Is(err, scenarios.ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false: %v", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(err, fs.ErrNotExist) = false: %v", err)
	}
	if want := path + ": no such file;"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %q, want prefix %q", err, want)
	}
}

func TestLoadFileSetsFileAndDigest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "my-run.yaml")
	if err := os.WriteFile(path, []byte("load: {sessions: 10}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := scenarios.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.File != path {
		t.Errorf("File = %q, want %q", s.File, path)
	}
	sum := sha256.Sum256([]byte("load: {sessions: 10}\n"))
	if want := hex.EncodeToString(sum[:]); s.SHA256 != want {
		t.Errorf("SHA256 = %q, want %q", s.SHA256, want)
	}
	if s.Name != "my-run" {
		t.Errorf("Name = %q, want the file's base name my-run", s.Name)
	}
}

func TestDefaults(t *testing.T) {
	d := scenarios.Defaults()
	checks := []struct {
		name      string
		got, want any
	}{
		{"workload.name", d.Workload.Name, "banking"},
		{"customers", d.Workload.Customers, 20000},
		{"accounts_per_customer", d.Workload.AccountsPerCustomer, 2},
		{"opening_balance", d.Workload.OpeningBalance, int64(100000)},
		{"actions_per_login", d.Workload.ActionsPerLogin, 20},
		{"scale", d.Workload.Scale, 10},
		{"seed", d.Workload.Seed, uint64(1)},
		{"mix", d.Workload.Mix, map[string]float64{"balance": 35, "statement": 15, "transfer": 20, "deposit": 8, "dashboard": 20, "background_job": 0.05}},
		{"model", d.Load.Model, "open"},
		{"arrival", d.Load.Arrival, "poisson"},
		{"sessions", d.Load.Sessions, 2000},
		{"rate", d.Load.Rate, 0.0},
		{"think distribution", d.Load.ThinkTime.Distribution, "exponential"},
		{"think mean", d.Load.ThinkTime.Mean.D(), 4 * time.Second},
		{"duration", d.Load.Duration.D(), 30 * time.Second},
		{"pool_size", d.Load.PoolSize, 32},
		{"workers", d.Load.Workers, 64},
		{"connections", d.Load.Connections, 8},
		{"op_timeout", d.Load.OpTimeout.D(), 5 * time.Second},
		{"grace", d.Load.Grace.D(), 5 * time.Second},
		{"max_retries", d.Load.MaxRetries, 3},
		{"target kind", d.Target.Kind, scenarios.TargetLocal},
		{"mode", d.Mode, scenarios.ModeDry},
		{"endpoint", d.Target.Endpoint, scenarios.EndpointDNS},
		{"fsync", *d.Target.Fsync, true},
		{"max_connections", d.Target.MaxConnections, 300},
		{"shared_buffers", d.Target.SharedBuffers, "256MB"},
		{"cutover enabled", d.Cutover.Enabled, false},
		{"cutover kind", d.Cutover.Kind, "planned"},
		{"warmup", d.Cutover.Warmup.D(), 5 * time.Second},
		{"step_timeout", d.Cutover.StepTimeout.D(), 60 * time.Second},
		{"catch_up_max_lag_bytes", d.Cutover.CatchUpMaxLagBytes, int64(1 << 20)},
		{"catch_up_samples", d.Cutover.CatchUpSamples, 3},
		{"dns_propagation", d.Cutover.DNSPropagation.D(), 2 * time.Second},
		{"stale_dns_window (deprecated)", d.Cutover.StaleDNSWindow.D(), time.Duration(0)},
		{"dns_ttl", d.Target.DNSTTL.D(), 5 * time.Second},
		{"dns_addr", d.Target.DNSAddr, "127.0.0.1:0"},
		{"soak", d.Cutover.Soak.D(), 5 * time.Second},
		{"max_lost_writes", d.SLO.MaxLostWrites, int64(0)},
		{"latency", len(d.SLO.Latency), 0},
		{"max_error_rate", d.SLO.MaxErrorRate == nil, true},
		{"latency entry default", scenarios.DefaultLatencySLO(), scenarios.LatencySLO{Op: "*", Phase: "all", Percentile: 99}},
		{"effective rate", d.EffectiveRate(), 500.0},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if errs := d.Validate(); errs != nil {
		t.Errorf("Defaults().Validate() = %v", errs)
	}
	// Every call is fresh.
	d.Workload.Mix["balance"] = 1
	*d.Target.Fsync = false
	d2 := scenarios.Defaults()
	if d2.Workload.Mix["balance"] != 35 || !*d2.Target.Fsync {
		t.Error("Defaults shares maps or pointers between calls")
	}
}

func TestParseDefaulting(t *testing.T) {
	t.Run("missing fields take defaults", func(t *testing.T) {
		s := mustParse(t, "name: x\n")
		want := scenarios.Defaults()
		want.Name, want.File, want.SHA256 = "x", s.File, s.SHA256
		if !reflect.DeepEqual(*s, want) {
			t.Errorf("got %+v\nwant %+v", *s, want)
		}
	})
	t.Run("empty sections take defaults", func(t *testing.T) {
		s := mustParse(t, "load:\ntarget: ~\n")
		if s.Load.Sessions != 2000 || s.Target.Kind != "local" {
			t.Errorf("got %+v", s)
		}
	})
	t.Run("name defaults to file name", func(t *testing.T) {
		s, err := scenarios.Parse("dir/nightly.yaml", []byte("load: {sessions: 5}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if s.Name != "nightly" || s.File != "dir/nightly.yaml" {
			t.Errorf("Name, File = %q, %q", s.Name, s.File)
		}
	})
	t.Run("workers follow pool_size", func(t *testing.T) {
		if s := mustParse(t, "load: {pool_size: 10}\n"); s.Load.Workers != 20 {
			t.Errorf("Workers = %d, want 20", s.Load.Workers)
		}
		if s := mustParse(t, "load: {pool_size: 10, workers: 7}\n"); s.Load.Workers != 7 {
			t.Errorf("Workers = %d, want 7", s.Load.Workers)
		}
		if s := mustParse(t, "load: {pool_size: 10, workers: 0}\n"); s.Load.Workers != 20 {
			t.Errorf("Workers = %d, want 20", s.Load.Workers)
		}
	})
	t.Run("mix replaces the default wholly", func(t *testing.T) {
		s := mustParse(t, "workload:\n  mix: {transfer: 1}\n")
		if want := map[string]float64{"transfer": 1}; !reflect.DeepEqual(s.Workload.Mix, want) {
			t.Errorf("Mix = %v, want %v", s.Workload.Mix, want)
		}
	})
	t.Run("tpcb drops the banking mix", func(t *testing.T) {
		s := mustParse(t, "workload: {name: tpcb}\n")
		if s.Workload.Mix != nil {
			t.Errorf("Mix = %v, want nil", s.Workload.Mix)
		}
	})
	t.Run("explicit false and zero are kept", func(t *testing.T) {
		s := mustParse(t, "target: {fsync: false}\nslo: {max_error_rate: 0}\nload: {max_retries: 0}\n")
		if s.Target.Fsync == nil || *s.Target.Fsync {
			t.Errorf("Fsync = %v, want false", s.Target.Fsync)
		}
		if s.SLO.MaxErrorRate == nil || *s.SLO.MaxErrorRate != 0 {
			t.Errorf("MaxErrorRate = %v, want pointer to 0", s.SLO.MaxErrorRate)
		}
		if s.Load.MaxRetries != 0 {
			t.Errorf("MaxRetries = %d, want 0", s.Load.MaxRetries)
		}
	})
	t.Run("latency entries start from their defaults", func(t *testing.T) {
		s := mustParse(t, "slo:\n  latency:\n    - max: 1s\n    - {op: transfer, phase: during, percentile: 99.9, max: 2s}\n")
		want := []scenarios.LatencySLO{
			{Op: "*", Phase: "all", Percentile: 99, Max: scenarios.Duration(time.Second)},
			{Op: "transfer", Phase: "during", Percentile: 99.9, Max: scenarios.Duration(2 * time.Second)},
		}
		if !reflect.DeepEqual(s.SLO.Latency, want) {
			t.Errorf("Latency = %+v, want %+v", s.SLO.Latency, want)
		}
	})
	t.Run("durations", func(t *testing.T) {
		s := mustParse(t, "load:\n  duration: 1m30s\n  op_timeout: 500ms\n  think_time: {mean: 2h}\n")
		if s.Load.Duration.D() != 90*time.Second || s.Load.OpTimeout.D() != 500*time.Millisecond || s.Load.ThinkTime.Mean.D() != 2*time.Hour {
			t.Errorf("got %v %v %v", s.Load.Duration, s.Load.OpTimeout, s.Load.ThinkTime.Mean)
		}
	})
	t.Run("anchors and merge keys", func(t *testing.T) {
		s := mustParse(t, "load:\n  stages:\n    - &s {duration: 10s, rate: 5}\n    - *s\n    - <<: *s\n      rate: 9\n")
		if len(s.Load.Stages) != 3 || s.Load.Stages[1] != s.Load.Stages[0] || s.Load.Stages[2].Rate != 9 || s.Load.Stages[2].Duration.D() != 10*time.Second {
			t.Errorf("Stages = %+v", s.Load.Stages)
		}
	})
	t.Run("merge key order", func(t *testing.T) {
		s := mustParse(t, "load:\n  stages:\n    - {duration: 1s, rate: 1}\n    - {duration: 2s, rate: 2}\n    - rate: 9\n      <<: [{duration: 3s, rate: 3}, {duration: 4s, rate: 4}]\n")
		if got := s.Load.Stages[2]; got.Rate != 9 || got.Duration.D() != 3*time.Second {
			t.Errorf("Stages[2] = %+v, want rate 9 (own key wins), duration 3s (first merge wins)", got)
		}
	})
	t.Run("steps and tpcb ops", func(t *testing.T) {
		s := mustParse(t, "workload: {name: tpcb}\ncutover:\n  steps: [preflight, create_replica, catch_up]\nslo:\n  latency: [{op: tpcb, max: 1s}]\n")
		if !reflect.DeepEqual(s.Cutover.Steps, []string{"preflight", "create_replica", "catch_up"}) {
			t.Errorf("Steps = %v", s.Cutover.Steps)
		}
	})
}

func TestValidateAfterOverrides(t *testing.T) {
	base, err := scenarios.LoadFile("smoke.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(s *scenarios.Scenario)
		want   []string // full error lines
	}{
		{"no change", func(*scenarios.Scenario) {}, nil},
		{"valid overrides", func(s *scenarios.Scenario) {
			s.Load.Duration = scenarios.Duration(2 * time.Minute)
			s.Load.Sessions = 5000
			s.Load.Rate = 1000
			s.Target.DSN = "postgres://127.0.0.1:5432/bank"
		}, nil},
		{"bad overrides", func(s *scenarios.Scenario) {
			s.Load.Sessions = -5
			s.Load.Duration = 0
			s.Load.Rate = -1
		}, []string{
			"smoke.yaml: load.sessions: must be a positive integer, e.g. 2000 (got -5)",
			"smoke.yaml: load.rate: must be zero or a positive number, e.g. 500 (got -1)",
			"smoke.yaml: load.duration: must be a positive duration, e.g. 30s (got 0s)",
		}},
		{"duration shorter than warmup", func(s *scenarios.Scenario) {
			s.Load.Duration = scenarios.Duration(3 * time.Second)
		}, []string{
			"smoke.yaml: cutover.warmup: is 5s but the load runs only 3s, so the cutover would start after the load stops; shorten the warmup or lengthen load.duration",
		}},
		{"target override", func(s *scenarios.Scenario) { s.Target.Kind = "mainframe" }, []string{
			`smoke.yaml: target.kind: unknown value "mainframe"; use one of: local, container, aurora`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base.Clone()
			tt.change(s)
			var got []string
			for _, err := range s.Validate() {
				if !errors.Is(err, scenarios.ErrInvalid) {
					t.Errorf("%v does not match ErrInvalid", err)
				}
				var fe scenarios.FieldError
				if !errors.As(err, &fe) || fe.Field == "" || fe.Line != 0 {
					t.Errorf("%#v: want a FieldError with Field and no position", err)
				}
				got = append(got, err.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	if errs := base.Validate(); errs != nil {
		t.Errorf("overrides on clones changed the original: %v", errs)
	}
}

func TestClone(t *testing.T) {
	s := mustParse(t, "slo:\n  max_error_rate: 0.1\n  latency: [{max: 1s}]\nload:\n  stages: [{duration: 1s, rate: 1}]\ncutover:\n  steps: [preflight]\n")
	c := s.Clone()
	if !reflect.DeepEqual(s, c) {
		t.Fatalf("Clone differs:\n%+v\n%+v", s, c)
	}
	c.Workload.Mix["balance"] = 99
	*c.Target.Fsync = false
	*c.SLO.MaxErrorRate = 0.9
	c.SLO.Latency[0].Op = "transfer"
	c.Load.Stages[0].Rate = 42
	c.Cutover.Steps[0] = "validate"
	if s.Workload.Mix["balance"] != 35 || !*s.Target.Fsync || *s.SLO.MaxErrorRate != 0.1 ||
		s.SLO.Latency[0].Op != "*" || s.Load.Stages[0].Rate != 1 || s.Cutover.Steps[0] != "preflight" {
		t.Errorf("Clone shares state with the original: %+v", s)
	}
}

func TestEffectiveRate(t *testing.T) {
	tests := []struct {
		name string
		load scenarios.Load
		want float64
	}{
		{"rate set", scenarios.Load{Model: "open", Rate: 400, Sessions: 2000, ThinkTime: scenarios.ThinkTime{Mean: scenarios.Duration(4 * time.Second)}}, 400},
		{"from sessions and think time", scenarios.Load{Model: "open", Sessions: 80000, ThinkTime: scenarios.ThinkTime{Mean: scenarios.Duration(20 * time.Second)}}, 4000},
		{"sub-second think time", scenarios.Load{Model: "open", Sessions: 10, ThinkTime: scenarios.ThinkTime{Mean: scenarios.Duration(500 * time.Millisecond)}}, 20},
		{"no think time", scenarios.Load{Model: "open", Sessions: 10}, 0},
		{"closed", scenarios.Load{Model: "closed", Sessions: 10, ThinkTime: scenarios.ThinkTime{Mean: scenarios.Duration(time.Second)}}, 0},
		{"closed with rate", scenarios.Load{Model: "closed", Rate: 7}, 7},
	}
	for _, tt := range tests {
		s := scenarios.Scenario{Load: tt.load}
		if got := s.EffectiveRate(); got != tt.want {
			t.Errorf("%s: EffectiveRate() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"30s", 30 * time.Second, ""},
		{"1m30s", 90 * time.Second, ""},
		{"500ms", 500 * time.Millisecond, ""},
		{"0s", 0, ""},
		{"30", 0, "write a unit, e.g. 30s"},
		{"1.5", 0, "write a unit, e.g. 30s"},
		{"5 parsecs", 0, "is not a duration like 30s"},
		{"1d", 0, "is not a duration like 30s"},
	}
	for _, tt := range tests {
		d, err := scenarios.ParseDuration(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseDuration(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || d.D() != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, d, err, tt.want)
		}
	}

	// Duration also works with plain yaml.v3 and as text.
	var v struct {
		D scenarios.Duration `yaml:"d"`
	}
	if err := yaml.Unmarshal([]byte("d: 1m30s\n"), &v); err != nil || v.D.D() != 90*time.Second {
		t.Errorf("yaml.Unmarshal = %v, %v", v.D, err)
	}
	if err := yaml.Unmarshal([]byte("d: 30\n"), &v); err == nil || !strings.Contains(err.Error(), "write a unit") {
		t.Errorf("yaml.Unmarshal of a bare number: err = %v", err)
	}
	out, err := yaml.Marshal(v)
	if err != nil || string(out) != "d: 1m30s\n" {
		t.Errorf("yaml.Marshal = %q, %v", out, err)
	}
	var d scenarios.Duration
	if err := d.UnmarshalText([]byte("2s")); err != nil || d.D() != 2*time.Second {
		t.Errorf("UnmarshalText = %v, %v", d, err)
	}
}

// TestShippedScenarios parses every scenarios/*.yaml and checks the facts each file
// promises its reader.
func TestShippedScenarios(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]func(t *testing.T, s *scenarios.Scenario){
		"banking.yaml": func(t *testing.T, s *scenarios.Scenario) {
			eq(t, "sessions", s.Load.Sessions, 80000)
			eq(t, "think mean", s.Load.ThinkTime.Mean.D(), 20*time.Second)
			eq(t, "effective rate", s.EffectiveRate(), 4000.0)
			eq(t, "duration", s.Load.Duration.D(), 10*time.Minute)
			eq(t, "pool_size", s.Load.PoolSize, 64)
			eq(t, "customers", s.Workload.Customers, 100000)
			eq(t, "cutover", s.Cutover.Enabled, true)
			eq(t, "cutover kind", s.Cutover.Kind, "planned")
			eq(t, "warmup", s.Cutover.Warmup.D(), 60*time.Second)
			eq(t, "steps (full plan)", len(s.Cutover.Steps), 0)
			eq(t, "max_write_unavailable", s.SLO.MaxWriteUnavailable.D(), 5*time.Second)
			eq(t, "max_error_rate", *s.SLO.MaxErrorRate, 0.01)
			eq(t, "max_lost_writes", s.SLO.MaxLostWrites, int64(0))
			eq(t, "min_achieved_rate", s.SLO.MinAchievedRate, 0.95)
			eq(t, "peak_rate", s.SLO.PeakRate, 4000.0)
			var transferDuring bool
			for _, l := range s.SLO.Latency {
				if l.Op == "transfer" && l.Phase == "during" && l.Percentile == 99 && l.Max.D() == 2*time.Second {
					transferDuring = true
				}
			}
			eq(t, "transfer during p99 < 2s", transferDuring, true)
		},
		"smoke.yaml": func(t *testing.T, s *scenarios.Scenario) {
			eq(t, "sessions", s.Load.Sessions, 2000)
			eq(t, "duration", s.Load.Duration.D(), 30*time.Second)
			eq(t, "rate", s.EffectiveRate(), 400.0)
			eq(t, "customers", s.Workload.Customers, 10000)
			eq(t, "pool_size", s.Load.PoolSize, 16)
			eq(t, "cutover", s.Cutover.Enabled, true)
			eq(t, "cutover kind", s.Cutover.Kind, "planned")
			eq(t, "warmup", s.Cutover.Warmup.D(), 5*time.Second)
			eq(t, "fsync", *s.Target.Fsync, true)
			sec := func(n int) scenarios.Duration { return scenarios.Duration(time.Duration(n) * time.Second) }
			eq(t, "latency", s.SLO.Latency, []scenarios.LatencySLO{
				{Op: "*", Phase: "before", Percentile: 99, Max: sec(1)},
				{Op: "*", Phase: "after", Percentile: 99, Max: sec(1)},
				{Op: "*", Phase: "during", Percentile: 99, Max: sec(5)},
			})
			eq(t, "max_write_unavailable", s.SLO.MaxWriteUnavailable.D(), 5*time.Second)
			eq(t, "max_error_rate", *s.SLO.MaxErrorRate, 0.05)
			eq(t, "min_achieved_rate", s.SLO.MinAchievedRate, 0.9)
		},
		"tpcb.yaml": func(t *testing.T, s *scenarios.Scenario) {
			eq(t, "workload", s.Workload.Name, "tpcb")
			eq(t, "scale", s.Workload.Scale, 10)
			eq(t, "model", s.Load.Model, "closed")
			eq(t, "connections", s.Load.Connections, 8)
			eq(t, "duration", s.Load.Duration.D(), 60*time.Second)
			eq(t, "cutover", s.Cutover.Enabled, false)
			eq(t, "max_lost_writes", s.SLO.MaxLostWrites, int64(0))
		},
		"tpcb-select.yaml": func(t *testing.T, s *scenarios.Scenario) {
			eq(t, "workload", s.Workload.Name, "tpcb-select")
			eq(t, "model", s.Load.Model, "closed")
			eq(t, "connections", s.Load.Connections, 32)
			eq(t, "cutover", s.Cutover.Enabled, false)
		},
	}
	seen := map[string]bool{}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			s, err := scenarios.LoadFile(f)
			if err != nil {
				t.Fatalf("shipped scenario does not load:\n%v", err)
			}
			if s.Name+".yaml" != f {
				t.Errorf("name %q does not match the file name", s.Name)
			}
			if s.Description == "" {
				t.Error("no description")
			}
			if check, ok := want[f]; ok {
				seen[f] = true
				check(t, s)
			}
		})
	}
	for f := range want {
		if !seen[f] {
			t.Errorf("%s is missing", f)
		}
	}
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestStarterYAML(t *testing.T) {
	s, err := scenarios.Parse("starter.yaml", []byte(scenarios.StarterYAML))
	if err != nil {
		t.Fatalf("StarterYAML does not parse:\n%v", err)
	}
	if len(s.SLO.Latency) == 0 {
		t.Error("the starter should show a latency SLO")
	}
	// Apart from its name, description and example SLO, the starter is the defaults:
	// the values it documents are the values used.
	got := *s
	got.Name, got.Description, got.File, got.SHA256, got.SLO.Latency = "", "", "", "", nil
	if want := scenarios.Defaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("starter values differ from Defaults():\ngot  %+v\nwant %+v", got, want)
	}

	// Every field of every struct is listed (possibly commented out), so the starter
	// cannot drift from the structs.
	for _, path := range yamlPaths(reflect.TypeFor[scenarios.Scenario](), "") {
		name := path[strings.LastIndex(path, ".")+1:]
		re := regexp.MustCompile(`(?m)^[ \t]*#?[ \t]*(- )?\{?` + regexp.QuoteMeta(name) + `:`)
		if !re.MatchString(scenarios.StarterYAML) {
			t.Errorf("field %s is not in StarterYAML", path)
		}
	}
}

// yamlPaths lists the YAML path of every field under t.
func yamlPaths(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		out = append(out, path)
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[scenarios.Duration]() {
			out = append(out, yamlPaths(ft, path)...)
		}
	}
	return out
}

func TestYAMLPathsSeesEveryStruct(t *testing.T) {
	paths := strings.Join(yamlPaths(reflect.TypeFor[scenarios.Scenario](), ""), " ")
	for _, p := range []string{"load.think_time.mean", "load.stages.rate", "slo.latency.percentile", "target.fsync", "cutover.rollback"} {
		if !strings.Contains(paths, p) {
			t.Errorf("yamlPaths misses %s", p)
		}
	}
}

func TestWorkloadOps(t *testing.T) {
	eq(t, "banking", scenarios.WorkloadOps("banking"), scenarios.BankingOps)
	eq(t, "tpcb", scenarios.WorkloadOps("tpcb"), []string{"tpcb"})
	eq(t, "tpcb-select", scenarios.WorkloadOps("tpcb-select"), []string{"select"})
	eq(t, "unknown", scenarios.WorkloadOps("x") == nil, true)
	for _, op := range scenarios.BankingMixOps {
		if !strings.Contains(strings.Join(scenarios.BankingOps, " "), op) {
			t.Errorf("mix op %s is not a banking op", op)
		}
	}
}

func TestErrorWithoutFileName(t *testing.T) {
	_, err := scenarios.Parse("", []byte("load:\n  sessions: 0\n"))
	if want := "line 2:13: load.sessions: must be a positive integer"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want prefix %q", err, want)
	}
}
