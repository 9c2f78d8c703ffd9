package scenarios

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Fault kinds.
const (
	// FaultFreeze stops the node's processes (SIGSTOP, docker pause) for For.
	FaultFreeze = "freeze"
	// FaultBlackhole drops the traffic to and from the node both ways for For:
	// open connections hang.
	FaultBlackhole = "blackhole"
	// FaultLatency adds Add (± Jitter) to the traffic to the node for For.
	FaultLatency = "latency"
	// FaultReset resets every open connection to the node.
	FaultReset = "reset"
	// FaultCrash kills the node (kill -9); the plan's failover or a restart follows.
	FaultCrash = "crash"
)

// FaultKinds lists the fault kinds. Treat it as read-only.
var FaultKinds = []string{FaultFreeze, FaultBlackhole, FaultLatency, FaultReset, FaultCrash}

// Fault nodes that name a role rather than a node.
const (
	NodeWriter  = "writer"
	NodeReader  = "reader"
	NodeReplica = "replica"
)

// Fault is one fault injected on the run's timeline.
type Fault struct {
	// At is when it strikes: a duration from the run's start (20s) or a cutover
	// step's name (switchover), to strike as that step starts. With EveryCycle a
	// duration counts from each cycle's start.
	At string `yaml:"at"`
	// Kind is freeze, blackhole, latency, reset or crash.
	Kind string `yaml:"kind"`
	// Node is writer (default), reader, replica (the new one) or a node's name,
	// resolved when the fault strikes.
	Node string `yaml:"node"`
	// For is how long a freeze, blackhole or latency lasts.
	For Duration `yaml:"for"`
	// Add and Jitter are a latency fault's added delay and its spread.
	Add    Duration `yaml:"add"`
	Jitter Duration `yaml:"jitter"`
	// EveryCycle repeats the fault in every cutover cycle.
	EveryCycle bool `yaml:"every_cycle"`
}

// Lasting reports whether the fault's kind lasts (For) rather than strikes once.
func (f Fault) Lasting() bool {
	return f.Kind == FaultFreeze || f.Kind == FaultBlackhole || f.Kind == FaultLatency
}

// AtDuration is At as a duration, and whether it is one (else it names a step).
func (f Fault) AtDuration() (time.Duration, bool) {
	d, err := ParseDuration(f.At)
	return d.D(), err == nil
}

// Describe says what the fault is in a few words ("blackhole writer for 5s").
func (f Fault) Describe() string {
	s := f.Kind + " " + f.Node
	if f.Kind == FaultLatency {
		s += " +" + formatDuration(f.Add)
		if f.Jitter > 0 {
			s += "±" + formatDuration(f.Jitter)
		}
	}
	if f.Lasting() {
		s += " for " + formatDuration(f.For)
	}
	return s
}

// Guardrail metrics (cutover.abort_if[].metric).
const (
	GuardErrorRate        = "error_rate"
	GuardAttemptErrorRate = "attempt_error_rate"
	GuardWriteUnavailable = "write_unavailable"
	GuardReadUnavailable  = "read_unavailable"
)

// GuardrailMetrics lists the metrics a guardrail can watch. Treat it as read-only.
var GuardrailMetrics = []string{GuardErrorRate, GuardAttemptErrorRate, "p50", "p90", "p99", "p999", "max", GuardWriteUnavailable, GuardReadUnavailable}

// DefaultGuardrailWindow is a windowed guardrail's window when it sets none.
const DefaultGuardrailWindow = 5 * time.Second

// Guardrail is one cutover.abort_if condition: metric above max over the last
// window aborts the cutover.
type Guardrail struct {
	// Metric is error_rate (operations that failed after the client's retries, what
	// users saw), attempt_error_rate (every failed attempt), a latency percentile
	// (p50, p90, p99, p999, max), write_unavailable or read_unavailable (how long
	// no write, or read, has succeeded).
	Metric string `yaml:"metric"`
	// Op limits a latency metric to one operation ("" or "*": all).
	Op string `yaml:"op"`
	// Window is the sliding window a rate or latency is measured over (default 5s,
	// at least 1s).
	Window Duration `yaml:"window"`
	// Max is the limit: a fraction for the rates (0.5), a duration for the
	// latencies and unavailability (2s).
	Max string `yaml:"max"`
}

// Latency reports whether the guardrail watches a latency percentile, and which
// (99.9 for p999, 100 for max).
func (g Guardrail) Latency() (percentile float64, ok bool) {
	switch g.Metric {
	case "max":
		return 100, true
	case "p999":
		return 99.9, true
	}
	if p, found := strings.CutPrefix(g.Metric, "p"); found {
		if v, err := strconv.ParseFloat(p, 64); err == nil {
			return v, true
		}
	}
	return 0, false
}

// Rate reports whether the guardrail watches an error rate.
func (g Guardrail) Rate() bool {
	return g.Metric == GuardErrorRate || g.Metric == GuardAttemptErrorRate
}

// Limit is Max parsed for the metric: a fraction for the rates, seconds for the
// latencies and unavailability.
func (g Guardrail) Limit() (float64, error) {
	if g.Rate() {
		v, err := strconv.ParseFloat(strings.TrimSpace(g.Max), 64)
		if err != nil || v <= 0 || v > 1 {
			return 0, fmt.Errorf("%s is a fraction of operations: max must be above 0 and at most 1, e.g. 0.5 (got %q)", g.Metric, g.Max)
		}
		return v, nil
	}
	d, err := ParseDuration(g.Max)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s is a duration: max must be a positive duration, e.g. 2s (got %q)", g.Metric, g.Max)
	}
	return d.D().Seconds(), nil
}

// WindowOrDefault is the guardrail's window, DefaultGuardrailWindow when unset.
func (g Guardrail) WindowOrDefault() time.Duration {
	if g.Window > 0 {
		return g.Window.D()
	}
	return DefaultGuardrailWindow
}

// Describe writes the condition as a sentence fragment ("p99 of transfer over 5s
// above 2s").
func (g Guardrail) Describe() string {
	s := g.Metric
	if g.Op != "" && g.Op != "*" {
		s += " of " + g.Op
	}
	if g.Metric != GuardWriteUnavailable && g.Metric != GuardReadUnavailable {
		s += " over " + formatDuration(Duration(g.WindowOrDefault()))
	}
	return s + " above " + strings.TrimSpace(g.Max)
}

// localNodes are the names a local or container cluster gives its nodes: the
// writer it starts with, then the replica create_replica adds.
func (s *Scenario) localNodes() []string {
	nodes := []string{"node1"}
	steps := s.Cutover.Steps
	if len(steps) == 0 {
		steps = PlanSteps
	}
	if s.Cutover.Enabled && s.Cutover.Strategy != StrategyBlueGreen && slices.Contains(steps, "create_replica") {
		nodes = append(nodes, "node2")
	}
	return nodes
}

func (s *Scenario) validateFaults(c *checker) {
	steps := s.Cutover.Steps
	if len(steps) == 0 {
		steps = StrategySteps(s.Cutover.Strategy)
	}
	if s.Cutover.Rollback {
		steps = append(slices.Clone(steps), "rollback")
	}
	if s.Cutover.Cycles > 1 {
		steps = append(slices.Clone(steps), "settle")
	}
	if len(s.Faults) > 0 && s.Target.DSN != "" && s.Target.Kind != TargetAurora {
		c.add("faults", "target.dsn points at a database rehearse does not run: it cannot freeze, cut, reset or crash it; drop target.dsn (target.kind local or container), or the faults")
	}
	for i := range s.Faults {
		f := &s.Faults[i]
		p := fmt.Sprintf("faults[%d]", i)
		c.oneOf(p+".kind", f.Kind, FaultKinds)
		s.validateFaultNode(c, p, f)
		if at, ok := f.AtDuration(); ok {
			if at < 0 {
				c.add(p+".at", "must not be negative (got %s)", f.At)
			} else if d := s.Load.Duration.D(); d > 0 && at >= d && !f.EveryCycle {
				c.add(p+".at", "is %s, past the run's end (load.duration %s); strike earlier or lengthen the load", f.At, formatDuration(s.Load.Duration))
			}
		} else {
			switch {
			case strings.TrimSpace(f.At) == "":
				c.add(p+".at", "is required: a time from the run's start (20s) or a cutover step's name (switchover)")
			case !s.Cutover.Enabled:
				c.add(p+".at", "%q names a cutover step, but cutover.enabled is false; give a time such as 20s", f.At)
			case !slices.Contains(steps, f.At):
				c.add(p+".at", "%q is neither a duration (20s) nor a step of the plan (%s)", f.At, strings.Join(steps, ", "))
			}
		}
		switch {
		case f.Lasting() && f.For <= 0:
			c.add(p+".for", "is required for a %s: how long it lasts, e.g. 5s", f.Kind)
		case !f.Lasting() && f.For != 0 && slices.Contains(FaultKinds, f.Kind):
			c.add(p+".for", "a %s strikes once and does not last; drop for", f.Kind)
		}
		if f.Kind == FaultLatency {
			if f.Add <= 0 {
				c.add(p+".add", "is required for a latency fault: the delay to add, e.g. 50ms")
			}
			c.nonNegativeDuration(p+".jitter", f.Jitter)
		} else if f.Add != 0 || f.Jitter != 0 {
			c.add(p+".add", "add and jitter apply to latency faults only; drop them from this %s", f.Kind)
		}
		if f.EveryCycle && s.Cutover.Cycles < 2 {
			c.add(p+".every_cycle", "repeats the fault in every cutover cycle, but cutover.cycles is %d; set cycles: 2 or more, or drop every_cycle", s.Cutover.Cycles)
		}
		if s.Target.Kind == TargetAurora && f.Kind != FaultCrash && slices.Contains(FaultKinds, f.Kind) {
			c.add(p+".kind", "the aurora target can inject only a crash (FailoverDBCluster, or RebootDBInstance with failover, through the RDS API); a %s needs a target rehearse runs: target.kind local or container", f.Kind)
		}
	}
	s.validateFaultOverlaps(c)
}

func (s *Scenario) validateFaultNode(c *checker, p string, f *Fault) {
	switch f.Node {
	case NodeWriter, NodeReader, NodeReplica:
		return
	}
	if s.Target.Kind == TargetAurora {
		return // instance identifiers are checked against the cluster before the load starts
	}
	if nodes := s.localNodes(); !slices.Contains(nodes, f.Node) {
		c.add(p+".node", "no node is named %q on the %s target; use writer, reader, replica or one of: %s", f.Node, s.Target.Kind, strings.Join(nodes, ", "))
	}
}

// validateFaultOverlaps refuses two faults on one node at once, except a reset,
// which strikes once and combines with anything. Faults at times overlap when
// their spans do; faults at the same step start together. Before the cutover
// starts (or without one) the writer is the first node, so a fault on the writer
// and one on node1 are on one node.
func (s *Scenario) validateFaultOverlaps(c *checker) {
	type span struct {
		i          int
		node, step string
		start, end time.Duration
	}
	local := s.Target.Kind == TargetLocal || s.Target.Kind == TargetContainer
	firstNode := s.localNodes()[0]
	cutoverAt := time.Duration(1<<63 - 1)
	if s.Cutover.Enabled {
		cutoverAt = s.Cutover.Warmup.D()
	}
	// A crash may move the writer too: the alias holds only until the first one.
	for _, f := range s.Faults {
		if at, timed := f.AtDuration(); timed && f.Kind == FaultCrash {
			cutoverAt = min(cutoverAt, at)
		}
	}
	var spans []span
	for i, f := range s.Faults {
		if f.EveryCycle || f.Kind == FaultReset || !slices.Contains(FaultKinds, f.Kind) {
			continue
		}
		at, timed := f.AtDuration()
		sp := span{i: i, node: f.Node, start: at}
		if !timed {
			sp.step = f.At
		}
		sp.end = at + time.Millisecond
		if f.Lasting() {
			sp.end = at + f.For.D()
		}
		if f.Kind == FaultCrash {
			sp.end = time.Duration(1<<63 - 1) // a crashed node stays down until something restarts it
		}
		if local && timed && sp.node == NodeWriter && (sp.end <= cutoverAt || f.Kind == FaultCrash && sp.start <= cutoverAt) {
			sp.node = firstNode
		}
		for _, o := range spans {
			if o.node != sp.node {
				continue
			}
			sameStep := sp.step != "" && sp.step == o.step
			overlap := sp.step == "" && o.step == "" && sp.start < o.end && o.start < sp.end
			if sameStep || overlap {
				g := s.Faults[o.i]
				c.add(fmt.Sprintf("faults[%d]", i), "%s overlaps faults[%d] (%s at %s) on the same node: two faults on one node at once cannot combine (except a reset); move one or strike another node", f.Describe(), o.i, g.Describe(), g.At)
			}
		}
		spans = append(spans, sp)
	}
}

func (s *Scenario) validateCycles(c *checker) {
	cu := &s.Cutover
	if cu.Cycles < 1 {
		c.add("cutover.cycles", "must be at least 1 (got %d): the number of switchovers to run", cu.Cycles)
		return
	}
	c.nonNegativeDuration("cutover.settle", cu.Settle)
	if cu.Cycles == 1 {
		return
	}
	steps := cu.Steps
	if len(steps) == 0 {
		steps = PlanSteps
	}
	switch {
	case cu.Strategy == StrategyBlueGreen:
		c.add("cutover.cycles", "cycles apply to the in_cluster strategy: a blue/green switchover leaves the old blue read-only and behind green, so there is no failback to repeat")
	case cu.Rollback:
		c.add("cutover.rollback", "cycles already alternate direction (an even number ends on the original writer); set rollback: false")
	case !slices.Contains(steps, "keep_rollback_target") || !slices.Contains(steps, "switchover") || !slices.Contains(steps, "redirect"):
		c.add("cutover.steps", "%d cycles need switchover, redirect and keep_rollback_target in the plan: each cycle switches over and keeps the old writer following for the next", cu.Cycles)
	}
	need := cu.Warmup.D() + time.Duration(cu.Cycles)*cu.Settle.D()
	if d := s.Load.Duration.D(); cu.Enabled && d > 0 && need > d {
		c.add("cutover.cycles", "%d cycles with a %s settle after each and a %s warmup need load.duration of at least %s (it is %s); lengthen the load, or run fewer cycles or a shorter settle", cu.Cycles, formatDuration(cu.Settle), formatDuration(cu.Warmup), formatDuration(Duration(need)), formatDuration(s.Load.Duration))
	}
}

func (s *Scenario) validateGuardrails(c *checker) {
	if len(s.Cutover.AbortIf) > 0 && !s.Cutover.Enabled {
		c.add("cutover.abort_if", "guardrails watch a cutover, but cutover.enabled is false; enable the cutover or drop abort_if")
	}
	ops := s.Ops()
	for i, g := range s.Cutover.AbortIf {
		p := fmt.Sprintf("cutover.abort_if[%d]", i)
		if !slices.Contains(GuardrailMetrics, g.Metric) {
			c.add(p+".metric", "unknown metric %q; use one of: %s", g.Metric, strings.Join(GuardrailMetrics, ", "))
			continue
		}
		_, latency := g.Latency()
		switch {
		case g.Op == "" || g.Op == "*":
		case !latency:
			c.add(p+".op", "%s is measured over every operation; drop op", g.Metric)
		case ops != nil && !slices.Contains(ops, g.Op):
			c.add(p+".op", "unknown operation %q for workload %s; use \"*\" (every operation) or one of: %s", g.Op, s.Workload.Name, strings.Join(ops, ", "))
		}
		if g.Window != 0 && g.Window.D() < time.Second {
			c.add(p+".window", "must be at least 1s (got %s): the guardrail is evaluated once a second", formatDuration(g.Window))
		}
		if strings.TrimSpace(g.Max) == "" {
			c.add(p+".max", "is required: the limit, a fraction for %s or a duration for the latencies and unavailability", GuardErrorRate)
		} else if _, err := g.Limit(); err != nil {
			c.add(p+".max", "%v", err)
		}
	}
}
