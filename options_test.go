package rehearse

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// Options are merged into a copy of the scenario first, then the copy is validated
// once: every problem is reported together, each naming its field.
func TestOptionsMergeThenValidate(t *testing.T) {
	base := func(t *testing.T) *scenarios.Scenario {
		t.Helper()
		sc, err := scenarios.LoadFile("scenarios/banking.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	tests := []struct {
		name   string
		opts   []Option
		check  func(t *testing.T, s *scenarios.Scenario)
		fields []string // the fields of the expected problems; nil = no error
		msg    string   // substring of the error
	}{
		{"rate replaces the ramp", []Option{WithRate(250)}, func(t *testing.T, s *scenarios.Scenario) {
			if s.Load.Rate != 250 || len(s.Load.Stages) != 0 {
				t.Errorf("rate %v stages %v", s.Load.Rate, s.Load.Stages)
			}
		}, nil, ""},
		{"duration and sessions", []Option{WithDuration(7 * time.Minute), WithSessions(1234)}, func(t *testing.T, s *scenarios.Scenario) {
			if s.Load.Duration.D() != 7*time.Minute || s.Load.Sessions != 1234 {
				t.Errorf("duration %v sessions %d", s.Load.Duration, s.Load.Sessions)
			}
		}, nil, ""},
		{"rollback and endpoint", []Option{WithRollback(true), WithEndpoint("proxy")}, func(t *testing.T, s *scenarios.Scenario) {
			if !s.Cutover.Rollback || s.Target.Endpoint != scenarios.EndpointProxy {
				t.Errorf("rollback %v endpoint %s", s.Cutover.Rollback, s.Target.Endpoint)
			}
		}, nil, ""},
		{"wet", []Option{WithMode("wet"), WithDuration(5 * time.Minute)}, func(t *testing.T, s *scenarios.Scenario) {
			if s.Mode != scenarios.ModeWet {
				t.Errorf("mode %s", s.Mode)
			}
		}, nil, ""},
		{"bad mode", []Option{WithMode("damp")}, nil, []string{"mode"}, `unknown value "damp"`},
		{"negative rate", []Option{WithRate(-1)}, nil, []string{"load.rate"}, "must be zero or a positive number"},
		{"zero sessions", []Option{WithSessions(0)}, nil, []string{"load.sessions"}, "must be a positive integer"},
		{"negative duration", []Option{WithDuration(-time.Second)}, nil, []string{"load.duration"}, "must be a positive duration"},
		{"every problem at once", []Option{WithSessions(-3), WithEndpoint("carrier-pigeon"), WithMode("damp")}, nil, []string{"load.sessions", "target.endpoint", "mode"}, ""},
		{"wet with a dsn", []Option{WithMode("wet"), WithDSN("postgres://u@127.0.0.1:1/x")}, nil, []string{"target.dsn"}, "points at a database it cannot fail over"},
		{"container with a dsn", []Option{WithTarget("container"), WithDSN("postgres://u@127.0.0.1:1/x")}, nil, []string{"target.dsn"}, "starts its own containers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := base(t)
			o := collect(tt.opts)
			s, err := o.scenario(sc)
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				tt.check(t, s)
			} else {
				var se *scenarios.Errors
				if !errors.Is(err, ErrInvalidInput) || !errors.As(err, &se) {
					t.Fatalf("err = %v, want an invalid-input error listing field problems", err)
				}
				var got []string
				for _, fe := range se.List {
					got = append(got, fe.Field)
				}
				if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
					t.Errorf("problems on %v, want %v: %v", got, tt.fields, err)
				}
				if !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("err = %v, want it to contain %q", err, tt.msg)
				}
			}
			if len(sc.Load.Stages) == 0 || sc.Mode != scenarios.ModeDry {
				t.Error("merging changed the scenario it was given")
			}
		})
	}
}

func TestAuroraConfirmIsCheckedBeforeAnythingStarts(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		err  string
	}{
		{"wet without confirm", []Option{WithTarget("aurora"), WithMode("wet"), WithDSN("postgres://u@mycluster.cluster-abc.us-east-1.rds.amazonaws.com/app")}, "confirm"},
		{"wet with another cluster", []Option{WithTarget("aurora"), WithMode("wet"), WithConfirm("other"), WithDSN("postgres://u@mycluster.cluster-abc.us-east-1.rds.amazonaws.com/app")}, "does not match"},
		{"dry needs no confirm", []Option{WithTarget("aurora"), WithDSN("postgres://u@mycluster.cluster-abc.us-east-1.rds.amazonaws.com/app")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := scenarios.LoadFile("scenarios/aurora.yaml")
			if err != nil {
				t.Fatal(err)
			}
			o := collect(tt.opts)
			s, err := o.scenario(sc)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := o.engineConfig(s)
			switch {
			case tt.err == "" && (err != nil || cfg.Target.AuroraCluster != "mycluster"):
				t.Fatalf("err %v cluster %q", err, cfg.Target.AuroraCluster)
			case tt.err != "" && (!errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("err = %v, want an invalid-input error mentioning %q", err, tt.err)
			}
		})
	}
}
