package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/result"
)

// clientScenario is a short wet-able scenario with a client section.
func clientScenario(t *testing.T, client string) string {
	t.Helper()
	return writeFile(t, "client.yaml", `name: client
workload:
  customers: 2000
target:
  fsync: false
load:
  sessions: 500
  rate: 200
  duration: 12s
  pool_size: 8
  op_timeout: 3s
client:
`+client+`
cutover:
  enabled: true
  warmup: 3s
  soak: 3s
`)
}

// stepEnd is when the named step of m ended.
func stepEnd(m *result.Migration, name string) float64 {
	for _, s := range m.Steps {
		if s.Name == name {
			return s.EndS
		}
	}
	return -1
}

func errorClass(res *result.Result, class string) (n int64, first float64) {
	first = -1
	for _, e := range res.Errors {
		if e.Class == class {
			n += e.Count
			if first < 0 || e.FirstS < first {
				first = e.FirstS
			}
		}
	}
	return n, first
}

// Each client preset through a real wet cutover behind the DNS endpoints: the
// failures users saw and the failed attempts the database saw, as the preset's
// client stack makes them, and no write applied twice.
func TestClientPresetsThroughADNSCutover(t *testing.T) {
	if testing.Short() {
		t.Skip("wet cutovers")
	}
	tests := []struct {
		name   string
		client string
		check  func(t *testing.T, res *result.Result)
	}{
		{"naive: every failed attempt is a failure users saw", "  preset: naive\n", func(t *testing.T, res *result.Result) {
			if tot := res.Totals; tot.Failed == 0 || tot.FailedAttempts != tot.Failed+tot.Ambiguous || tot.Retries != 0 {
				t.Errorf("totals %+v", tot)
			}
		}},
		{"pgx: no retries", "  preset: pgx\n", func(t *testing.T, res *result.Result) {
			if tot := res.Totals; tot.FailedAttempts != tot.Failed+tot.Ambiguous || tot.Retries != 0 {
				t.Errorf("totals %+v", tot)
			}
		}},
		{"hikari: no retries, 30 s DNS cache", "  preset: hikari\n", func(t *testing.T, res *result.Result) {
			if tot := res.Totals; tot.FailedAttempts != tot.Failed+tot.Ambiguous || res.Client.DNSCacheTTL != "30s" {
				t.Errorf("totals %+v client %+v", tot, res.Client)
			}
		}},
		{"jdbc-dns-forever: pinned to the demoted writer", "  preset: jdbc-dns-forever\n", func(t *testing.T, res *result.Result) {
			n, first := errorClass(res, "read_only")
			rejoined := stepEnd(res.Migration, "keep_rollback_target")
			if n == 0 || first < rejoined-0.5 {
				t.Errorf("read_only errors: %d, first at %.3f s; want some once the old writer rejoined as a standby (%.3f s)", n, first, rejoined)
			}
		}},
		{"aws-jdbc-wrapper: follows the topology, never the demoted writer", "  preset: aws-jdbc-wrapper\n", func(t *testing.T, res *result.Result) {
			if n, _ := errorClass(res, "read_only"); n != 0 {
				t.Errorf("%d read_only errors: the wrapper reached the demoted writer", n)
			}
			if res.Totals.Retries == 0 || res.Client.Failover != "topology" {
				t.Errorf("totals %+v client %+v", res.Totals, res.Client)
			}
		}},
		{"retries that span the outage: users see nothing", "  retry: {max_attempts: 8, backoff: 250ms, max_backoff: 2s}\n", func(t *testing.T, res *result.Result) {
			if tot := res.Totals; tot.Failed != 0 || tot.FailedAttempts == 0 || tot.Retries == 0 {
				t.Errorf("totals %+v: want no failure users saw, and failed attempts", tot)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, out := runCutoverOut(t, clientScenario(t, tt.client), "--mode", "wet", "--endpoint", "dns")
			stepsOK(t, res.Migration, allOK)
			checkIntegrity(t, res)
			if res.Client == nil {
				t.Fatal("no client settings in the result")
			}
			tt.check(t, res)
			md := readFileString(t, filepath.Join(out, "report.md"))
			for _, want := range []string{"what users saw and what the database saw", "## Client", res.Client.Preset} {
				if !strings.Contains(md, want) {
					t.Errorf("report.md lacks %q", want)
				}
			}
		})
	}
}

// Bad client settings are refused before anything starts (exit 2), saying what
// the valid values are; a DNS address already in use is a runtime failure (exit 1)
// naming the address.
func TestClientBadInput(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name, yaml string
		args       []string
		code       int
		want       []string
	}{
		{"unknown preset", "client:\n  preset: odbc\n", nil, 2, []string{"client.preset", "aws-jdbc-wrapper, hikari, jdbc-dns-forever, naive, pgx"}},
		{"unknown retry class", "client:\n  retry:\n    on: [gremlins]\n", nil, 2, []string{"client.retry.on[0]", "connection, connection_refused"}},
		{"max_attempts below 1", "client:\n  retry:\n    max_attempts: 0\n", nil, 2, []string{"client.retry.max_attempts: must be at least 1"}},
		{"more connections than the server takes", "client:\n  app_instances: 8\n  pool_size: 16\ntarget:\n  max_connections: 100\n", nil, 2,
			[]string{"target.max_connections", "client.app_instances 8 × client.pool_size 16 × 2 endpoints + 10 = 266"}},
		{"DNS address in use", "target:\n  dns_addr: " + taken.LocalAddr().String() + "\ncutover:\n  enabled: true\n", []string{"--mode", "wet"}, 1,
			[]string{taken.LocalAddr().String(), "in use"}},
		{"more connections than an existing server has room for", "client:\n  app_instances: 4\n  pool_size: 200\ntarget:\n  dsn: " + sharedDSN(t) + "\n", nil, 2,
			[]string{"the load needs 4 pool(s) × client.pool_size 200 = 800 connections", "has room for", "max_connections"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := writeFile(t, "bad.yaml", "name: bad\nload:\n  duration: 10s\n"+tt.yaml)
			r := cli(t, t.Context(), append([]string{"run", sc, "--out", filepath.Join(t.TempDir(), "o"), "--quiet"}, tt.args...)...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d\n%s", r.code, tt.code, r.err)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.err, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.err)
				}
			}
		})
	}
}

func readFileString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
