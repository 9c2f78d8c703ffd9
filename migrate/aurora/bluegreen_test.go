package aurora

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/aurora/emulator"
)

var bgPlan = migrate.Config{Strategy: migrate.StrategyBlueGreen, StepTimeout: 90 * time.Second, CatchUpMaxLagBytes: 1 << 20,
	CatchUpSamples: 3, Soak: 200 * time.Millisecond, Poll: 50 * time.Millisecond, SwitchoverTimeout: 60 * time.Second,
	Green: migrate.GreenSpec{EngineVersion: "16.4", InstanceClass: "db.serverless"}}

// TestBlueGreenOverRealCluster drives a blue/green deployment through the RDS API
// against the emulator over real PostgreSQL logical replication, with inserts of
// serial keys through the writer endpoint throughout.
func TestBlueGreenOverRealCluster(t *testing.T) {
	p, s, b, log := realEmulator(t)
	ctx := t.Context()
	w, _, err := p.Endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := startSerialLoad(t, p.DSN(w))
	var afterSwitchover int
	e := &migrate.Engine{Provider: p, Config: bgPlan, Log: log,
		Validate: func(ctx context.Context) (map[string]any, error) {
			lost, acked, err := l.lost(ctx)
			if err != nil {
				return nil, err
			}
			if lost > 0 {
				return map[string]any{"lost": lost}, fmt.Errorf("%d of %d acknowledged inserts lost", lost, acked)
			}
			afterSwitchover = l.count()
			return map[string]any{"acknowledged_writes": acked, "lost_acknowledged_writes": 0}, nil
		}}
	m, err := e.Run(ctx)
	if err != nil {
		t.Fatalf("plan: %v\nsteps: %+v\nlog:\n%s", err, m.Steps, log)
	}
	var got []string
	for _, st := range m.Steps {
		got = append(got, st.Name+"="+st.Status)
	}
	want := "preflight=ok create_green=ok green_sync=ok switchover=ok redirect=ok validate=ok keep_old_blue=ok delete_deployment=ok"
	if strings.Join(got, " ") != want {
		t.Errorf("steps:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if m.WriterAfter != "rehearse-demo-instance-1" || !strings.Contains(b.Cluster().Writer().Name(), "-green-") {
		t.Errorf("writer %s -> %s; the local writer is %s", m.WriterBefore, m.WriterAfter, b.Cluster().Writer().Name())
	}
	actions := s.Actions()
	for _, a := range []string{"CreateBlueGreenDeployment", "DescribeBlueGreenDeployments", "SwitchoverBlueGreenDeployment", "DeleteBlueGreenDeployment"} {
		if !slices.Contains(actions, a) {
			t.Errorf("the emulator's call log has no %s: %v", a, actions)
		}
	}
	kept := m.Steps[6].Detail
	if kept["old_blue"] != "rehearse-demo-old1" {
		t.Errorf("keep_old_blue %v", kept)
	}
	// Inserts go on on green, past blue's keys.
	testutil.Eventually(t, 30*time.Second, "100 inserts on green", func() bool { return l.count() >= afterSwitchover+100 })
	l.halt()
	lost, acked, err := l.lost(context.Background())
	if err != nil || lost != 0 || acked == 0 {
		t.Errorf("lost %d of %d acknowledged inserts (%v)", lost, acked, err)
	}
	if errs := s.Errors(); len(errs) > 0 {
		t.Errorf("emulator background errors: %v", errs)
	}
	t.Logf("%d inserts acknowledged, %d failed; switchover %v", acked, l.fails, m.Steps[3].Detail["duration_ms"])
}

// TestBlueGreenDryRunCallsOnlyDescribe: a dry blue/green plan makes only Describe*
// calls, asserted from the emulator's own call log.
func TestBlueGreenDryRunCallsOnlyDescribe(t *testing.T) {
	p, s, _, log := realEmulator(t)
	e := &migrate.Engine{Provider: p, Dry: true, Config: bgPlan, Log: log}
	m, err := e.Run(t.Context())
	if err != nil {
		t.Fatalf("dry plan: %v\n%+v\n%s", err, m.Steps, log)
	}
	if m.Outcome != "dry" || len(m.Steps) != len(migrate.BlueGreenSteps) {
		t.Errorf("outcome %s, %d steps", m.Outcome, len(m.Steps))
	}
	actions := s.Actions()
	for _, a := range actions {
		if !strings.HasPrefix(a, "Describe") {
			t.Errorf("a dry run called %s (call log %v)", a, actions)
		}
	}
	if !slices.Contains(actions, "DescribeBlueGreenDeployments") {
		t.Errorf("the preflight did not look for a deployment: %v", actions)
	}
	cg := m.Steps[1].Detail
	if calls, _ := cg["would_call"].([]string); len(calls) == 0 || !strings.Contains(calls[0], "TargetEngineVersion=16.4") {
		t.Errorf("create_green would call %v", cg["would_call"])
	}
}

// TestBlueGreenSwitchoverFailedIsRolledBack: SWITCHOVER_FAILED is reported with its
// status details, wrapping ErrSwitchoverRolledBack; the undo deletes green.
func TestBlueGreenSwitchoverFailedIsRolledBack(t *testing.T) {
	b := emulator.NewMemoryBlueGreen()
	b.FailSwitchover = errors.New("the replica lag stayed above the allowed limit")
	s := emulator.New(b, emulator.Options{})
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	p, err := New(t.Context(), fastConfig(hs.URL))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.CreateGreen(t.Context(), migrate.GreenSpec{}); err != nil {
		t.Fatal(err)
	}
	sw, err := p.SwitchoverGreen(t.Context(), 30*time.Second)
	if !errors.Is(err, migrate.ErrSwitchoverRolledBack) || !strings.Contains(err.Error(), "replica lag stayed above") || !sw.RolledBack || sw.Switched {
		t.Fatalf("switchover %+v: %v", sw, err)
	}
	d, err := p.DeleteDeployment(t.Context())
	if err != nil || d["delete_target"] != true {
		t.Fatalf("DeleteDeployment %v: %v", d, err)
	}
}
