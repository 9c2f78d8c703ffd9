package scenarios_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// Every address rehearse listens on for a run is on loopback: a scenario that asks
// for another is refused, naming the field. Metrics alone may be served beyond
// this machine, when the scenario says so.
func TestListenAddrs(t *testing.T) {
	tests := []struct {
		name, yaml string
		err        string // "" = valid
		remote     bool   // MetricsRemote of the valid scenario
	}{
		{"dns on loopback", "target:\n  dns_addr: 127.0.0.1:5353\n", "", false},
		{"dns on another loopback address", "target:\n  dns_addr: 127.0.42.7:0\n", "", false},
		{"dns on IPv6 loopback", "target:\n  dns_addr: '[::1]:0'\n", "", false},
		{"dns on a private address", "target:\n  dns_addr: 10.0.0.1:53\n", "target.dns_addr: must be a loopback host:port", false},
		{"dns on every address", "target:\n  dns_addr: 0.0.0.0:53\n", "target.dns_addr: must be a loopback host:port", false},
		{"dns without a host", "target:\n  dns_addr: ':53'\n", "target.dns_addr: must be a loopback host:port", false},
		{"dns on a host name", "target:\n  dns_addr: localhost:5353\n", "target.dns_addr: must be a loopback host:port with an IP address", false},
		{"dns on no port", "target:\n  dns_addr: 127.0.0.1\n", "target.dns_addr: must be a loopback host:port", false},
		{"dns on a port past 65535", "target:\n  dns_addr: 127.0.0.1:65536\n", "target.dns_addr: must be a loopback host:port", false},
		{"dns on a service name", "target:\n  dns_addr: 127.0.0.1:domain\n", "target.dns_addr: must be a loopback host:port", false},
		{"metrics on loopback", "telemetry:\n  metrics_addr: 127.0.0.1:9464\n", "", false},
		{"metrics on localhost", "telemetry:\n  metrics_addr: localhost:0\n", "", false},
		{"metrics on IPv6 loopback", "telemetry:\n  metrics_addr: '[::1]:9464'\n", "", false},
		{"metrics on every address", "telemetry:\n  metrics_addr: 0.0.0.0:9464\n",
			"telemetry.metrics_addr: must be a loopback host:port such as 127.0.0.1:9464 (got \"0.0.0.0:9464\"): metrics are served to this machine only; to serve them beyond it, set telemetry.metrics_allow_remote: true (--metrics-allow-remote)", false},
		{"metrics without a host", "telemetry:\n  metrics_addr: ':9464'\n", "telemetry.metrics_addr: must be a loopback host:port", false},
		{"metrics on a host's address", "telemetry:\n  metrics_addr: 192.0.2.10:9464\n", "--metrics-allow-remote", false},
		{"metrics on a host name", "telemetry:\n  metrics_addr: metrics.example.com:9464\n", "--metrics-allow-remote", false},
		{"metrics on every address, allowed", "telemetry:\n  metrics_addr: 0.0.0.0:9464\n  metrics_allow_remote: true\n", "", true},
		{"metrics without a host, allowed", "telemetry:\n  metrics_addr: ':9464'\n  metrics_allow_remote: true\n", "", true},
		{"loopback metrics, allowed", "telemetry:\n  metrics_addr: 127.0.0.1:9464\n  metrics_allow_remote: true\n", "", false},
		{"allowed, but no metrics", "telemetry:\n  metrics_allow_remote: true\n", "", false},
		{"allowed, but the address is no address", "telemetry:\n  metrics_addr: 0.0.0.0\n  metrics_allow_remote: true\n",
			"telemetry.metrics_addr: must be a loopback host:port such as 127.0.0.1:9464, a port of 0-65535 (got \"0.0.0.0\")", false},
		{"metrics on a port past 65535", "telemetry:\n  metrics_addr: 127.0.0.1:99999\n", "telemetry.metrics_addr: must be a loopback host:port", false},
		{"an allowance that is no boolean", "telemetry:\n  metrics_addr: 0.0.0.0:9464\n  metrics_allow_remote: please\n", "telemetry.metrics_allow_remote", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := scenarios.Parse("t.yaml", []byte(tt.yaml))
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := s.Telemetry.MetricsRemote(); got != tt.remote {
					t.Errorf("MetricsRemote() = %v, want %v", got, tt.remote)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
				t.Errorf("%d problems, want one:\n%v", n, err)
			}
		})
	}
}

// LoadFileWith lifts a restriction before the file is validated, as
// --metrics-allow-remote does for the file's own metrics address.
func TestLoadFileWith(t *testing.T) {
	path := filepath.Join(t.TempDir(), "remote.yaml")
	if err := os.WriteFile(path, []byte("name: remote\ntelemetry:\n  metrics_addr: 0.0.0.0:9464\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := scenarios.LoadFile(path); err == nil || !strings.Contains(err.Error(), "remote.yaml:3:17: telemetry.metrics_addr: must be a loopback host:port") {
		t.Fatalf("LoadFile: %v", err)
	}
	s, err := scenarios.LoadFileWith(path, func(s *scenarios.Scenario) { s.Telemetry.MetricsAllowRemote = true })
	if err != nil {
		t.Fatal(err)
	}
	if !s.Telemetry.MetricsAllowRemote || !s.Telemetry.MetricsRemote() || s.SHA256 == "" || s.File != path {
		t.Errorf("loaded %+v", s.Telemetry)
	}
	if _, err := scenarios.LoadFileWith(filepath.Join(t.TempDir(), "none.yaml"), nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a missing file: %v", err)
	}
}
