package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/shard"
	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/endpoint"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// ShardConfig makes a rehearsal one shard of a run spread over several processes
// or pods (see package internal/shard). Open then joins the run through the target
// database: the coordinator (shard 0) starts or connects to the target, creates
// the run and sets the workload up; the others reach the same target, register
// and skip the setup. Step waits at the start barrier, applies (or publishes) the
// coordinator's phase marks and stop, and exchanges the acknowledged writes the
// coordinator's integrity check needs.
type ShardConfig struct {
	Spec shard.Spec
	// BarrierTimeout bounds the wait for the other shards (0: the default).
	BarrierTimeout time.Duration
	// RendezvousDir is where a coordinator that starts its target on this machine
	// (the embedded cluster, containers) publishes the target's endpoints for the
	// other shards on the machine; "" is the machine's temporary directory.
	RendezvousDir string
	// Host names the machine in the coordination schema and in messages.
	Host string
	// Total is the run's sessions (all shards'), for workloads whose setup gives
	// every session a logged-in user; Offset is this shard's first session.
	Total, Offset int
	// Seed is the shard's seed (recorded in its result).
	Seed uint64
	// Scenario is the scenario file's bytes, copied to the shard's output for the
	// merge's SLO evaluation.
	Scenario []byte
}

// ShardScenario is shard spec's part of sc: its share of the sessions (or of the
// closed loop's connections) and of the arrival rate, ramp stages included, and its
// own seed. It also returns the share's offset among the run's sessions. A replay
// cannot be spread (its sessions are the capture's), nor a load with fewer sessions
// than shards.
func ShardScenario(sc *scenarios.Scenario, spec shard.Spec) (*scenarios.Scenario, int, error) {
	s := sc.Clone()
	if s.Workload.Name == scenarios.WorkloadReplay {
		return nil, 0, fmt.Errorf("%w: --shard %s: a replay cannot be spread over shards: its sessions and their order are the capture's", ErrInvalidInput, spec)
	}
	if spec.Count == 1 {
		return s, 0, nil
	}
	n := float64(spec.Count)
	if s.Load.Model == "closed" {
		c, _ := spec.Share(s.Load.Connections)
		if c == 0 {
			return nil, 0, fmt.Errorf("%w: --shard %s: load.connections %d is fewer than the %d shards", ErrInvalidInput, spec, s.Load.Connections, spec.Count)
		}
		s.Load.Connections = c
	}
	total := s.Load.Sessions
	sessions, offset := spec.Share(total)
	if sessions == 0 {
		return nil, 0, fmt.Errorf("%w: --shard %s: load.sessions %d is fewer than the %d shards", ErrInvalidInput, spec, total, spec.Count)
	}
	if s.Load.Model != "closed" {
		rate := sc.EffectiveRate()
		s.Load.Sessions = sessions
		s.Load.Rate = rate / n
		for i := range s.Load.Stages {
			s.Load.Stages[i].Rate /= n
		}
	}
	s.Workload.Seed = spec.Seed(sc.Workload.Seed)
	return s, offset, nil
}

// sharding is a rehearsal's part in a sharded run.
type sharding struct {
	cfg       ShardConfig
	member    *shard.Member
	unpublish func()
	log       io.Writer

	mu      sync.Mutex
	stopped string
	lost    []result.LostShard
	acked   int64 // the shard's own acknowledged writes
	done    bool  // a non-coordinator published its writes
}

// embedded reports whether sc's target is one the coordinator starts on its own
// machine: the other shards find it through the rendezvous file.
func embedded(sc *scenarios.Scenario) bool {
	return sc.Target.DSN == "" && sc.Target.Kind != scenarios.TargetAurora
}

// openShard opens a shard's target and joins the run: the coordinator opens the
// target as a run of one process would, publishes an embedded target's endpoints
// and creates the run; the others reach the coordinator's embedded target through
// its endpoints (or open the same DSN or Aurora cluster) and register.
func openShard(ctx context.Context, sc *scenarios.Scenario, cfg Config) (Target, *sharding, error) {
	scfg := *cfg.Shard
	spec := scfg.Spec
	if scfg.RendezvousDir == "" {
		scfg.RendezvousDir = os.TempDir()
	}
	if scfg.BarrierTimeout <= 0 {
		scfg.BarrierTimeout = shard.DefaultBarrierTimeout
	}
	sh := &sharding{cfg: scfg, log: cfg.Target.Log}
	path := shard.RendezvousPath(scfg.RendezvousDir, sc.Name)
	var tgt Target
	var err error
	switch {
	case spec.Coordinator():
		if tgt, err = OpenTarget(ctx, sc, cfg.Target); err != nil {
			return nil, nil, err
		}
		if embedded(sc) {
			w, r := tgt.Endpoints()
			sh.unpublish, err = shard.Publish(path, shard.Endpoints{
				Kind: string(tgt.Kind()), EndpointMode: string(tgt.EndpointMode()), Writer: w, Reader: r,
				DNSServer: tgt.DNSServer(), PID: os.Getpid(), Count: spec.Count, SHA: sc.SHA256,
			})
			if err != nil {
				tgt.Close(context.WithoutCancel(ctx), false, sh.log)
				return nil, nil, shardErr(err)
			}
		}
	case embedded(sc):
		fmt.Fprintf(sh.log, "shard %s: waiting for the coordinator's target (%s)\n", spec, path)
		e, err := shard.Await(ctx, path, scfg.BarrierTimeout)
		if err == nil {
			err = e.Check(spec, sc.SHA256)
		}
		if err != nil {
			return nil, nil, shardErr(err)
		}
		tgt = &joinedTarget{e: e}
	default:
		if tgt, err = OpenTarget(ctx, sc, cfg.Target); err != nil {
			return nil, nil, err
		}
	}
	conn, err := coordinationConn(tgt)
	if err == nil {
		host := scfg.Host
		if host == "" {
			host, _ = os.Hostname()
		}
		sh.member, err = shard.Join(ctx, shard.Config{
			Spec: spec, Conn: conn, Scenario: sc.Name, ScenarioSHA256: sc.SHA256,
			Sessions: sc.Load.Sessions, Extends: sc.Cutover.Enabled && tgt.Provider() != nil,
			BarrierTimeout: scfg.BarrierTimeout, Host: host, PID: os.Getpid(), Log: sh.log,
		})
	}
	if err != nil {
		if sh.unpublish != nil {
			sh.unpublish()
		}
		tgt.Close(context.WithoutCancel(ctx), false, sh.log)
		return nil, nil, shardErr(err)
	}
	return tgt, sh, nil
}

// shardErr maps the barrier's refusals to invalid input (exit 2).
func shardErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, shard.ErrRefused) {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return err
}

// coordinationConn is how a shard reaches the coordination schema: through the
// writer endpoint, as the load's clients do, so it follows the writer through the
// cutover; names are resolved afresh for every connection (no client DNS cache).
func coordinationConn(tgt Target) (*pgx.ConnConfig, error) {
	wdsn, _ := tgt.Endpoints()
	cfg, err := pgx.ParseConfig(wdsn)
	if err != nil {
		return nil, fmt.Errorf("%w: target.dsn: %w", ErrInvalidInput, err)
	}
	cfg.DefaultQueryExecMode = tgt.ExecMode()
	if server := tgt.DNSServer(); server != "" {
		r, err := newResolver(server, "0s")
		if err != nil {
			return nil, err
		}
		cfg.LookupFunc = r.LookupHost
	}
	if tgt.EndpointMode() == scenarios.EndpointDirect {
		if cfg.RuntimeParams == nil {
			cfg.RuntimeParams = map[string]string{}
		}
		cfg.RuntimeParams["application_name"] = "rehearse-shard"
	}
	return cfg, nil
}

// setsUp reports whether this rehearsal sets the workload up: every rehearsal but
// a sharded run's non-coordinators.
func (r *Rehearsal) setsUp() bool { return r.shard == nil || r.shard.cfg.Spec.Coordinator() }

// close ends the rehearsal's part in the run: the coordinator says the run
// finished (failed, when it ends without a result) and withdraws its endpoints.
func (sh *sharding) close(ctx context.Context, failed string) {
	if sh == nil {
		return
	}
	sh.mu.Lock()
	done := sh.done
	sh.mu.Unlock()
	switch {
	case sh.cfg.Spec.Coordinator():
		sh.member.Finish(ctx, failed)
	case failed != "":
		sh.member.Fail(ctx, failed)
	case !done:
		// The step failed or never ran: say so, rather than let the coordinator
		// wait for a heartbeat to go stale.
		sh.member.Fail(ctx, "it ended before its load finished")
	}
	if sh.unpublish != nil {
		sh.unpublish()
	}
	sh.member.Close()
}

// configure makes the step's load this shard's: its sessions are the run's from
// its offset on, and a non-coordinator's load runs until the coordinator's stop
// when the coordinator's cutover decides it.
func (sh *sharding) configure(cfg *loadgen.Config) {
	if sh == nil {
		return
	}
	cfg.SessionOffset = sh.cfg.Offset
	if !sh.cfg.Spec.Coordinator() && sh.member.Extends() {
		cfg.Duration = 0
	}
}

// start waits at the barrier and until the agreed start, which it returns: the
// step's clock starts there in every shard. Without sharding it is now.
func (sh *sharding) start(ctx context.Context) (time.Time, error) {
	if sh == nil {
		return time.Now(), nil
	}
	at, err := sh.member.Ready(ctx)
	if err != nil {
		return time.Time{}, shardErr(err)
	}
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("%w: at the start barrier: %w", ErrInterrupted, ctx.Err())
	case <-t.C:
	}
	return at, nil
}

// announceEvery is how often the coordinator looks for new marks on its recorder.
const announceEvery = 20 * time.Millisecond

// during runs alongside the load until loadDone closes, and returns a channel
// closed when it has ended. The coordinator publishes its recorder's marks as the
// cutover makes them, and the load's stop once it is known (the duration, or the
// cutover's end plus the after phase's minimum); the others apply those marks and
// stop their load at the coordinator's stop.
func (sh *sharding) during(ctx context.Context, rec *loadgen.Recorder, p *loadgen.Prepared, cut *cutover,
	duration time.Duration, start time.Time, loadDone <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	if sh == nil {
		close(done)
		return done
	}
	since := func() time.Duration { return time.Since(start) }
	go func() {
		defer close(done)
		if sh.cfg.Spec.Coordinator() {
			sh.announce(ctx, rec, cut, duration, since, loadDone)
			return
		}
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		go func() {
			<-loadDone
			cancel()
		}()
		mf := loadgen.NewMarkFollower(rec)
		// The coordinator's own bound, should its stop never come (its target gone).
		bound := time.AfterFunc(time.Until(start.Add(duration+maxExtension)), p.Stop)
		defer bound.Stop()
		var stopTimer *time.Timer
		sh.member.Follow(fctx, shard.Follower{
			Since: since,
			Marks: func(marks []shard.Mark) { mf.Apply(toLoadgenMarks(marks)) },
			Stop: func(at time.Duration, why string) {
				if why != "" {
					sh.mu.Lock()
					sh.stopped = why
					sh.mu.Unlock()
					fmt.Fprintf(sh.log, "shard %s: stopping: %s\n", sh.cfg.Spec, why)
				}
				stopTimer = time.AfterFunc(max(time.Until(start.Add(at)), 0), p.Stop)
			},
		})
		<-fctx.Done()
		if stopTimer != nil {
			stopTimer.Stop()
		}
	}()
	return done
}

// announce is the coordinator's side of during.
func (sh *sharding) announce(ctx context.Context, rec *loadgen.Recorder, cut *cutover, duration time.Duration,
	since func() time.Duration, loadDone <-chan struct{}) {
	pctx := context.WithoutCancel(ctx)
	var published []shard.Mark
	stopped := false
	stop := func(at time.Duration) {
		if !stopped {
			stopped = true
			_ = sh.member.PublishStop(pctx, at)
		}
	}
	if !sh.member.Extends() {
		stop(duration)
	}
	var cutDone <-chan struct{}
	if cut != nil {
		cutDone = cut.done
	}
	t := time.NewTicker(announceEvery)
	defer t.Stop()
	for {
		marks := fromLoadgenMarks(rec.Marks())
		if changed(published, marks) {
			if err := sh.member.PublishMarks(pctx, marks); err == nil {
				published = marks
			}
		}
		select {
		case <-loadDone:
			// Marks made at the very end, then the stop, if the load ended first
			// (interrupted, or the cutover's bound).
			if marks := fromLoadgenMarks(rec.Marks()); changed(published, marks) {
				_ = sh.member.PublishMarks(pctx, marks)
			}
			stop(since())
			return
		case <-cutDone:
			cutDone = nil
			_, ended, _ := cut.outcome()
			// As settle stops the coordinator's own load.
			marks := fromLoadgenMarks(rec.Marks())
			if changed(published, marks) && sh.member.PublishMarks(pctx, marks) == nil {
				published = marks
			}
			stop(min(max(duration, ended+afterMin), duration+maxExtension))
		case <-t.C:
		}
	}
}

// changed reports whether marks holds something published does not.
func changed(published, marks []shard.Mark) bool {
	if len(published) != len(marks) {
		return true
	}
	for i := range marks {
		if published[i] != marks[i] {
			return true
		}
	}
	return false
}

func fromLoadgenMarks(m loadgen.Marks) []shard.Mark {
	out := make([]shard.Mark, 0, len(m.Disruptions)+len(m.Cycles))
	for i, d := range m.Disruptions {
		out = append(out, shard.Mark{Kind: shard.MarkDisruption, Seq: i, Label: d.Label, Disruption: d.Kind, Cycle: d.Cycle,
			Start: d.Start, End: d.End, Ended: d.Ended})
	}
	for i, c := range m.Cycles {
		out = append(out, shard.Mark{Kind: shard.MarkCycle, Seq: i, Cycle: c.Cycle, Start: c.Start})
	}
	return out
}

func toLoadgenMarks(marks []shard.Mark) loadgen.Marks {
	var m loadgen.Marks
	for _, k := range marks {
		switch k.Kind {
		case shard.MarkDisruption:
			if k.Seq == len(m.Disruptions) {
				m.Disruptions = append(m.Disruptions, loadgen.DisruptionMark{Label: k.Label, Kind: k.Disruption, Cycle: k.Cycle,
					Start: k.Start, End: k.End, Ended: k.Ended})
			}
		case shard.MarkCycle:
			if k.Seq == len(m.Cycles) {
				m.Cycles = append(m.Cycles, loadgen.CycleMark{Cycle: k.Cycle, Start: k.Start})
			}
		}
	}
	return m
}

// joinedTarget is the coordinator's embedded target as another shard on its
// machine reaches it: through its endpoints (and their DNS server), with nothing
// to start, stop or cut over.
type joinedTarget struct{ e shard.Endpoints }

func (t *joinedTarget) Kind() scenarios.TargetKind { return scenarios.TargetKind(t.e.Kind) }
func (t *joinedTarget) EndpointMode() scenarios.EndpointMode {
	return scenarios.EndpointMode(t.e.EndpointMode)
}
func (t *joinedTarget) Endpoints() (string, string) { return t.e.Writer, t.e.Reader }
func (t *joinedTarget) DNSServer() string           { return t.e.DNSServer }
func (t *joinedTarget) ExecMode() pgx.QueryExecMode {
	return endpoint.ExecMode(t.e.EndpointMode)
}
func (t *joinedTarget) Provider() migrate.Provider             { return nil }
func (t *joinedTarget) DirectWriterDSN(context.Context) string { return t.e.Writer }
func (t *joinedTarget) Close(context.Context, bool, io.Writer) {}
func (t *joinedTarget) Notes() []string {
	return []string{fmt.Sprintf("This shard reached the coordinator's %s target through its endpoints (%s mode); the coordinator started it, ran the cutover and checked integrity.", t.e.Kind, t.e.EndpointMode)}
}
