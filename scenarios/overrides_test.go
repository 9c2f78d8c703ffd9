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
