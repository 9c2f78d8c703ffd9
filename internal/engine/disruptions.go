package engine

import (
	"fmt"
	"sync"
	"time"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// disruptions turns the cutover's step events into the recorder's disruption
// windows, so the run's phases follow them: each cycle's switchover (from its first
// mutating step to the end of its redirect), a rollback's failback, the undo of a
// failed or aborted plan. It also follows where the plan is, for guardrails.
type disruptions struct {
	rec    *loadgen.Recorder
	cycles int
	label  string // a single cutover's label: switchover, crash failover, ...

	mu       sync.Mutex
	open     map[int]loadgen.Disruption // by cycle (0: rollback or undo)
	opened   map[int]bool
	undo     bool
	step     string // the step running or last run
	switched bool   // the writer is not the original one
}

func newDisruptions(sc *scenarios.Scenario, rec *loadgen.Recorder) *disruptions {
	label := result.DisruptionSwitchover
	switch {
	case blueGreen(sc):
		label = "blue/green switchover"
	case sc.Cutover.Kind == migrate.Crash:
		label = "crash failover"
	}
	return &disruptions{rec: rec, cycles: max(sc.Cutover.Cycles, 1), label: label,
		open: map[int]loadgen.Disruption{}, opened: map[int]bool{}}
}

// event follows one step event.
func (d *disruptions) event(ev migrate.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	started := ev.Status == "started"
	if started {
		d.step = ev.Step
	}
	switch {
	case ev.Undo && started && !d.undo:
		// The plan failed or was aborted: what is still open ends, the undo begins.
		d.closeAll(ev.At)
		d.undo = true
		d.begin(-1, "undo of the cutover", result.DisruptionUndo, 0, ev.At)
	case ev.Step == migrate.StepRollback && started:
		d.begin(-2, "failback (rollback)", result.DisruptionFailback, 0, ev.At)
	case ev.Step == migrate.StepRollback:
		d.end(-2, ev.At)
		if ev.Status == migrate.StatusOK {
			d.switched = !d.switched
		}
	case ev.Mutating && started && !ev.Undo:
		n := ev.Cycle
		if n == 0 {
			if len(d.opened) > 0 {
				return // decommission and the like, after the cycles
			}
			n = 1
		}
		if d.opened[n] {
			return
		}
		d.opened[n] = true
		if d.cycles > 1 {
			d.rec.BeginCycle(n, ev.At)
		}
		d.begin(n, d.cycleLabel(n), migrate.Direction(n), n, ev.At)
	case ev.Step == migrate.StepSwitchover && ev.Status == migrate.StatusOK:
		d.switched = !d.switched
	case ev.Step == migrate.StepRedirect && !started:
		n := max(ev.Cycle, 1)
		d.end(n, ev.At)
	}
}

// cycleLabel names cycle n's disruption window.
func (d *disruptions) cycleLabel(n int) string {
	if d.cycles <= 1 {
		return d.label
	}
	return fmt.Sprintf("%s (cycle %d)", migrate.Direction(n), n)
}

func (d *disruptions) begin(key int, label, kind string, cycle int, at time.Duration) {
	if _, ok := d.open[key]; ok {
		return
	}
	d.open[key] = d.rec.BeginDisruption(label, kind, max(cycle, 0), at)
}

func (d *disruptions) end(key int, at time.Duration) {
	if id, ok := d.open[key]; ok {
		d.rec.EndDisruption(id, at)
		delete(d.open, key)
	}
}

func (d *disruptions) closeAll(at time.Duration) {
	for k := range d.open {
		d.end(k, at)
	}
}

// close ends every window still open: the plan ended.
func (d *disruptions) close(at time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closeAll(at)
}

// where says which step runs and whether the writer has changed.
func (d *disruptions) where() (step string, switched bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.step, d.switched
}

// fillDisruptions completes the result from the phase windows: each disruption's
// recovery, the cycles' unavailability, counts and recovery and their spread, and
// the cutover's recovery (its slowest).
func fillDisruptions(res *result.Result, cycles []loadgen.CycleCount) {
	ws := res.PhaseWindows
	if len(ws) == 0 {
		return
	}
	fillWindowRecovery(res)
	m := res.Migration
	if m == nil {
		return
	}
	// The cutover's recovery is its slowest disruption's; one that never recovered
	// is the slowest.
	m.RecoveryS, m.Recovered = nil, false
	worse := func(v float64, ok bool) bool {
		switch {
		case m.RecoveryS == nil:
			return true
		case m.Recovered != ok:
			return !ok
		}
		return v > *m.RecoveryS
	}
	for _, w := range ws {
		if w.Phase != result.PhaseDuring || w.RecoveryS == nil || w.Kind == result.DisruptionFault {
			continue
		}
		if v := *w.RecoveryS; worse(v, w.Recovered) {
			m.RecoveryS, m.Recovered = &v, w.Recovered
		}
	}
	if len(m.Cycles) == 0 {
		return
	}
	for i := range m.Cycles {
		c := &m.Cycles[i]
		for _, w := range ws {
			if w.Phase == result.PhaseDuring && w.Cycle == c.Cycle && w.Kind != result.DisruptionFault {
				c.WriteUnavailableMs, c.ReadUnavailableMs = w.WriteUnavailableMs, w.ReadUnavailableMs
				c.RecoveryS, c.Recovered = w.RecoveryS, w.Recovered
			}
		}
		for _, cc := range cycles {
			if cc.Cycle == c.Cycle {
				c.Transactions, c.Failed, c.Attempts, c.FailedAttempts = cc.Transactions, cc.Failed, cc.Attempts, cc.FailedAttempts
			}
		}
	}
	res.Availability.Cycles = cycleSpread(m.Cycles)
}

// cycleSpread is the distribution across the cycles that ran.
func cycleSpread(cycles []result.Cycle) *result.CycleSpread {
	var write, read, rec, stall []float64
	for _, c := range cycles {
		if c.Outcome == migrate.StatusSkipped || c.Outcome == "dry" {
			continue
		}
		write = append(write, c.WriteUnavailableMs)
		read = append(read, c.ReadUnavailableMs)
		if c.RecoveryS != nil {
			rec = append(rec, *c.RecoveryS)
		}
		if c.Stall != nil {
			stall = append(stall, c.Stall.TotalMs)
		}
	}
	if len(write) == 0 {
		return nil
	}
	return &result.CycleSpread{
		Count:              len(write),
		WriteUnavailableMs: *migrate.Spread(write),
		ReadUnavailableMs:  *migrate.Spread(read),
		RecoveryS:          migrate.Spread(rec),
		StallMs:            migrate.Spread(stall),
	}
}

// fillWindowRecovery sets each disruption window's recovery from the result's
// timeline, against the stable stretch before the first disruption.
func fillWindowRecovery(res *result.Result) {
	ws := res.PhaseWindows
	if len(ws) == 0 {
		return
	}
	base := ws[0]
	for i := range ws {
		w := &ws[i]
		if w.Phase != result.PhaseDuring || base.Phase != result.PhaseBefore || base.Count == 0 {
			continue
		}
		secs, ok := recoveryTime(res.Timeline, base.LatencyMs.P99, base.ScheduleLagP99Ms, w.EndS)
		if !ok && secs == 0 {
			continue
		}
		w.RecoveryS, w.Recovered = &secs, ok
	}
}
