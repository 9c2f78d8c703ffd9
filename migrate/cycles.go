package migrate

import (
	"fmt"
	"slices"

	"github.com/rehearse-dev/rehearse/result"
)

// planStep is one step of the plan as it runs: its name and the cutover cycle it
// belongs to (0 outside the cycles, or in a plan that runs the switchover once).
type planStep struct {
	name  string
	cycle int
}

// cycleSteps are the steps a cycle after the first repeats, in plan order.
var cycleSteps = []string{StepCatchUp, StepSwitchover, StepRedirect, StepValidate, StepKeepRollbackTarget}

// plan resolves the configured steps into the plan as it runs: with cycles, the
// first cycle is the plan's steps from its first of catch_up, forward_writes and
// switchover to keep_rollback_target, and every further cycle is a settle step (of
// the cycle before) then that stretch's catch_up, switchover, redirect, validate
// and keep_rollback_target, in the other direction.
func (c Config) plan() ([]planStep, error) {
	steps, err := c.steps()
	if err != nil {
		return nil, err
	}
	if c.Cycles <= 1 {
		out := make([]planStep, len(steps))
		for i, s := range steps {
			out[i] = planStep{name: s}
		}
		return out, nil
	}
	if err := c.checkCycles(steps); err != nil {
		return nil, err
	}
	first := slices.IndexFunc(steps, func(s string) bool {
		return s == StepCatchUp || s == StepForwardWrites || s == StepSwitchover
	})
	last := slices.Index(steps, StepKeepRollbackTarget)
	var out []planStep
	for _, s := range steps[:first] {
		out = append(out, planStep{name: s})
	}
	block := steps[first : last+1]
	for _, s := range block {
		out = append(out, planStep{name: s, cycle: 1})
	}
	for n := 2; n <= c.Cycles; n++ {
		out = append(out, planStep{name: StepSettle, cycle: n - 1})
		for _, s := range block {
			if slices.Contains(cycleSteps, s) {
				out = append(out, planStep{name: s, cycle: n})
			}
		}
	}
	for _, s := range steps[last+1:] {
		out = append(out, planStep{name: s})
	}
	return out, nil
}

// checkCycles refuses cycles a plan cannot run.
func (c Config) checkCycles(steps []string) error {
	switch {
	case c.Strategy == StrategyBlueGreen:
		return fmt.Errorf("cycles apply to the %s strategy: a blue/green switchover leaves the old blue read-only and behind green, so there is no failback to repeat", StrategyInCluster)
	case c.Rollback:
		return fmt.Errorf("rollback with %d cycles: the cycles already alternate direction (an even number ends on the original writer); set rollback: false", c.Cycles)
	}
	for _, need := range []string{StepSwitchover, StepRedirect, StepKeepRollbackTarget} {
		if !slices.Contains(steps, need) {
			return fmt.Errorf("%d cycles need the %s step in the plan (each cycle switches over, redirects and keeps the old writer following for the next)", c.Cycles, need)
		}
	}
	return nil
}

// Direction is the direction of cycle n: odd cycles switch over onto the new node,
// even ones fail back onto the original writer.
func Direction(n int) string {
	if n%2 == 0 {
		return result.DisruptionFailback
	}
	return result.DisruptionSwitchover
}

// describeCycleStep says what a step of a cycle after the first does.
func describeCycleStep(step string, cycle int, cfg Config, kind, action, check string) (string, string) {
	onto := "the new writer"
	if Direction(cycle) == result.DisruptionFailback {
		onto = "the original writer"
	}
	switch step {
	case StepCatchUp:
		return fmt.Sprintf("cycle %d: sample the lag of the node the switchover goes to (%s)", cycle, onto), check
	case StepSwitchover:
		return fmt.Sprintf("cycle %d (%s onto %s): %s", cycle, Direction(cycle), onto, action), check
	case StepKeepRollbackTarget:
		return fmt.Sprintf("cycle %d: the writer before this cycle follows the new one", cycle), check
	}
	return fmt.Sprintf("cycle %d: %s", cycle, action), check
}

// cycleRecords builds the cycles' records from the steps that ran (the load's side,
// unavailability, failures and recovery, is filled in by the caller).
func cycleRecords(m *result.Migration, cfg Config, writerBefore, other string) []result.Cycle {
	if cfg.Cycles <= 1 {
		return nil
	}
	out := make([]result.Cycle, cfg.Cycles)
	for i := range out {
		n := i + 1
		from, to := writerBefore, other
		if Direction(n) == result.DisruptionFailback {
			from, to = other, writerBefore
		}
		out[i] = result.Cycle{Cycle: n, Direction: Direction(n), From: from, To: to, Outcome: StatusSkipped, Steps: []result.Step{}}
	}
	for _, s := range m.Steps {
		if s.Cycle < 1 || s.Cycle > len(out) || s.Name == StepSettle {
			continue
		}
		c := &out[s.Cycle-1]
		if len(c.Steps) == 0 {
			c.StartS = s.StartS
		}
		c.Steps = append(c.Steps, s)
		c.EndS = s.EndS
	}
	for i := range out {
		c := &out[i]
		if len(c.Steps) == 0 {
			continue
		}
		c.Outcome = "completed"
		for _, s := range c.Steps {
			switch s.Status {
			case StatusFailed:
				c.Outcome = "failed"
			case StatusSkipped:
				if c.Outcome == "completed" {
					c.Outcome = StatusSkipped
				}
			case StatusPlanned:
				c.Outcome = "dry"
			}
			if s.Name == StepSwitchover && s.Detail != nil {
				if v, ok := s.Detail["from"].(string); ok && v != "" {
					c.From = v
				}
				if v, ok := s.Detail["to"].(string); ok && v != "" {
					c.To = v
				}
			}
		}
		c.Stall = stallOf(c.Steps)
	}
	return out
}

// stallOf breaks a cycle's write stall down from its switchover's and redirect's
// details (nil when the switchover did not run).
func stallOf(steps []result.Step) *result.Stall {
	var sw, rd map[string]any
	for _, s := range steps {
		switch {
		case s.Name == StepSwitchover && s.Status != StatusSkipped && s.Status != StatusPlanned:
			sw = s.Detail
		case s.Name == StepRedirect && s.Status != StatusSkipped && s.Status != StatusPlanned:
			rd = s.Detail
		}
	}
	if sw == nil {
		return nil
	}
	st := &result.Stall{
		PauseMs:      num(sw["hold_ms"]),
		ShutdownMs:   num(sw["stop_ms"]),
		ReplayWaitMs: num(sw["replay_wait_ms"]),
		PromoteMs:    num(sw["promote_ms"]),
		RepointMs:    num(rd["repoint_ms"]),
		ResumeMs:     num(rd["resume_ms"]),
	}
	// The stall ends when the endpoints are released; the redirect's probe through
	// the endpoint afterwards runs alongside the load again.
	st.TotalMs = num(sw["stall_ms"]) + num(rd["release_ms"])
	return st
}

// num reads a number from a step's detail (0 when absent).
func num(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	case int:
		return float64(x)
	}
	return 0
}

// Spread is the distribution of values across cycles (nil when there are none).
func Spread(values []float64) *result.Spread {
	if len(values) == 0 {
		return nil
	}
	s := slices.Clone(values)
	slices.Sort(s)
	q := func(p float64) float64 {
		// Nearest rank: the smallest value with at least p of the values at or below it.
		i := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return &result.Spread{Min: s[0], P50: q(0.5), P90: q(0.9), Max: s[len(s)-1]}
}
