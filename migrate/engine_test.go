package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rehearse-dev/rehearse/result"
)

// fakeProvider records calls and fails where told. Its replica catches up after
// lagSamples calls to Lag.
type fakeProvider struct {
	mu         sync.Mutex
	calls      []string
	writer     string
	nodes      []string
	fail       map[string]error
	lagSamples int
	lagCalls   int
	hang       string // method that blocks until ctx ends
	stopped    bool   // the writer was stopped by a switchover that then failed
}

func newFake() *fakeProvider {
	return &fakeProvider{writer: "node1", nodes: []string{"node1"}, fail: map[string]error{}}
}

func (f *fakeProvider) call(ctx context.Context, name string) error {
	f.mu.Lock()
	f.calls = append(f.calls, name)
	err, hang := f.fail[name], f.hang == name
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func (f *fakeProvider) Kind() string { return "fake" }
func (f *fakeProvider) Describe(ctx context.Context) (Topology, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := Topology{Writer: f.writer, WriterEndpoint: "w", ReaderEndpoint: "r"}
	for _, n := range f.nodes {
		t.Nodes = append(t.Nodes, Node{ID: n})
	}
	return t, nil
}
func (f *fakeProvider) Preflight(ctx context.Context) ([]Check, error) {
	if err := f.call(ctx, "Preflight"); err != nil {
		return []Check{{Name: "writer is not in recovery", OK: false, Detail: err.Error()}}, nil
	}
	return []Check{{Name: "writer is not in recovery", OK: true}}, nil
}
func (f *fakeProvider) PlanReplica(ctx context.Context) (map[string]any, error) {
	return map[string]any{"node": "node2"}, f.call(ctx, "PlanReplica")
}
func (f *fakeProvider) CreateReplica(ctx context.Context) (Node, error) {
	if err := f.call(ctx, "CreateReplica"); err != nil {
		return Node{}, err
	}
	f.mu.Lock()
	f.nodes = append(f.nodes, "node2")
	f.mu.Unlock()
	return Node{ID: "node2"}, nil
}
func (f *fakeProvider) Lag(ctx context.Context, replica string) (Lag, error) {
	if err := f.call(ctx, "Lag"); err != nil {
		return Lag{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lagCalls++
	if f.lagSamples < 0 || f.lagCalls <= f.lagSamples {
		return Lag{Bytes: 4096}, nil
	}
	return Lag{}, nil
}
func (f *fakeProvider) SetForwarding(ctx context.Context, on bool) error {
	return f.call(ctx, fmt.Sprintf("SetForwarding(%v)", on))
}
func (f *fakeProvider) Switchover(ctx context.Context, target string) (Promotion, error) {
	if err := f.call(ctx, "Switchover("+target+")"); err != nil {
		f.mu.Lock()
		f.stopped = true
		f.mu.Unlock()
		return Promotion{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	from := f.writer
	f.writer = target
	return Promotion{From: from, To: target, LagBytes: 0}, nil
}
func (f *fakeProvider) Redirect(ctx context.Context, writer string) (map[string]any, error) {
	return nil, f.call(ctx, "Redirect("+writer+")")
}
func (f *fakeProvider) Rejoin(ctx context.Context, node string) (map[string]any, error) {
	return nil, f.call(ctx, "Rejoin("+node+")")
}
func (f *fakeProvider) Remove(ctx context.Context, node string) error {
	if err := f.call(ctx, "Remove("+node+")"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes = slices.DeleteFunc(f.nodes, func(n string) bool { return n == node })
	return nil
}
func (f *fakeProvider) Recover(ctx context.Context, writer string) error {
	err := f.call(ctx, "Recover("+writer+")")
	if err == nil {
		f.mu.Lock()
		f.stopped = false
		f.mu.Unlock()
	}
	return err
}
func (f *fakeProvider) Close(context.Context) error { return nil }

type fakeCrasher struct{ *fakeProvider }

func (f fakeCrasher) Crash(ctx context.Context, node string) error {
	return f.call(ctx, "Crash("+node+")")
}
func (f fakeCrasher) Failover(ctx context.Context, target string) (Promotion, error) {
	if err := f.call(ctx, "Failover("+target+")"); err != nil {
		return Promotion{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	from := f.writer
	f.writer = target
	return Promotion{From: from, To: target}, nil
}

func (f *fakeProvider) mutatingCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		switch {
		case c == "Preflight", c == "PlanReplica", c == "Lag":
		default:
			out = append(out, c)
		}
	}
	return out
}

func statuses(m *result.Migration) string {
	var b strings.Builder
	for i, s := range m.Steps {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.Name + "=" + s.Status)
	}
	return b.String()
}

func runEngine(t *testing.T, p Provider, cfg Config, dry bool, validate Validator) (*result.Migration, error, []Event) {
	t.Helper()
	start := time.Now()
	var mu sync.Mutex
	var events []Event
	e := &Engine{Provider: p, Config: cfg, Dry: dry, Validate: validate,
		Since: func() time.Duration { return time.Since(start) },
		OnEvent: func(ev Event) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}}
	m, err := e.Run(t.Context())
	return m, err, events
}

var testCfg = Config{StepTimeout: 10 * time.Second, CatchUpSamples: 3, Soak: 2 * time.Second, Poll: 100 * time.Millisecond}

func TestWetPlanCompletes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.lagSamples = 5
		m, err, events := runEngine(t, f, testCfg, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := "preflight=ok create_replica=ok catch_up=ok forward_writes=ok switchover=ok redirect=ok validate=ok keep_rollback_target=ok decommission=ok"
		if got := statuses(m); got != want {
			t.Fatalf("steps:\n got %s\nwant %s", got, want)
		}
		if m.Outcome != "completed" || m.WriterBefore != "node1" || m.WriterAfter != "node2" {
			t.Errorf("outcome %s, writer %s → %s", m.Outcome, m.WriterBefore, m.WriterAfter)
		}
		calls := strings.Join(f.mutatingCalls(), " ")
		wantCalls := "CreateReplica SetForwarding(true) Switchover(node2) Redirect(node2) Rejoin(node1) Remove(node1)"
		if calls != wantCalls {
			t.Errorf("calls:\n got %s\nwant %s", calls, wantCalls)
		}
		// 5 lagging samples then 3 good ones, 100 ms apart.
		cu := m.Steps[2]
		if d := cu.EndS - cu.StartS; d < 0.7 || d > 0.8 {
			t.Errorf("catch_up took %.3f s, want 0.7 (8 samples at 100 ms)", d)
		}
		dec := m.Steps[8]
		if d := dec.EndS - dec.StartS; d < 2 {
			t.Errorf("decommission took %.3f s, want ≥ the 2 s soak", d)
		}
		if len(events) != 18 || events[0].Status != "started" || !events[2].Mutating {
			t.Errorf("events = %+v", events)
		}
	})
}

func TestDryRunChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		validated := false
		m, err, _ := runEngine(t, f, testCfg, true, func(context.Context) (map[string]any, error) {
			validated = true
			return map[string]any{"integrity": "ok"}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if calls := f.mutatingCalls(); len(calls) != 0 {
			t.Fatalf("a dry run called %v", calls)
		}
		if m.Outcome != "dry" || m.WriterAfter != "node1" {
			t.Errorf("outcome %s writer after %s", m.Outcome, m.WriterAfter)
		}
		for _, s := range m.Steps {
			if s.Status != StatusPlanned || s.Detail["would"] == nil {
				t.Errorf("step %s = %s %v, want planned with what it would do", s.Name, s.Status, s.Detail)
			}
		}
		if !validated {
			t.Error("dry run did not run the validation checks")
		}
	})
}

func TestFailuresUndo(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(f *fakeProvider)
		validate Validator
		steps    string // statuses
		calls    string // mutating calls
		writer   string
	}{
		{
			name:   "preflight fails",
			setup:  func(f *fakeProvider) { f.fail["Preflight"] = errors.New("in recovery") },
			steps:  "preflight=failed create_replica=skipped catch_up=skipped forward_writes=skipped switchover=skipped redirect=skipped validate=skipped keep_rollback_target=skipped decommission=skipped",
			writer: "node1",
		},
		{
			name:   "replica never catches up",
			setup:  func(f *fakeProvider) { f.lagSamples = -1 },
			steps:  "preflight=ok create_replica=rolled_back catch_up=failed forward_writes=skipped switchover=skipped redirect=skipped validate=skipped keep_rollback_target=skipped decommission=skipped undo_create_replica=rolled_back",
			calls:  "CreateReplica Remove(node2)",
			writer: "node1",
		},
		{
			name: "promotion fails",
			setup: func(f *fakeProvider) {
				f.lagSamples = 0
				f.fail["Switchover(node2)"] = errors.New("pg_promote returned false")
			},
			steps:  "preflight=ok create_replica=rolled_back catch_up=ok forward_writes=rolled_back switchover=failed redirect=skipped validate=skipped keep_rollback_target=skipped decommission=skipped recover_writer=ok undo_forward_writes=rolled_back undo_create_replica=rolled_back",
			calls:  "CreateReplica SetForwarding(true) Switchover(node2) Recover(node1) SetForwarding(false) Remove(node2)",
			writer: "node1",
		},
		{
			name:  "validation fails: fail back",
			setup: func(f *fakeProvider) { f.lagSamples = 0 },
			validate: func(context.Context) (map[string]any, error) {
				return map[string]any{"lost_acknowledged_writes": 3}, errors.New("3 acknowledged writes lost")
			},
			steps:  "preflight=ok create_replica=rolled_back catch_up=ok forward_writes=rolled_back switchover=rolled_back redirect=rolled_back validate=failed keep_rollback_target=skipped decommission=skipped undo_switchover=rolled_back undo_forward_writes=rolled_back undo_create_replica=rolled_back",
			calls:  "CreateReplica SetForwarding(true) Switchover(node2) Redirect(node2) Rejoin(node1) Switchover(node1) Redirect(node1) Rejoin(node2) SetForwarding(false) Remove(node2)",
			writer: "node1",
		},
		{
			name:   "step times out",
			setup:  func(f *fakeProvider) { f.lagSamples = 0; f.hang = "Rejoin(node1)" },
			steps:  "preflight=ok create_replica=rolled_back catch_up=ok forward_writes=rolled_back switchover=rolled_back redirect=rolled_back validate=ok keep_rollback_target=failed decommission=skipped undo_switchover=rolled_back undo_forward_writes=rolled_back undo_create_replica=rolled_back",
			writer: "node1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake()
				tt.setup(f)
				m, err, _ := runEngine(t, f, testCfg, false, tt.validate)
				if !errors.Is(err, ErrStepFailed) {
					t.Fatalf("err = %v, want ErrStepFailed", err)
				}
				if got := statuses(m); got != tt.steps {
					t.Errorf("steps:\n got %s\nwant %s", got, tt.steps)
				}
				if tt.calls != "" {
					if got := strings.Join(f.mutatingCalls(), " "); got != tt.calls {
						t.Errorf("calls:\n got %s\nwant %s", got, tt.calls)
					}
				}
				if m.Outcome != "failed" || m.WriterAfter != tt.writer || f.stopped {
					t.Errorf("outcome %s, writer after %s (want %s), writer left stopped %v", m.Outcome, m.WriterAfter, tt.writer, f.stopped)
				}
			})
		})
	}
}

func TestCrashAndRollback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		cfg := testCfg
		cfg.Kind, cfg.Rollback = Crash, true
		m, err, _ := runEngine(t, fakeCrasher{f}, cfg, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		calls := strings.Join(f.mutatingCalls(), " ")
		want := "CreateReplica SetForwarding(true) Crash(node1) Failover(node2) Redirect(node2) Rejoin(node1) Rejoin(node1) Switchover(node1) Redirect(node1) Rejoin(node2) Remove(node2)"
		if calls != want {
			t.Errorf("calls:\n got %s\nwant %s", calls, want)
		}
		if m.Outcome != "rolled_back" || m.WriterAfter != "node1" {
			t.Errorf("outcome %s writer after %s", m.Outcome, m.WriterAfter)
		}
	})
	// A provider that cannot crash fails the switchover step with a clear reason.
	synctest.Test(t, func(t *testing.T) {
		cfg := testCfg
		cfg.Kind = Crash
		m, err, _ := runEngine(t, newFake(), cfg, false, nil)
		if err == nil || !strings.Contains(err.Error(), "cannot crash") {
			t.Fatalf("err = %v", err)
		}
		_ = m
	})
}

func TestDescribePlan(t *testing.T) {
	steps, err := Describe(Config{Rollback: true, Soak: 5 * time.Second}, "local")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range steps {
		names = append(names, s.Name)
		if s.Action == "" || s.Check == "" {
			t.Errorf("%s has no action or check", s.Name)
		}
	}
	if got := strings.Join(names, ","); got != "preflight,create_replica,catch_up,forward_writes,switchover,redirect,validate,keep_rollback_target,rollback,decommission" {
		t.Errorf("plan = %s", got)
	}
	if _, err := Describe(Config{Steps: []string{"teleport"}}, "local"); err == nil {
		t.Error("unknown step accepted")
	}
	if _, err := Describe(Config{Steps: []string{"preflight"}, Rollback: true}, "local"); err == nil {
		t.Error("rollback without keep_rollback_target accepted")
	}
}

func TestCyclesAlternate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		cfg := testCfg
		cfg.Cycles, cfg.Settle = 3, 2*time.Second
		m, err, events := runEngine(t, f, cfg, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		calls := strings.Join(f.mutatingCalls(), " ")
		want := "CreateReplica SetForwarding(true) Switchover(node2) Redirect(node2) Rejoin(node1) " +
			"Switchover(node1) Redirect(node1) Rejoin(node2) " +
			"Switchover(node2) Redirect(node2) Rejoin(node1) Remove(node1)"
		if calls != want {
			t.Errorf("calls:\n got %s\nwant %s", calls, want)
		}
		if m.Outcome != "completed" || m.WriterAfter != "node2" {
			t.Errorf("outcome %s, writer after %s", m.Outcome, m.WriterAfter)
		}
		if len(m.Cycles) != 3 {
			t.Fatalf("cycles = %+v", m.Cycles)
		}
		for i, c := range m.Cycles {
			wantDir, from, to := result.DisruptionSwitchover, "node1", "node2"
			if i == 1 {
				wantDir, from, to = result.DisruptionFailback, "node2", "node1"
			}
			if c.Cycle != i+1 || c.Direction != wantDir || c.From != from || c.To != to || c.Outcome != "completed" {
				t.Errorf("cycle %d = %d %s %s→%s %s", i+1, c.Cycle, c.Direction, c.From, c.To, c.Outcome)
			}
			if c.Stall == nil || len(c.Steps) == 0 || c.Steps[0].Cycle != i+1 {
				t.Errorf("cycle %d: stall %v, steps %+v", i+1, c.Stall, c.Steps)
			}
		}
		// Every settle step waits the settle period, and belongs to the cycle before.
		var settles []int
		for _, s := range m.Steps {
			if s.Name == StepSettle {
				settles = append(settles, s.Cycle)
				if d := s.EndS - s.StartS; d < 2 {
					t.Errorf("settle took %.3f s, want 2", d)
				}
			}
		}
		if !slices.Equal(settles, []int{1, 2}) {
			t.Errorf("settle steps in cycles %v, want [1 2]", settles)
		}
		var cycles []int
		for _, ev := range events {
			if ev.Step == StepSwitchover && ev.Status == "started" {
				cycles = append(cycles, ev.Cycle)
			}
		}
		if !slices.Equal(cycles, []int{1, 2, 3}) {
			t.Errorf("switchover events in cycles %v", cycles)
		}
	})
}

func TestCyclesRefused(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"rollback", Config{Cycles: 2, Rollback: true}, "already alternate"},
		{"no keep_rollback_target", Config{Cycles: 2, Steps: []string{StepPreflight, StepCreateReplica, StepCatchUp, StepSwitchover, StepRedirect, StepValidate}}, "keep_rollback_target"},
		{"blue/green", Config{Cycles: 2, Strategy: StrategyBlueGreen}, "in_cluster"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.cfg.plan(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("plan() error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestAbortUndoes(t *testing.T) {
	tests := []struct {
		name    string
		abortAt string // the step whose start aborts the plan
		calls   string
	}{
		{"before the switchover", StepForwardWrites, "CreateReplica SetForwarding(true) SetForwarding(false) Remove(node2)"},
		{"after the switchover", StepValidate, "CreateReplica SetForwarding(true) Switchover(node2) Redirect(node2) Rejoin(node1) Switchover(node1) Redirect(node1) Rejoin(node2) SetForwarding(false) Remove(node2)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake()
				ctx, cancel := context.WithCancelCause(t.Context())
				defer cancel(nil)
				start := time.Now()
				e := &Engine{Provider: f, Config: testCfg,
					Since: func() time.Duration { return time.Since(start) },
					OnEvent: func(ev Event) {
						if ev.Step == tc.abortAt && ev.Status == "started" {
							cancel(ErrAborted)
						}
					}}
				m, err := e.Run(ctx)
				if !errors.Is(err, ErrAborted) {
					t.Fatalf("error %v, want one wrapping ErrAborted", err)
				}
				if m.Outcome != "aborted" || m.WriterAfter != "node1" {
					t.Errorf("outcome %s, writer after %s; want aborted, node1", m.Outcome, m.WriterAfter)
				}
				if got := strings.Join(f.mutatingCalls(), " "); got != tc.calls {
					t.Errorf("calls:\n got %s\nwant %s", got, tc.calls)
				}
			})
		})
	}
}
