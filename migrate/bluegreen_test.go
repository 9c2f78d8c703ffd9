package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// fakeBG is a fakeProvider that can run a blue/green deployment. Green catches up
// after syncSamples calls to GreenSync; the switchover does what sw says.
type fakeBG struct {
	*fakeProvider
	checks      []Check
	syncSamples int
	syncCalls   int
	green       bool
	// switchover's behaviour: "" completes; "ddl" refuses (DDL on blue);
	// "timeout" waits for its timeout and rolls back.
	sw string
}

func newFakeBG() *fakeBG {
	return &fakeBG{fakeProvider: newFake(), checks: []Check{{Name: "wal_level is logical", OK: true, Detail: "logical"}}}
}

func (f *fakeBG) PreflightBlueGreen(ctx context.Context, spec GreenSpec) ([]Check, error) {
	if err := f.call(ctx, "PreflightBlueGreen"); err != nil {
		return nil, err
	}
	return f.checks, nil
}

func (f *fakeBG) PlanGreen(ctx context.Context, spec GreenSpec) (map[string]any, error) {
	return map[string]any{"green": "node1-green"}, f.call(ctx, "PlanGreen")
}

func (f *fakeBG) CreateGreen(ctx context.Context, spec GreenSpec) (Deployment, error) {
	if err := f.call(ctx, "CreateGreen("+spec.EngineVersion+")"); err != nil {
		return Deployment{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.green = true
	return Deployment{ID: "bgd-1", Blue: "blue", Green: "green", GreenWriter: "node1-green", Status: "AVAILABLE"}, nil
}

func (f *fakeBG) GreenSync(ctx context.Context) (GreenSync, error) {
	if err := f.call(ctx, "GreenSync"); err != nil {
		return GreenSync{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncCalls++
	if f.syncCalls <= f.syncSamples {
		return GreenSync{Tables: 2, Ready: 1, NotReady: []string{"public.t"}, Lag: Lag{Bytes: 1 << 20}}, nil
	}
	return GreenSync{Tables: 2, Ready: 2, Switchable: true, Lag: Lag{Bytes: 100}}, nil
}

func (f *fakeBG) SwitchoverGreen(ctx context.Context, timeout time.Duration) (BlueGreenSwitchover, error) {
	if err := f.call(ctx, "SwitchoverGreen"); err != nil {
		return BlueGreenSwitchover{}, err
	}
	sw := BlueGreenSwitchover{Promotion: Promotion{From: "node1", To: "node1-green", LagBytes: 100}, Timeout: timeout}
	switch f.sw {
	case "ddl":
		sw.BlockedDDL = []string{"CREATE INDEX: create index on t(v)"}
		return sw, fmt.Errorf("%w: %v", ErrDDLOnBlue, sw.BlockedDDL)
	case "timeout":
		t := time.NewTimer(timeout)
		<-t.C
		sw.RolledBack, sw.Duration = true, timeout
		return sw, fmt.Errorf("%w: %w", ErrSwitchoverRolledBack, ErrSwitchoverTimeout)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writer = "node1-green"
	f.nodes = []string{"node1-green"}
	sw.Switched = true
	sw.Sequences = []SequenceSync{{Name: "public.t_id_seq", Blue: 41, Green: 41}}
	return sw, nil
}

func (f *fakeBG) KeepOldBlue(ctx context.Context) (map[string]any, error) {
	return map[string]any{"old_blue": "node1-old1"}, f.call(ctx, "KeepOldBlue")
}

func (f *fakeBG) DeleteDeployment(ctx context.Context) (map[string]any, error) {
	if err := f.call(ctx, "DeleteDeployment"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.green = false
	return map[string]any{"deleted": "bgd-1"}, nil
}

// bgCalls are the blue/green calls that change something.
func (f *fakeBG) bgCalls() string {
	var out []string
	for _, c := range f.mutatingCalls() {
		switch {
		case c == "PreflightBlueGreen", c == "PlanGreen", c == "GreenSync", c == "KeepOldBlue":
		default:
			out = append(out, c)
		}
	}
	return strings.Join(out, " ")
}

var bgCfg = Config{Strategy: StrategyBlueGreen, StepTimeout: 10 * time.Second, CatchUpSamples: 3, CatchUpMaxLagBytes: 1024,
	Soak: 2 * time.Second, Poll: 100 * time.Millisecond, SwitchoverTimeout: 30 * time.Second, Green: GreenSpec{EngineVersion: "16.4"}}

func TestBlueGreenPlanCompletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeBG()
		f.syncSamples = 4
		m, err, events := runEngine(t, f, bgCfg, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := "preflight=ok create_green=ok green_sync=ok switchover=ok redirect=ok validate=ok keep_old_blue=ok delete_deployment=ok"
		if got := statuses(m); got != want {
			t.Fatalf("steps:\n got %s\nwant %s", got, want)
		}
		if m.Strategy != StrategyBlueGreen || m.Outcome != "completed" || m.WriterBefore != "node1" || m.WriterAfter != "node1-green" {
			t.Errorf("strategy %s outcome %s, writer %s → %s", m.Strategy, m.Outcome, m.WriterBefore, m.WriterAfter)
		}
		if got, want := f.bgCalls(), "CreateGreen(16.4) SwitchoverGreen Redirect(node1-green) DeleteDeployment"; got != want {
			t.Errorf("calls:\n got %s\nwant %s", got, want)
		}
		// 4 samples still copying, then 3 good ones, 100 ms apart.
		gs := m.Steps[2]
		if d := gs.EndS - gs.StartS; d < 0.6 || d > 0.7 {
			t.Errorf("green_sync took %.3f s, want 0.6 (7 samples at 100 ms)", d)
		}
		sw := m.Steps[3].Detail
		if sw["sequences_synced"] != 1 || sw["within_timeout"] != true || sw["timeout_s"] != 30.0 || m.LagAtPromotion.Bytes != 100 {
			t.Errorf("switchover detail %v, lag at promotion %+v", sw, m.LagAtPromotion)
		}
		// Phases: during starts at create_green (the first step that changes anything).
		for _, ev := range events {
			if ev.Status == "started" && ev.Mutating {
				if ev.Step != StepCreateGreen {
					t.Errorf("first mutating step %s, want create_green", ev.Step)
				}
				break
			}
		}
	})
}

func TestBlueGreenFailures(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(f *fakeBG)
		validate Validator
		steps    string
		calls    string
		errIs    error
		writer   string
	}{
		{
			name: "table without a primary key stops before anything is created",
			setup: func(f *fakeBG) {
				f.checks = append(f.checks, Check{Name: "tables have a primary key or replica identity", Detail: "public.events"})
			},
			steps: "preflight=failed create_green=skipped green_sync=skipped switchover=skipped redirect=skipped validate=skipped keep_old_blue=skipped delete_deployment=skipped",
			calls: "", writer: "node1",
		},
		{
			name:  "DDL on blue: the switchover refuses and green is removed",
			setup: func(f *fakeBG) { f.sw = "ddl" },
			steps: "preflight=ok create_green=rolled_back green_sync=ok switchover=failed redirect=skipped validate=skipped keep_old_blue=skipped delete_deployment=skipped undo_create_green=rolled_back",
			calls: "CreateGreen(16.4) SwitchoverGreen DeleteDeployment", errIs: ErrDDLOnBlue, writer: "node1",
		},
		{
			name:  "switchover timeout rolls back, then green is removed",
			setup: func(f *fakeBG) { f.sw = "timeout" },
			steps: "preflight=ok create_green=rolled_back green_sync=ok switchover=failed redirect=skipped validate=skipped keep_old_blue=skipped delete_deployment=skipped undo_create_green=rolled_back",
			calls: "CreateGreen(16.4) SwitchoverGreen DeleteDeployment", errIs: ErrSwitchoverTimeout, writer: "node1",
		},
		{
			name:  "green never catches up",
			setup: func(f *fakeBG) { f.syncSamples = 1 << 30 },
			steps: "preflight=ok create_green=rolled_back green_sync=failed switchover=skipped redirect=skipped validate=skipped keep_old_blue=skipped delete_deployment=skipped undo_create_green=rolled_back",
			calls: "CreateGreen(16.4) DeleteDeployment", errIs: context.DeadlineExceeded, writer: "node1",
		},
		{
			name:     "validation fails after the switchover: green is kept",
			validate: func(context.Context) (map[string]any, error) { return nil, errors.New("1 acknowledged write lost") },
			steps:    "preflight=ok create_green=ok green_sync=ok switchover=ok redirect=ok validate=failed keep_old_blue=skipped delete_deployment=skipped undo_switchover=failed undo_create_green=failed",
			calls:    "CreateGreen(16.4) SwitchoverGreen Redirect(node1-green)", writer: "node1-green",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFakeBG()
				if tt.setup != nil {
					tt.setup(f)
				}
				m, err, _ := runEngine(t, f, bgCfg, false, tt.validate)
				if !errors.Is(err, ErrStepFailed) {
					t.Fatalf("err = %v, want ErrStepFailed", err)
				}
				if tt.errIs != nil && !errors.Is(err, tt.errIs) {
					t.Errorf("err = %v, want %v", err, tt.errIs)
				}
				if got := statuses(m); got != tt.steps {
					t.Errorf("steps:\n got %s\nwant %s", got, tt.steps)
				}
				if got := f.bgCalls(); got != tt.calls {
					t.Errorf("calls:\n got %s\nwant %s", got, tt.calls)
				}
				if m.Outcome != "failed" || m.WriterAfter != tt.writer {
					t.Errorf("outcome %s, writer after %s, want failed and %s", m.Outcome, m.WriterAfter, tt.writer)
				}
			})
		})
	}
}

func TestBlueGreenRecordsWhichDDLBlocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeBG()
		f.sw = "ddl"
		m, _, _ := runEngine(t, f, bgCfg, false, nil)
		d := m.Steps[3].Detail
		if ddl, _ := d["blocked_ddl"].([]string); len(ddl) != 1 || !strings.Contains(ddl[0], "CREATE INDEX") {
			t.Errorf("switchover detail %v does not name the DDL", d)
		}
	})
}

func TestBlueGreenDryRunChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeBG()
		f.checks = append(f.checks, Check{Name: "tables have a primary key or replica identity", Detail: "public.events"})
		m, err, _ := runEngine(t, f, bgCfg, true, nil)
		if err == nil {
			t.Fatal("a blocking finding did not fail the dry run")
		}
		if calls := f.bgCalls(); calls != "" {
			t.Fatalf("a dry run called %s", calls)
		}
		pf := m.Steps[0]
		if pf.Detail["tables have a primary key or replica identity"] != "blocking: public.events" {
			t.Errorf("preflight detail %v does not list the blocking finding", pf.Detail)
		}
		f.checks = f.checks[:1]
		m, err, _ = runEngine(t, f, bgCfg, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range m.Steps {
			if s.Status != StatusPlanned || s.Detail["would"] == nil {
				t.Errorf("step %s = %s %v, want planned with what it would do", s.Name, s.Status, s.Detail)
			}
		}
		if calls := f.bgCalls(); calls != "" {
			t.Fatalf("a dry run called %s", calls)
		}
	})
}

func TestBlueGreenNeedsTheCapability(t *testing.T) {
	m, err, _ := runEngine(t, newFake(), bgCfg, false, nil)
	if !errors.Is(err, ErrNoBlueGreen) {
		t.Fatalf("err = %v, want ErrNoBlueGreen", err)
	}
	if m.Steps[0].Status != StatusFailed {
		t.Errorf("preflight %s", m.Steps[0].Status)
	}
}

func TestBlueGreenPlanDescription(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		kind string
		want []string // substrings of the steps' actions, in order
		err  string
	}{
		{"local", bgCfg, "local", []string{"wal_level logical", "publication FOR ALL TABLES", "pg_subscription_rel", "default_transaction_read_only", "endpoints lead to green", "integrity", "-old1", "remove the old blue"}, ""},
		{"aurora", bgCfg, "aurora", []string{"DescribeBlueGreenDeployments", "CreateBlueGreenDeployment Source=the cluster's ARN TargetEngineVersion=16.4", "SwitchoverDetails", "SwitchoverBlueGreenDeployment SwitchoverTimeout=30", "renamed cluster endpoints", "integrity", "-old1", "DeleteBlueGreenDeployment"}, ""},
		{"rollback", Config{Strategy: StrategyBlueGreen, Rollback: true}, "local", nil, "rollback applies to the in_cluster strategy"},
		{"crash", Config{Strategy: StrategyBlueGreen, Kind: Crash}, "local", nil, "planned"},
		{"in-cluster step", Config{Strategy: StrategyBlueGreen, Steps: []string{"preflight", "catch_up"}}, "local", nil, `unknown cutover step "catch_up"`},
		{"unknown strategy", Config{Strategy: "purple"}, "local", nil, "unknown cutover strategy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steps, err := Describe(tt.cfg, tt.kind)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(steps) != len(BlueGreenSteps) {
				t.Fatalf("%d steps", len(steps))
			}
			for i, s := range steps {
				if s.Name != BlueGreenSteps[i] || !strings.Contains(s.Action, tt.want[i]) || s.Check == "" || s.Timeout <= 0 {
					t.Errorf("step %d: %+v, want %s doing %q", i, s, BlueGreenSteps[i], tt.want[i])
				}
			}
			if steps[3].Timeout != 40*time.Second || steps[7].Timeout != 12*time.Second {
				t.Errorf("timeouts: switchover %v (want step + switchover timeout), delete_deployment %v (want step + soak)", steps[3].Timeout, steps[7].Timeout)
			}
			if steps[1].Undo == "" || steps[3].Undo == "" || steps[2].Undo != "" {
				t.Errorf("undos: %q %q %q", steps[1].Undo, steps[2].Undo, steps[3].Undo)
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"15.18", "15.18", 0}, {"16.4", "15.18", 1}, {"14.9", "15.18", -1}, {"15", "15.0", 0}, {"15.2", "15.10", -1},
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
