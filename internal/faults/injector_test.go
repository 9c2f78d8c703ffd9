package faults

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workload"
)

// fakeHost is a cluster in memory: it records what faults did to it, at what time
// of the fake clock.
type fakeHost struct {
	since func() time.Duration

	mu     sync.Mutex
	nodes  []string // the writer first
	calls  []string
	frozen map[string]bool
	down   map[string]bool
}

func newFakeHost(nodes ...string) *fakeHost {
	return &fakeHost{nodes: nodes, frozen: map[string]bool{}, down: map[string]bool{}}
}

func (h *fakeHost) log(format string, args ...any) {
	h.calls = append(h.calls, fmt.Sprintf("%.0fs ", h.since().Seconds())+fmt.Sprintf(format, args...))
}

func (h *fakeHost) addNode(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nodes = append(h.nodes, id)
}

func (h *fakeHost) Topology(context.Context) (migrate.Topology, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t := migrate.Topology{Writer: h.nodes[0]}
	for i, n := range h.nodes {
		t.Nodes = append(t.Nodes, migrate.Node{ID: n, Addr: fmt.Sprintf("127.9.9.%d:5432", i+2)})
	}
	return t, nil
}

func (h *fakeHost) Freeze(_ context.Context, node string) (func(context.Context) error, map[string]any, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log("freeze %s", node)
	h.frozen[node] = true
	return func(context.Context) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.log("thaw %s", node)
		delete(h.frozen, node)
		return nil
	}, map[string]any{"signal": "SIGSTOP"}, nil
}

func (h *fakeHost) Crash(_ context.Context, node string, writer bool) (map[string]any, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log("crash %s (writer %v)", node, writer)
	h.down[node] = true
	return nil, nil
}

func (h *fakeHost) Restart(_ context.Context, node string, _ bool) error {
	time.Sleep(2 * time.Second) // crash recovery takes a while
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log("restart %s", node)
	delete(h.down, node)
	return nil
}

func (h *fakeHost) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// parseFaults reads a scenario's faults section.
func parseFaults(t *testing.T, cutover, faults string) []scenarios.Fault {
	t.Helper()
	sc, err := scenarios.Parse("f.yaml", []byte("load:\n  duration: 60s\n"+cutover+"faults:\n"+faults))
	if err != nil {
		t.Fatal(err)
	}
	return sc.Faults
}

// run starts an injector over host in a synctest bubble's clock; events are sent
// at their times; it stops at end and returns the results, the recorder's windows
// and the host's calls.
func run(t *testing.T, fs []scenarios.Fault, host *fakeHost, events []migrate.Event, end time.Duration, cancelAt time.Duration) ([]result.Fault, []result.PhaseWindow) {
	t.Helper()
	start := time.Now()
	since := func() time.Duration { return time.Since(start) }
	host.since = since
	rec := loadgen.NewRecorder([]workload.Op{{Name: "w", Kind: workload.Write}}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	in := Start(ctx, Config{Faults: fs, Host: host, Recorder: rec, Since: since})
	for _, ev := range events {
		time.Sleep(ev.At - since())
		in.Event(ev)
	}
	if cancelAt > 0 {
		time.Sleep(cancelAt - since())
		cancel()
		synctest.Wait()
	}
	time.Sleep(end - since())
	in.Stop()
	in.Stop()
	rec.FlushFinal(since())
	windows := rec.Summary(since()).PhaseWindows
	return in.Results(windows), windows
}

// Faults strike at their times on the run's clock, or as a step starts (once), on
// the node they name as it is then; lasting faults end after their time, a crash
// once the node is back; a fault whose node is missing fails with why, and one
// whose moment never came is skipped.
func TestInjectorStrikesAndUndoes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := parseFaults(t, "cutover:\n  enabled: true\n", `  - {at: 2s, kind: freeze, node: writer, for: 3s}
  - {at: 1s, kind: freeze, node: reader, for: 1s}
  - {at: 10s, kind: crash, node: writer}
  - {at: catch_up, kind: freeze, node: replica, for: 1s}
  - {at: switchover, kind: freeze, node: node1, for: 1s}
  - {at: 6s, kind: latency, node: writer, add: 5ms, for: 1s}
  - {at: validate, kind: reset}
  - {at: 50s, kind: reset, node: writer}
`)
		host := newFakeHost("node1")
		events := []migrate.Event{
			{Step: "create_replica", Status: "started", At: 4 * time.Second, Mutating: true},
			{Step: "catch_up", Status: "started", At: 13 * time.Second},
			{Step: "catch_up", Status: "started", At: 14 * time.Second}, // the second time does not strike again
			{Step: "switchover", Status: "started", At: 16 * time.Second, Mutating: true},
		}
		// node2 joins at 5 s, as create_replica would add it.
		time.AfterFunc(5*time.Second, func() { host.addNode("node2") })
		res, windows := run(t, fs, host, events, 20*time.Second, 0)

		want := []struct {
			kind, node, id, status string
			start, end             float64
			err                    string
		}{
			{"freeze", "reader", "", StatusFailed, 1, 1, "no reader to strike"},
			{"freeze", "writer", "node1", StatusOK, 2, 5, ""},
			{"latency", "writer", "node1", StatusFailed, 6, 6, "no fault proxy"},
			{"crash", "writer", "node1", StatusOK, 10, 12, ""},
			{"freeze", "replica", "node2", StatusOK, 13, 14, ""},
			{"freeze", "node1", "node1", StatusOK, 16, 17, ""},
			{"reset", "writer", "", StatusSkipped, 0, 0, "the plan never ran its validate step"},
			{"reset", "writer", "", StatusSkipped, 0, 0, "the run ended before 50s"},
		}
		if len(res) != len(want) {
			t.Fatalf("got %d faults, want %d:\n%+v", len(res), len(want), res)
		}
		for i, w := range want {
			g := res[i]
			if g.Kind != w.kind || g.Node != w.node || g.NodeID != w.id || g.Status != w.status || g.StartS != w.start || g.EndS != w.end || !strings.Contains(g.Error, w.err) {
				t.Errorf("fault %d = %s %s (%s) %s [%v, %v] %q; want %+v", i, g.Kind, g.Node, g.NodeID, g.Status, g.StartS, g.EndS, g.Error, w)
			}
		}
		if got := res[3].Detail["recovered_by"]; got != "restart" {
			t.Errorf("the crash was recovered by %v, want a restart", got)
		}
		wantCalls := []string{"2s freeze node1", "5s thaw node1", "10s crash node1 (writer true)", "12s restart node1",
			"13s freeze node2", "14s thaw node2", "16s freeze node1", "17s thaw node1"}
		if got := host.Calls(); !slices.Equal(got, wantCalls) {
			t.Errorf("host calls:\n%v\nwant\n%v", got, wantCalls)
		}
		var labels []string
		for _, w := range windows {
			if w.Kind == result.DisruptionFault {
				labels = append(labels, fmt.Sprintf("%s [%v, %v]", w.Label, w.StartS, w.EndS))
			}
		}
		wantLabels := []string{"fault: freeze writer for 3s [2, 5]", "fault: crash writer [10, 12]", "fault: freeze replica for 1s [13, 14]", "fault: freeze node1 for 1s [16, 17]"}
		if !slices.Equal(labels, wantLabels) {
			t.Errorf("fault windows %v, want %v", labels, wantLabels)
		}
	})
}

// A crash of the writer as the plan's switchover runs is left to the switchover:
// no restart.
func TestInjectorCrashDuringSwitchover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := parseFaults(t, "cutover:\n  enabled: true\n", "  - {at: switchover, kind: crash, node: writer}\n")
		host := newFakeHost("node1", "node2")
		res, _ := run(t, fs, host, []migrate.Event{{Step: "switchover", Status: "started", At: 3 * time.Second, Mutating: true}}, 10*time.Second, 0)
		if len(res) != 1 || res[0].Status != StatusOK || res[0].Detail["recovered_by"] != "the plan's switchover" || res[0].EndS-res[0].StartS != DefaultMinWindow.Seconds() {
			t.Fatalf("crash at the switchover: %+v", res)
		}
		if got := host.Calls(); !slices.Equal(got, []string{"3s crash node1 (writer true)"}) {
			t.Errorf("host calls %v: the node must be left to the plan", got)
		}
	})
}

// With every_cycle a fault strikes in each cycle: at a duration from the cycle's
// first mutating step, or as its step starts in each cycle.
func TestInjectorEveryCycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := parseFaults(t, "cutover:\n  enabled: true\n  cycles: 2\n", `  - {at: 1s, kind: freeze, for: 1s, every_cycle: true}
  - {at: redirect, kind: freeze, node: node2, for: 1s, every_cycle: true}
`)
		host := newFakeHost("node1", "node2")
		events := []migrate.Event{
			{Step: "create_replica", Status: "started", At: 2 * time.Second, Mutating: true, Cycle: 1},
			{Step: "switchover", Status: "started", At: 6 * time.Second, Mutating: true, Cycle: 1},
			{Step: "redirect", Status: "started", At: 7 * time.Second, Mutating: true, Cycle: 1},
			{Step: "switchover", Status: "started", At: 12 * time.Second, Mutating: true, Cycle: 2},
			{Step: "redirect", Status: "started", At: 15 * time.Second, Mutating: true, Cycle: 2},
		}
		res, _ := run(t, fs, host, events, 20*time.Second, 0)
		var got []string
		for _, r := range res {
			got = append(got, fmt.Sprintf("cycle %d %s %s at %vs", r.Cycle, r.Kind, r.NodeID, r.StartS))
		}
		want := []string{"cycle 1 freeze node1 at 3s", "cycle 1 freeze node2 at 7s", "cycle 2 freeze node1 at 13s", "cycle 2 freeze node2 at 15s"}
		if !slices.Equal(got, want) {
			t.Errorf("strikes %v, want %v", got, want)
		}
	})
}

// Cancelling the run's context (Ctrl-C) undoes what is in effect at once, not at
// the fault's end, and strikes nothing more.
func TestInjectorCancelUndoesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := parseFaults(t, "", "  - {at: 1s, kind: freeze, for: 30s}\n  - {at: 5s, kind: reset, node: node1}\n")
		host := newFakeHost("node1")
		res, _ := run(t, fs, host, nil, 10*time.Second, 2*time.Second)
		if got := host.Calls(); !slices.Equal(got, []string{"1s freeze node1", "2s thaw node1"}) {
			t.Errorf("host calls %v: want the freeze undone at the cancel", got)
		}
		if len(res) != 2 || res[0].EndS != 2 || res[0].Detail["cut_short"] == nil || res[1].Status != StatusSkipped {
			t.Errorf("results %+v", res)
		}
	})
}

// A skip reason records every fault skipped, with it, and strikes nothing.
func TestInjectorSkip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		host := newFakeHost("node1")
		in := Start(t.Context(), Config{Faults: parseFaults(t, "", "  - {at: 1s, kind: crash}\n"), Host: host, Skip: "a dry run",
			Since: func() time.Duration { return 0 }})
		time.Sleep(5 * time.Second)
		in.Stop()
		res := in.Results(nil)
		if len(res) != 1 || res[0].Status != StatusSkipped || res[0].Error != "a dry run" || len(host.Calls()) != 0 {
			t.Errorf("results %+v, calls %v", res, host.Calls())
		}
	})
}
