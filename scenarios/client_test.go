package scenarios_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/scenarios"
)

func TestClientPresetsAndAliases(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(c scenarios.Client, l scenarios.Load) bool
		err   string
	}{
		{"defaults are the naive preset", "name: x\n", func(c scenarios.Client, l scenarios.Load) bool {
			return c.Preset == "naive" && c.AppInstances == 1 && c.PoolSize == 32 && c.Retry.MaxAttempts == 1 && !c.ValidateOnBorrow && l.Workers == 64
		}, ""},
		{"a preset fills what the file leaves out", "client:\n  preset: hikari\n  app_instances: 8\n", func(c scenarios.Client, l scenarios.Load) bool {
			return c.PoolSize == 10 && l.PoolSize == 10 && c.AppInstances == 8 && c.DNSCacheTTL == "30s" && c.MaxLifetime.D() == 30*time.Minute && l.Workers == 160
		}, ""},
		{"the file wins over the preset", "client:\n  preset: jdbc-dns-forever\n  dns_cache_ttl: 5s\n  retry: {max_attempts: 8, backoff: 250ms}\n", func(c scenarios.Client, _ scenarios.Load) bool {
			return c.DNSCacheTTL == "5s" && c.Retry.MaxAttempts == 8 && c.Retry.Backoff.D() == 250*time.Millisecond && c.Retry.MaxBackoff.D() == 2*time.Second
		}, ""},
		{"load.pool_size is an alias", "load:\n  pool_size: 16\n  conn_max_lifetime: 1m\nclient:\n  preset: pgx\n", func(c scenarios.Client, l scenarios.Load) bool {
			return c.PoolSize == 16 && c.MaxLifetime.D() == time.Minute && l.PoolSize == 16
		}, ""},
		{"aws-jdbc-wrapper fails over through the topology", "client:\n  preset: aws-jdbc-wrapper\n", func(c scenarios.Client, _ scenarios.Load) bool {
			return c.Failover == scenarios.FailoverTopology && c.Retry.MaxAttempts == 2
		}, ""},
		{"unknown preset", "client:\n  preset: odbc\n", nil, "client.preset: unknown preset \"odbc\"; use one of: aws-jdbc-wrapper, hikari, jdbc-dns-forever, naive, pgx"},
		{"unknown retry class", "client:\n  retry:\n    on: [connection, gremlins]\n", nil, "client.retry.on[1]: unknown error class \"gremlins\"; the classes are: connection, connection_refused"},
		{"max_attempts below 1", "client:\n  retry:\n    max_attempts: 0\n", nil, "client.retry.max_attempts: must be at least 1"},
		{"bad dns cache", "client:\n  dns_cache_ttl: sometimes\n", nil, "client.dns_cache_ttl"},
		{"two values for one alias", "load:\n  pool_size: 16\nclient:\n  pool_size: 8\n", nil, "load.pool_size: is an alias of client.pool_size"},
		{"more connections than the server takes", "client:\n  app_instances: 8\n  pool_size: 16\ntarget:\n  max_connections: 100\n", nil,
			"target.max_connections: is 100 but the load needs client.app_instances 8 × client.pool_size 16 × 2 endpoints + 10 = 266 connections"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := scenarios.Parse("c.yaml", []byte(tt.yaml))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				// One problem, not its consequences too (an unknown preset's
				// fields are not reported unset).
				if n := strings.Count(err.Error(), "\n") + 1; n != 1 {
					t.Errorf("%d problems, want 1:\n%v", n, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(s.Client, s.Load) {
				t.Errorf("client %+v load pool %d workers %d", s.Client, s.Load.PoolSize, s.Load.Workers)
			}
		})
	}
}

// Every preset is valid on its own.
func TestPresetsValidate(t *testing.T) {
	for _, name := range scenarios.PresetNames() {
		s, err := scenarios.Parse("p.yaml", []byte("client:\n  preset: "+name+"\n"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if errs := s.Validate(); len(errs) > 0 {
			t.Errorf("%s: %v", name, errs)
		}
	}
}

func TestTelemetryAndDatabaseSLOs(t *testing.T) {
	tests := []struct {
		name, yaml, err string
	}{
		{"defaults", "slo:\n  database:\n    - {metric: cpu, max: 80}\n", ""},
		{"unknown metric", "slo:\n  database:\n    - {metric: cpu_temp, max: 80}\n", "slo.database[0].metric: unknown metric \"cpu_temp\"; use one of: acu, acu_utilization"},
		{"unknown stat", "slo:\n  database:\n    - {metric: cpu, stat: p42, max: 80}\n", "slo.database[0].stat: unknown value \"p42\"; use one of: min, mean, p50, p95, p99, max"},
		{"remote metrics", "telemetry:\n  metrics_addr: 0.0.0.0:9464\n", "telemetry.metrics_addr: must be a loopback host:port"},
		{"unknown node", "slo:\n  database:\n    - {metric: cpu, node: bogus, max: 80}\n",
			"slo.database[0].node: unknown node \"bogus\"; use one of: writer, reader, replica, rollback_target, or a node of the local target: node1"},
		{"a node the run does not have", "slo:\n  database:\n    - {metric: cpu, node: node2, max: 80}\n",
			"slo.database[0].node: unknown node \"node2\"; use one of: writer, reader, replica, rollback_target, or a node of the local target: node1"},
		{"unknown node in a container", "target:\n  kind: container\ncutover:\n  enabled: true\nslo:\n  database:\n    - {metric: cpu, node: node3, max: 80}\n",
			"slo.database[0].node: unknown node \"node3\"; use one of: writer, reader, replica, rollback_target, or a node of the container target: node1, node2"},
		{"the replica a cutover adds", "cutover:\n  enabled: true\nslo:\n  database:\n    - {metric: cpu, node: node2, max: 80}\n", "-"},
		{"an Aurora instance's name", "target:\n  kind: aurora\n  dsn: postgres://postgres@demo.cluster-x.us-east-1.rds.amazonaws.com:5432/db\nslo:\n  database:\n    - {metric: cpu, node: demo-instance-1, max: 80}\n", "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := scenarios.Parse("t.yaml", []byte(tt.yaml))
			if tt.err == "-" { // valid; not the defaults
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if d := s.SLO.Database[0]; d.Node != "writer" || d.Phase != "all" || d.Stat != "max" || s.Telemetry.SampleInterval.D() != time.Second {
					t.Errorf("defaults %+v %+v", d, s.Telemetry)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("err = %v, want %q", err, tt.err)
			}
		})
	}
}
