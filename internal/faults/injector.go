// Package faults injects a scenario's faults into a running rehearsal: a frozen
// node (SIGSTOP, docker pause), a network blackhole, added latency, every
// connection reset, a crash (kill -9, or the RDS API's failover). Network faults act
// on fault proxies (Proxies, Shopify's toxiproxy as a library) that stand in front
// of each node on the path the load's clients use; the others act on the node
// itself through a Host the engine provides for its target. The Injector strikes
// each fault at its moment (a time on the run's clock, a cutover step, each cycle),
// opens a disruption window on the load's timeline for it, undoes it when it ends,
// and undoes everything still in effect when the run stops, whatever stops it.
package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// Statuses of a result.Fault.
const (
	StatusOK      = "ok"
	StatusFailed  = "failed"
	StatusSkipped = "skipped"
)

// Defaults for zero Config fields.
const (
	// DefaultMinWindow is how long an instant fault's (a reset's, a crash's)
	// disruption window lasts at least.
	DefaultMinWindow = time.Second
	// DefaultUndoTimeout bounds undoing one fault (a thaw, a restart with crash
	// recovery), also after the run's context ended.
	DefaultUndoTimeout = 2 * time.Minute
)

// Host is what faults need of a target beyond its proxies: its nodes, and the
// faults that act on a node itself. The engine implements one per target kind.
type Host interface {
	// Topology is the cluster now: its writer and every node with its own address.
	Topology(ctx context.Context) (migrate.Topology, error)
	// Freeze stops every process of node until thaw is called (SIGSTOP, docker
	// pause); detail says what it did.
	Freeze(ctx context.Context, node string) (thaw func(context.Context) error, detail map[string]any, err error)
	// Crash kills node abruptly (kill -9, docker kill, the RDS API).
	Crash(ctx context.Context, node string, writer bool) (detail map[string]any, err error)
	// Restart brings node back after Crash and returns once it serves again (crash
	// recovery; the writer's endpoints released back to it). writer says whether it
	// was the writer.
	Restart(ctx context.Context, node string, writer bool) error
}

// Recorder is the load's recorder: the timeline the faults' windows go on.
type Recorder interface {
	BeginDisruption(label, kind string, cycle int, at time.Duration) loadgen.Disruption
	EndDisruption(d loadgen.Disruption, at time.Duration)
	DisruptionErrors(d loadgen.Disruption) map[string]int64
}

// Config is what an Injector needs.
type Config struct {
	// Faults are the scenario's faults.
	Faults []scenarios.Fault
	// Host acts on the nodes; Proxies on the network (nil: no network faults can
	// be injected).
	Host    Host
	Proxies *Proxies
	// Recorder gets a disruption window per fault.
	Recorder Recorder
	// Since is the run's clock.
	Since func() time.Duration
	// Skip, when not empty, says why no fault strikes: each is recorded skipped.
	Skip string
	// Log gets a line per fault struck and undone.
	Log io.Writer
	// OnStrike, when set, is told of each fault as it takes effect (metrics).
	OnStrike func(scenarios.Fault)
	// MinWindow and UndoTimeout default to DefaultMinWindow and DefaultUndoTimeout.
	MinWindow, UndoTimeout time.Duration
}

// Injector strikes a run's faults and undoes them. Start it as the load starts,
// feed it the cutover's step events (Event) and Stop it as the load ends.
type Injector struct {
	cfg      Config
	ctx      context.Context
	stopping chan struct{}
	wg       sync.WaitGroup
	initial  map[string]bool // the nodes at the start: "replica" is a node added since

	mu      sync.Mutex
	stopped bool
	timers  []*time.Timer
	strikes []*strike
	cycles  map[int]bool // cutover cycles whose start was seen
	step    string       // the plan's step running now ("" none)
}

// strike is one fault struck once.
type strike struct {
	i    int // the fault's index in Config.Faults
	res  result.Fault
	disr loadgen.Disruption
	win  bool // disr was opened
}

// Start schedules cfg's faults on the run's clock (faults at a duration not tied to
// cycles); faults at a step, or in every cycle, wait for Event. It returns at once.
func Start(ctx context.Context, cfg Config) *Injector {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.MinWindow <= 0 {
		cfg.MinWindow = DefaultMinWindow
	}
	if cfg.UndoTimeout <= 0 {
		cfg.UndoTimeout = DefaultUndoTimeout
	}
	in := &Injector{cfg: cfg, ctx: ctx, stopping: make(chan struct{}), initial: map[string]bool{}, cycles: map[int]bool{}}
	if cfg.Skip != "" {
		return in
	}
	if cfg.Host != nil {
		if topo, err := cfg.Host.Topology(ctx); err == nil {
			for _, n := range topo.Nodes {
				in.initial[n.ID] = true
			}
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, f := range cfg.Faults {
		if at, ok := f.AtDuration(); ok && !f.EveryCycle {
			in.schedule(i, 0, at)
		}
	}
	// Ctrl-C undoes what is in effect at once, not when the load has drained.
	in.wg.Go(func() {
		select {
		case <-ctx.Done():
			in.halt()
		case <-in.stopping:
		}
	})
	return in
}

// schedule strikes fault i at offset at of the run's clock; in.mu must be held.
func (in *Injector) schedule(i, cycle int, at time.Duration) {
	in.timers = append(in.timers, time.AfterFunc(max(at-in.cfg.Since(), 0), func() { in.strike(i, cycle) }))
}

// Event follows one of the cutover's step events: faults at a step strike as it
// starts (the first time, or in every cycle with every_cycle), and faults at a
// duration with every_cycle are scheduled from each cycle's start (its first
// mutating step). It never blocks.
func (in *Injector) Event(ev migrate.Event) {
	if in.cfg.Skip != "" {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	started := ev.Status == "started"
	switch {
	case started:
		in.step = ev.Step
	case ev.Step == in.step:
		in.step = ""
	}
	if in.stopped || !started || ev.Undo {
		return
	}
	if ev.Mutating && ev.Cycle >= 1 && !in.cycles[ev.Cycle] {
		in.cycles[ev.Cycle] = true
		for i, f := range in.cfg.Faults {
			if at, ok := f.AtDuration(); ok && f.EveryCycle {
				in.schedule(i, ev.Cycle, ev.At+at)
			}
		}
	}
	for i, f := range in.cfg.Faults {
		if _, ok := f.AtDuration(); ok || f.At != ev.Step {
			continue
		}
		if f.EveryCycle || !in.struckLocked(i) {
			in.startLocked(i, ev.Cycle)
		}
	}
}

func (in *Injector) struckLocked(i int) bool {
	return slices.ContainsFunc(in.strikes, func(s *strike) bool { return s.i == i })
}

// strike strikes fault i (in cycle cycle) unless the injector has stopped.
func (in *Injector) strike(i, cycle int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.stopped {
		in.startLocked(i, cycle)
	}
}

// startLocked runs fault i in a goroutine of its own; in.mu must be held.
func (in *Injector) startLocked(i, cycle int) {
	f := in.cfg.Faults[i]
	s := &strike{i: i, res: result.Fault{Kind: f.Kind, Node: f.Node, Cycle: cycle, At: f.At, StartS: in.cfg.Since().Seconds()}}
	if f.Kind == scenarios.FaultLatency {
		s.res.AddMs, s.res.JitterMs = ms(f.Add.D()), ms(f.Jitter.D())
	}
	in.strikes = append(in.strikes, s)
	in.wg.Go(func() { in.run(s, f) })
}

// planStep is the plan's step running now.
func (in *Injector) planStep() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.step
}

// run injects one fault, holds it for its time (or its window), undoes it and
// closes its window. A fault cut short by Stop is undone at once.
func (in *Injector) run(s *strike, f scenarios.Fault) {
	ctx := in.ctx
	node, writer, err := in.resolve(ctx, f.Node)
	if err != nil {
		in.fail(s, err)
		return
	}
	s.res.NodeID = node.ID
	// The window opens as the fault begins to strike (a kill waits for the
	// processes to be gone); a lasting fault's time counts once it is in effect.
	start := in.cfg.Since()
	undo, detail, err := in.inject(ctx, f, node, writer)
	if err != nil {
		in.fail(s, err)
		return
	}
	s.res.StartS, s.res.Detail = start.Seconds(), detail
	in.mu.Lock()
	s.disr, s.win = in.cfg.Recorder.BeginDisruption("fault: "+f.Describe(), result.DisruptionFault, s.res.Cycle, start), true
	in.mu.Unlock()
	fmt.Fprintf(in.cfg.Log, "fault: %s (%s) at %.1fs\n", f.Describe(), node.ID, start.Seconds())
	if in.cfg.OnStrike != nil {
		in.cfg.OnStrike(f)
	}
	hold := in.cfg.MinWindow
	if f.Lasting() {
		hold = f.For.D()
	}
	cut := !in.wait(hold)
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.cfg.UndoTimeout)
	defer cancel()
	var uerr error
	if undo != nil {
		uerr = undo(uctx)
	}
	end := max(in.cfg.Since(), start)
	in.cfg.Recorder.EndDisruption(s.disr, end)
	in.mu.Lock()
	defer in.mu.Unlock()
	s.res.EndS = end.Seconds()
	s.res.Status = StatusOK
	if cut {
		in.detailLocked(s, "cut_short", "the run ended first")
	}
	if uerr != nil {
		s.res.Status, s.res.Error = StatusFailed, "undoing it: "+uerr.Error()
		fmt.Fprintf(in.cfg.Log, "warning: fault %s: undoing it failed: %v\n", f.Describe(), uerr)
		return
	}
	fmt.Fprintf(in.cfg.Log, "fault: %s (%s) ended at %.1fs\n", f.Describe(), node.ID, end.Seconds())
}

// wait waits d, or until the injector stops; false when it stopped first.
func (in *Injector) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-in.stopping:
		return false
	}
}

func (in *Injector) detailLocked(s *strike, k string, v any) {
	if s.res.Detail == nil {
		s.res.Detail = map[string]any{}
	}
	s.res.Detail[k] = v
}

func (in *Injector) fail(s *strike, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	s.res.Status, s.res.Error = StatusFailed, err.Error()
	s.res.EndS = s.res.StartS
	fmt.Fprintf(in.cfg.Log, "warning: fault %s: %v\n", in.cfg.Faults[s.i].Describe(), err)
}

// resolve finds the node a fault names, now: the writer, a reader, the replica the
// cutover created, or a node by name.
func (in *Injector) resolve(ctx context.Context, name string) (migrate.Node, bool, error) {
	if in.cfg.Host == nil {
		return migrate.Node{}, false, errors.New("the target has no nodes rehearse can act on")
	}
	topo, err := in.cfg.Host.Topology(ctx)
	if err != nil {
		return migrate.Node{}, false, fmt.Errorf("reading the cluster's topology: %w", err)
	}
	var id string
	switch name {
	case scenarios.NodeWriter:
		id = topo.Writer
	case scenarios.NodeReader:
		for _, n := range topo.Nodes {
			if n.ID != topo.Writer {
				id = n.ID
				break
			}
		}
		if id == "" {
			return migrate.Node{}, false, fmt.Errorf("no reader to strike: the cluster has only its writer %s now (a reader exists once the cutover's create_replica has run)", topo.Writer)
		}
	case scenarios.NodeReplica:
		for _, n := range topo.Nodes {
			if !in.initial[n.ID] {
				id = n.ID // the newest wins
			}
		}
		if id == "" {
			return migrate.Node{}, false, errors.New("no replica to strike: the cutover has not created one (yet); strike at a step after create_replica")
		}
	default:
		id = name
	}
	n, ok := topo.Node(id)
	if !ok {
		return migrate.Node{}, false, fmt.Errorf("no node %q in the cluster now (it has %s)", id, nodeIDs(topo))
	}
	return n, id == topo.Writer, nil
}

func nodeIDs(t migrate.Topology) string {
	ids := make([]string, len(t.Nodes))
	for i, n := range t.Nodes {
		ids[i] = n.ID
	}
	return fmt.Sprint(ids)
}

// inject puts fault f in effect on node and returns how to undo it.
func (in *Injector) inject(ctx context.Context, f scenarios.Fault, node migrate.Node, writer bool) (func(context.Context) error, map[string]any, error) {
	px := in.cfg.Proxies
	network := func() error {
		if px == nil {
			return fmt.Errorf("%w %s: the target has no fault proxies", ErrNoProxy, node.ID)
		}
		return nil
	}
	switch f.Kind {
	case scenarios.FaultBlackhole:
		if err := network(); err != nil {
			return nil, nil, err
		}
		undo, err := px.Hold(node.Addr)
		return undo, map[string]any{"proxy": px.Via(node.Addr), "held": "both ways"}, err
	case scenarios.FaultLatency:
		if err := network(); err != nil {
			return nil, nil, err
		}
		undo, err := px.Delay(node.Addr, f.Add.D(), f.Jitter.D())
		return undo, map[string]any{"proxy": px.Via(node.Addr), "direction": "downstream (every reply)"}, err
	case scenarios.FaultReset:
		if err := network(); err != nil {
			return nil, nil, err
		}
		return nil, map[string]any{"proxy": px.Via(node.Addr)}, px.Reset(node.Addr)
	case scenarios.FaultFreeze:
		thaw, detail, err := in.cfg.Host.Freeze(ctx, node.ID)
		return thaw, detail, err
	case scenarios.FaultCrash:
		return in.crash(ctx, node, writer)
	}
	return nil, nil, fmt.Errorf("unknown fault kind %q", f.Kind)
}

// crash kills node, and restarts it when the plan will not fail over from it: the
// writer struck while the plan's switchover runs is left to the switchover.
func (in *Injector) crash(ctx context.Context, node migrate.Node, writer bool) (func(context.Context) error, map[string]any, error) {
	detail, err := in.cfg.Host.Crash(ctx, node.ID, writer)
	if err != nil {
		return nil, detail, err
	}
	if detail == nil {
		detail = map[string]any{}
	}
	if step := in.planStep(); writer && step == migrate.StepSwitchover {
		detail["recovered_by"] = "the plan's " + step
		return nil, detail, nil
	}
	// The window lasts until the node serves again (or MinWindow): restarting is
	// the undo, and starts at once.
	restarted := make(chan error, 1)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), in.cfg.UndoTimeout)
	go func() {
		defer cancel()
		restarted <- in.cfg.Host.Restart(rctx, node.ID, writer)
	}()
	detail["recovered_by"] = "restart"
	return func(context.Context) error { return <-restarted }, detail, nil
}

// halt cuts every fault in effect short and stops scheduling new ones.
func (in *Injector) halt() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return
	}
	in.stopped = true
	for _, t := range in.timers {
		t.Stop()
	}
	close(in.stopping)
}

// Stop cuts every fault still in effect short, undoes it, and returns once all are
// undone (each bounded by UndoTimeout). Faults whose moment has not come are not
// struck. It is idempotent.
func (in *Injector) Stop() {
	in.halt()
	in.wg.Wait()
}

// Results are the faults as result.json records them (call after Stop): each
// strike, and a skipped entry for each fault that never struck; windows are the
// result's phase windows, whose recovery each fault's window carries.
func (in *Injector) Results(windows []result.PhaseWindow) []result.Fault {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []result.Fault
	for i, f := range in.cfg.Faults {
		n := 0
		for _, s := range in.strikes {
			if s.i != i {
				continue
			}
			n++
			r := s.res
			if s.win {
				r.Errors = in.cfg.Recorder.DisruptionErrors(s.disr)
				if d := int(s.disr); d >= 0 && d < len(windows) {
					r.RecoveryS, r.Recovered = windows[d].RecoveryS, windows[d].Recovered
				}
			}
			out = append(out, r)
		}
		if n == 0 {
			why := in.cfg.Skip
			if why == "" {
				why = "its moment never came: " + never(f)
			}
			out = append(out, result.Fault{Kind: f.Kind, Node: f.Node, At: f.At, Status: StatusSkipped, Error: why,
				AddMs: ms(f.Add.D()), JitterMs: ms(f.Jitter.D())})
		}
	}
	slices.SortStableFunc(out, func(a, b result.Fault) int {
		switch {
		case a.Status == StatusSkipped && b.Status != StatusSkipped:
			return 1
		case a.Status != StatusSkipped && b.Status == StatusSkipped:
			return -1
		case a.StartS < b.StartS:
			return -1
		case a.StartS > b.StartS:
			return 1
		}
		return 0
	})
	return out
}

// never says why a fault at f.At did not strike.
func never(f scenarios.Fault) string {
	switch _, ok := f.AtDuration(); {
	case f.EveryCycle:
		return "no cutover cycle started"
	case ok:
		return "the run ended before " + f.At
	}
	return "the plan never ran its " + f.At + " step"
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
