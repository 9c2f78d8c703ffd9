package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/internal/testutil"
)

// --metrics-addr and --metrics-linger: a value the scenario refuses is a usage
// error naming the flag (exit 2); a taken address is a runtime error naming it,
// before any load (exit 1, no result).
func TestRunMetricsFlags(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	scenario := filepath.Join(t.TempDir(), "tiny.yaml")
	tiny := "name: tiny\nworkload: {customers: 200}\nload: {sessions: 10, rate: 20, duration: 2s, pool_size: 2}\ntarget: {fsync: false}\n"
	if err := os.WriteFile(scenario, []byte(tiny), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		stderr   string
		needsPG  bool
		noResult bool
	}{
		{"not loopback", []string{"--metrics-addr", "0.0.0.0:9464"}, exitInput, "--metrics-addr 0.0.0.0:9464: must be a loopback host:port", false, true},
		{"no port", []string{"--metrics-addr", "127.0.0.1"}, exitInput, "--metrics-addr 127.0.0.1: must be a loopback host:port", false, true},
		{"a linger that is no duration", []string{"--metrics-linger", "soon"}, exitInput, "--metrics-linger soon:", false, true},
		{"a negative linger", []string{"--metrics-linger", "-5s"}, exitInput, "--metrics-linger -5s: must not be negative", false, true},
		{"a taken address", []string{"--metrics-addr", taken.Addr().String()}, exitRuntime, "metrics server on " + taken.Addr().String(), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needsPG {
				if testing.Short() {
					t.Skip("starts PostgreSQL")
				}
				testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
			}
			out := filepath.Join(t.TempDir(), "out")
			r := cli(t, t.Context(), append([]string{"run", scenario, "--out", out, "--quiet"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.err, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.err, tt.code, tt.stderr)
			}
			if _, err := os.Stat(filepath.Join(out, "result.json")); tt.noResult && err == nil {
				t.Error("a result.json was written: the load ran")
			}
		})
	}
}

// --metrics-allow-remote (or the scenario's telemetry.metrics_allow_remote)
// permits a metrics address off loopback, and the run says on stderr, even with
// --quiet, that the metrics are exposed beyond this machine. The address here is
// one no machine has (TEST-NET-1), and the database a closed port: nothing is
// served, the run fails at once (exit 1), after the warning.
func TestRunMetricsAllowRemote(t *testing.T) {
	const remote = "192.0.2.1:0"
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tiny := "workload: {customers: 200}\nload: {sessions: 10, rate: 20, duration: 2s, pool_size: 2}\n"
	plain := write("plain.yaml", "name: plain\n"+tiny)
	inFile := write("remote.yaml", "name: remote\n"+tiny+"telemetry:\n  metrics_addr: "+remote+"\n")
	allowed := write("allowed.yaml", "name: allowed\n"+tiny+"telemetry:\n  metrics_addr: "+remote+"\n  metrics_allow_remote: true\n")
	warning := func(why string) string {
		return "warning: metrics are exposed beyond this machine at http://" + remote + "/metrics (" + why + ")"
	}
	tests := []struct {
		name   string
		file   string
		args   []string
		code   int
		stderr string
	}{
		{"the flag", plain, []string{"--metrics-addr", remote, "--metrics-allow-remote"}, exitRuntime, warning("--metrics-allow-remote")},
		{"the flag, for the file's address", inFile, []string{"--metrics-allow-remote"}, exitRuntime, warning("--metrics-allow-remote")},
		{"the file", allowed, nil, exitRuntime, warning("telemetry.metrics_allow_remote")},
		{"the file, overruled", allowed, []string{"--metrics-allow-remote=false"}, exitInput,
			"--metrics-allow-remote=false: telemetry.metrics_addr: must be a loopback host:port"},
		{"the flag without an address off loopback", plain, []string{"--metrics-addr", "127.0.0.1:0", "--metrics-allow-remote"}, exitRuntime, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := append([]string{"run", tt.file, "--out", out, "--quiet", "--dsn", "postgres://postgres@" + closedPort(t) + "/rehearse"}, tt.args...)
			r := cli(t, t.Context(), args...)
			if r.code != tt.code || !strings.Contains(r.err, tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", r.code, r.err, tt.code, tt.stderr)
			}
			if tt.stderr == "" && strings.Contains(r.err, "exposed") {
				t.Errorf("a loopback address said to be exposed: %q", r.err)
			}
		})
	}
}
