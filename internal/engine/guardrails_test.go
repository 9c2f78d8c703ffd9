package engine

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// source is a recorder's view fixed by the test: what the last seconds held.
type source struct {
	stalled time.Duration
	counts  loadgen.Counts
	window  loadgen.WindowLatency
}

func (s source) StalledFor(bool, time.Duration, time.Duration) time.Duration { return s.stalled }
func (s source) Recent(time.Duration, time.Duration) loadgen.Counts          { return s.counts }
func (s source) Window(time.Duration, time.Duration) (loadgen.WindowLatency, error) {
	return s.window, nil
}

func guardScenario(t *testing.T, abortIf string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Parse("g.yaml", []byte("load:\n  duration: 60s\ncutover:\n  enabled: true\n  abort_if:\n"+abortIf))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestGuardrailValues(t *testing.T) {
	slow := loadgen.WindowLatency{Count: 100, All: result.Latency{P99: 900}, PerOp: map[string]result.Latency{"transfer": {P99: 2500}, "balance": {P99: 3}}}
	tests := []struct {
		name  string
		cond  string
		src   source
		fires bool
		value float64
	}{
		{"p99 of every operation", "    - {metric: p99, window: 2s, max: 500ms}\n", source{window: slow}, true, 900},
		{"p99 of one operation", "    - {metric: p99, op: transfer, window: 5s, max: 2s}\n", source{window: slow}, true, 2500},
		{"p99 of a fast operation", "    - {metric: p99, op: balance, window: 5s, max: 2s}\n", source{window: slow}, false, 0},
		{"error rate", "    - {metric: error_rate, window: 5s, max: 0.5}\n", source{counts: loadgen.Counts{Ops: 10, Failed: 6}}, true, 0.6},
		{"attempt error rate", "    - {metric: attempt_error_rate, max: 0.1}\n", source{counts: loadgen.Counts{Attempts: 20, FailedAttempts: 1}}, false, 0},
		{"no operations yet", "    - {metric: error_rate, max: 0.1}\n", source{}, false, 0},
		{"write unavailable", "    - {metric: write_unavailable, max: 10s}\n", source{stalled: 12 * time.Second}, true, 12000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, dry := range []bool{false, true} {
				var log bytes.Buffer
				g := newGuardrails(guardScenario(t, tc.cond), dry, tc.src, func() (string, bool) { return "catch_up", false }, &log)
				fired := g.evaluate(0, 10*time.Second)
				recs, abort := g.result()
				r := recs[0]
				switch {
				case dry:
					if fired || abort != nil || r.Fired || r.WouldFire != tc.fires {
						t.Errorf("dry: fired %v abort %+v record %+v; want only would_fire %v", fired, abort, r, tc.fires)
					}
				case fired != tc.fires || r.Fired != tc.fires || (abort != nil) != tc.fires:
					t.Errorf("wet: fired %v abort %+v record %+v; want %v", fired, abort, r, tc.fires)
				}
				if tc.fires && r.Value != tc.value {
					t.Errorf("value %v, want %v", r.Value, tc.value)
				}
				if tc.fires && !strings.Contains(log.String(), r.Condition) {
					t.Errorf("the log does not name the condition: %q", log.String())
				}
			}
		})
	}
}

// watch aborts the plan once, on the first breach, with migrate.ErrAborted.
func TestGuardrailWatchAbortsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGuardrails(guardScenario(t, "    - {metric: write_unavailable, max: 1s}\n"), false,
			source{stalled: 3 * time.Second}, func() (string, bool) { return "switchover", true }, &bytes.Buffer{})
		ctx, cancel := context.WithCancelCause(t.Context())
		start := time.Now()
		g.watch(ctx, 0, func() time.Duration { return time.Since(start) }, cancel)
		if !errors.Is(context.Cause(ctx), migrate.ErrAborted) {
			t.Fatalf("cause %v, want ErrAborted", context.Cause(ctx))
		}
		_, abort := g.result()
		if abort == nil || abort.AtS != 1 || abort.During != "switchover" || !abort.AfterSwitchover {
			t.Errorf("abort %+v", abort)
		}
		if g.evaluate(0, 5*time.Second) {
			t.Error("a guardrail fired twice")
		}
	})
}
