package engine

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// guardTick is how often the guardrails are evaluated.
const guardTick = time.Second

// guardrails evaluates the scenario's cutover.abort_if conditions every second
// while the cutover runs, on a sliding window of what the load recorded. A breach
// aborts the plan (cancels it with migrate.ErrAborted), once; in a dry run it is
// only recorded as what would have fired.
type guardrails struct {
	conds  []scenarios.Guardrail
	limits []float64 // in the unit of each condition (a fraction, or seconds)
	dry    bool
	rec    guardSource
	where  func() (step string, switched bool)
	log    io.Writer
	// onFire is told of a breach: the condition and "abort" or "would_abort" (a dry
	// run); nil: nobody.
	onFire func(condition, action string)

	mu      sync.Mutex
	records []result.Guardrail
	abort   *result.Abort
}

// guardSource is what the guardrails read: the load's recorder.
type guardSource interface {
	StalledFor(writes bool, from, now time.Duration) time.Duration
	Recent(from, to time.Duration) loadgen.Counts
	Window(from, to time.Duration) (loadgen.WindowLatency, error)
}

func newGuardrails(sc *scenarios.Scenario, dry bool, rec guardSource, where func() (string, bool), log io.Writer) *guardrails {
	g := &guardrails{dry: dry, rec: rec, where: where, log: log}
	for _, c := range sc.Cutover.AbortIf {
		lim, err := c.Limit()
		if err != nil {
			continue // Validate refused it
		}
		unit := result.UnitMs
		if c.Rate() {
			unit = result.UnitFraction
		}
		g.conds = append(g.conds, c)
		g.limits = append(g.limits, lim)
		rec := result.Guardrail{Condition: c.Describe(), Metric: c.Metric, Op: c.Op, Max: lim, Unit: unit}
		if !c.Rate() {
			rec.Max = Round3(lim * 1000)
		}
		if c.Metric != scenarios.GuardWriteUnavailable && c.Metric != scenarios.GuardReadUnavailable {
			rec.WindowS = c.WindowOrDefault().Seconds()
		}
		g.records = append(g.records, rec)
	}
	return g
}

// guardRetain is how much of the recorder's per-second latency sc's guardrails
// need.
func guardRetain(sc *scenarios.Scenario) time.Duration {
	var d time.Duration
	for _, c := range sc.Cutover.AbortIf {
		if _, ok := c.Latency(); ok {
			d = max(d, c.WindowOrDefault()+2*time.Second)
		}
	}
	return d
}

// watch evaluates the guardrails every guardTick from the plan's start (from, on
// the run's timeline) until ctx ends; abort cancels the plan.
func (g *guardrails) watch(ctx context.Context, from time.Duration, since func() time.Duration, abort context.CancelCauseFunc) {
	if len(g.conds) == 0 {
		return
	}
	t := time.NewTicker(guardTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if g.evaluate(from, since()) && !g.dry {
			abort(migrate.ErrAborted)
			return
		}
	}
}

// evaluate checks every condition at offset now and reports whether one fired: the
// first breach of a wet run (a dry run's breaches are recorded as would-fire).
func (g *guardrails) evaluate(from, now time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.abort != nil {
		return false
	}
	for i, c := range g.conds {
		v, ok := g.value(c, from, now)
		if !ok {
			continue
		}
		r := &g.records[i]
		if !c.Rate() {
			v = Round3(v * 1000) // seconds to ms
		}
		r.Worst = max(r.Worst, v)
		if v <= r.Max || r.AtS != nil {
			continue
		}
		at := Round3(now.Seconds())
		r.AtS, r.Value = &at, v
		if g.onFire != nil {
			action := "abort"
			if g.dry {
				action = "would_abort"
			}
			g.onFire(r.Condition, action)
		}
		if g.dry {
			r.WouldFire = true
			fmt.Fprintf(g.log, "guardrail would have fired (dry run): %s: %s at %.1f s\n", r.Condition, fmtGuard(v, r.Unit), at)
			continue
		}
		r.Fired = true
		step, switched := g.where()
		g.abort = &result.Abort{Condition: r.Condition, AtS: at, Value: v, Unit: r.Unit, During: step, AfterSwitchover: switched}
		fmt.Fprintf(g.log, "guardrail fired: %s: %s at %.1f s, during %s; aborting the cutover\n", r.Condition, fmtGuard(v, r.Unit), at, step)
		return true
	}
	return false
}

// value measures one condition at offset now (seconds for latency and
// unavailability, a fraction for rates); ok is false when there is nothing to
// measure yet.
func (g *guardrails) value(c scenarios.Guardrail, from, now time.Duration) (float64, bool) {
	w := c.WindowOrDefault()
	lo := max(now-w, 0)
	switch c.Metric {
	case scenarios.GuardWriteUnavailable:
		return g.rec.StalledFor(true, from, now).Seconds(), true
	case scenarios.GuardReadUnavailable:
		return g.rec.StalledFor(false, from, now).Seconds(), true
	case scenarios.GuardErrorRate, scenarios.GuardAttemptErrorRate:
		n := g.rec.Recent(lo, now)
		if c.Metric == scenarios.GuardErrorRate {
			if n.Ops == 0 {
				return 0, false
			}
			return float64(n.Failed) / float64(n.Ops), true
		}
		if n.Attempts == 0 {
			return 0, false
		}
		return float64(n.FailedAttempts) / float64(n.Attempts), true
	}
	p, _ := c.Latency()
	wl, err := g.rec.Window(lo, now)
	if err != nil {
		return 0, false
	}
	l := wl.All
	if c.Op != "" && c.Op != "*" {
		var ok bool
		if l, ok = wl.PerOp[c.Op]; !ok {
			return 0, false
		}
	} else if wl.Count == 0 {
		return 0, false
	}
	var ms float64
	switch p {
	case 50:
		ms = l.P50
	case 90:
		ms = l.P90
	case 99:
		ms = l.P99
	case 99.9:
		ms = l.P999
	default:
		ms = l.Max
	}
	return ms / 1000, true
}

// result is what the guardrails saw, for the migration record.
func (g *guardrails) result() ([]result.Guardrail, *result.Abort) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.records) == 0 {
		return nil, nil
	}
	return append([]result.Guardrail(nil), g.records...), g.abort
}

func fmtGuard(v float64, unit string) string {
	if unit == result.UnitFraction {
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}
