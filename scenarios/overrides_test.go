package scenarios_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/scenarios"
)

func TestWithThenValidate(t *testing.T) {
	d := func(v time.Duration) *scenarios.Duration { x := scenarios.Duration(v); return &x }
	n := func(v int) *int { return &v }
	f := func(v float64) *float64 { return &v }
	base := scenarios.Defaults()
	base.Cutover.Enabled = true
	base.Load.Stages = []scenarios.Stage{{Duration: scenarios.Duration(time.Minute), Rate: 800}}
	tests := []struct {
		name   string
		o      scenarios.Overrides
		fields []string
		check  func(*scenarios.Scenario) bool
	}{
		{"nothing", scenarios.Overrides{}, nil, func(s *scenarios.Scenario) bool { return s.Mode == scenarios.ModeDry && len(s.Load.Stages) == 1 }},
		{"a rate replaces the ramp", scenarios.Overrides{Rate: f(250)}, nil, func(s *scenarios.Scenario) bool { return s.Load.Rate == 250 && len(s.Load.Stages) == 0 }},
		{"every field", scenarios.Overrides{Mode: scenarios.ModeWet, Target: scenarios.TargetContainer, Endpoint: scenarios.EndpointProxy, Duration: d(time.Minute), Sessions: n(10), Rollback: true}, nil,
			func(s *scenarios.Scenario) bool {
				return s.Mode == scenarios.ModeWet && s.Target.Kind == scenarios.TargetContainer && s.Target.Endpoint == scenarios.EndpointProxy &&
					s.Load.Duration.D() == time.Minute && s.Load.Sessions == 10 && s.Cutover.Rollback
			}},
		{"bad values, all reported", scenarios.Overrides{Mode: "damp", Duration: d(0), Sessions: n(-1)}, []string{"load.sessions", "load.duration", "mode"}, nil},
		{"wet without a cutover", scenarios.Overrides{Mode: scenarios.ModeWet}, []string{"mode"}, nil},
		{"wet against a dsn", scenarios.Overrides{Mode: scenarios.ModeWet, DSN: "postgres://x@127.0.0.1/db"}, []string{"target.dsn"}, nil},
		{"containers with a dsn", scenarios.Overrides{Target: scenarios.TargetContainer, DSN: "postgres://x@127.0.0.1/db"}, []string{"target.dsn"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := base.Clone()
			if tt.name == "wet without a cutover" {
				b.Cutover.Enabled = false
			}
			s := b.With(tt.o)
			var got []string
			for _, e := range s.Validate() {
				got = append(got, e.(scenarios.FieldError).Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Errorf("problems on %v, want %v", got, tt.fields)
			}
			if tt.check != nil && !tt.check(s) {
				t.Errorf("merged scenario %+v", s)
			}
			if b.Mode != scenarios.ModeDry || len(b.Load.Stages) != 1 {
				t.Error("With changed the scenario it was given")
			}
		})
	}
}

// The starters for the script and replay workloads parse and validate: only their
// files (scripts, capture) are the user's to write.
func TestWorkloadStarters(t *testing.T) {
	for name, text := range map[string]string{"script": scenarios.StarterScriptYAML, "replay": scenarios.StarterReplayYAML} {
		s, err := scenarios.Parse(name+".yaml", []byte(text))
		if err != nil {
			t.Fatalf("%s starter: %v", name, err)
		}
		if s.Workload.Name != name {
			t.Errorf("%s starter has workload %s", name, s.Workload.Name)
		}
	}
}

func TestScriptAndReplaySections(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // substrings of the error, "" = valid
	}{
		{"a valid script workload", "workload:\n  name: script\n  scripts:\n    - {file: a.sql}\n    - {file: x/a.sql, weight: 2, kind: read}\n", nil},
		{"no scripts", "workload:\n  name: script\n", []string{"workload.scripts: a script workload needs at least one script"}},
		{"zero and negative weights", "workload:\n  name: script\n  scripts:\n    - {file: a.sql, weight: 0}\n    - {file: b.sql, weight: -2}\n",
			[]string{"workload.scripts[0].weight: must be a positive weight", "workload.scripts[1].weight: must be a positive weight"}},
		{"unknown kind", "workload:\n  name: script\n  scripts:\n    - {file: a.sql, weight: 1, kind: maybe}\n", []string{"workload.scripts[0].kind"}},
		{"bad invariant", "workload:\n  name: script\n  scripts: [{file: a.sql, weight: 1}]\n  invariants:\n    - {name: x, sql: \"SELECT 1\", expect: often}\n", []string{"workload.invariants[0].expect: must be unchanged or a number"}},
		{"script fields on banking", "workload:\n  name: banking\n  scripts: [{file: a.sql, weight: 1}]\n", []string{"workload.scripts: belongs to the script workload"}},
		{"replay without a capture", "workload:\n  name: replay\n", []string{"workload.capture: a replay needs a capture"}},
		{"replay at speed 0", "workload:\n  name: replay\n  capture: x.csv\n  speed: 0\n", []string{"workload.speed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := scenarios.Parse("s.yaml", []byte(tt.yaml))
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if ops := s.Ops(); strings.Join(ops, ",") != "a,a_2" || s.Workload.Scripts[0].Kind != "write" {
					t.Errorf("ops %v, kind %q", ops, s.Workload.Scripts[0].Kind)
				}
				return
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

// stale_dns_window still parses: it sets dns_propagation, with a note saying so.
func TestStaleDNSWindowIsDeprecated(t *testing.T) {
	tests := []struct {
		yaml string
		want time.Duration
		note bool
	}{
		{"cutover:\n  stale_dns_window: 3s\n", 3 * time.Second, true},
		{"cutover:\n  stale_dns_window: 3s\n  dns_propagation: 1s\n", time.Second, true},
		{"cutover:\n  dns_propagation: 4s\n", 4 * time.Second, false},
		{"name: x\n", 2 * time.Second, false},
	}
	for _, tt := range tests {
		s, err := scenarios.Parse("s.yaml", []byte(tt.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if s.Cutover.DNSPropagation.D() != tt.want || (len(s.Notes) > 0) != tt.note {
			t.Errorf("%q: propagation %v notes %q", tt.yaml, s.Cutover.DNSPropagation, s.Notes)
		}
	}
	if _, err := scenarios.Parse("s.yaml", []byte("target:\n  dns_addr: 10.0.0.1:53\n")); err == nil || !strings.Contains(err.Error(), "target.dns_addr: must be a loopback host:port") {
		t.Errorf("a non-loopback DNS address: %v", err)
	}
}
