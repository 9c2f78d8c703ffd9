package rehearse

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/scenarios"
)

func TestOptionsApply(t *testing.T) {
	base := func(t *testing.T) *scenarios.Scenario {
		t.Helper()
		sc, err := scenarios.LoadFile("scenarios/banking.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	tests := []struct {
		name  string
		opts  []Option
		check func(t *testing.T, s *scenarios.Scenario)
		err   string // substring of an ErrInvalidInput error; "" = no error
	}{
		{"rate replaces the ramp", []Option{WithRate(250)}, func(t *testing.T, s *scenarios.Scenario) {
			if s.Load.Rate != 250 || len(s.Load.Stages) != 0 {
				t.Errorf("rate %v stages %v", s.Load.Rate, s.Load.Stages)
			}
		}, ""},
		{"duration and sessions", []Option{WithDuration(7 * time.Minute), WithSessions(1234)}, func(t *testing.T, s *scenarios.Scenario) {
			if s.Load.Duration.D() != 7*time.Minute || s.Load.Sessions != 1234 {
				t.Errorf("duration %v sessions %d", s.Load.Duration, s.Load.Sessions)
			}
		}, ""},
		{"rollback and endpoint", []Option{WithRollback(true), WithEndpoint("proxy")}, func(t *testing.T, s *scenarios.Scenario) {
			if !s.Cutover.Rollback || s.Target.Endpoint != "proxy" {
				t.Errorf("rollback %v endpoint %s", s.Cutover.Rollback, s.Target.Endpoint)
			}
		}, ""},
		{"bad mode", []Option{WithMode("damp")}, nil, "mode"},
		{"negative rate", []Option{WithRate(-1)}, nil, "rate"},
		{"unknown endpoint", []Option{WithEndpoint("carrier-pigeon")}, nil, "target.endpoint"},
		{"wet with a dsn", []Option{WithMode("wet"), WithDSN("postgres://u@127.0.0.1:1/x")}, nil, "--dsn points at a database it cannot fail over"},
		{"aurora wet without confirm", []Option{WithTarget("aurora"), WithMode("wet"), WithDSN("postgres://u@mycluster.cluster-abc.us-east-1.rds.amazonaws.com/app")}, nil, "confirm"},
		{"aurora dry needs no confirm", []Option{WithTarget("aurora"), WithDSN("postgres://u@mycluster.cluster-abc.us-east-1.rds.amazonaws.com/app")}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := base(t)
			o := options{mode: "dry"}
			for _, f := range tt.opts {
				f(&o)
			}
			s, err := o.apply(sc)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.err != "" && (!errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("err = %v, want an invalid-input error mentioning %q", err, tt.err)
			}
			if tt.check != nil && s != nil {
				tt.check(t, s)
			}
			if len(sc.Load.Stages) == 0 {
				t.Error("apply changed the scenario it was given")
			}
		})
	}
}
