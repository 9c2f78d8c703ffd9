// Package engine runs rehearsals. It owns the sequence every command shares:
//
//	target up → workload setup → pools → load ∥ cutover → integrity → result
//
// Open brings a target up (OpenTarget chooses the adapter for the scenario's kind),
// sets the workload up and opens the pools; Step runs the load once (at the
// scenario's schedule, or at a rate held for a duration), with or without the
// scenario's cutover alongside, checks integrity and assembles the result. `rehearse
// run` calls Step once; a capacity search calls it once per rate.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime"
	"time"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workload"
	"github.com/rehearse-dev/rehearse/workload/replay"
	"github.com/rehearse-dev/rehearse/workload/script"
)

// VerifyTimeout bounds the integrity check and teardown, which run even when the run
// was interrupted.
const VerifyTimeout = 3 * time.Minute

// Config opens a rehearsal.
type Config struct {
	// Target is how to start the target.
	Target TargetConfig
	// ActiveSessions is how many sessions are already logged in when a step starts
	// (banking seeds one login each); 0 means the scenario's load.sessions.
	ActiveSessions int
	// Version is rehearse's version, recorded in results.
	Version string
	// Shard makes the rehearsal one shard of a run spread over several processes
	// (nil: a run of one process).
	Shard *ShardConfig
	// Notices is where what the user must see whatever the log goes: the kept
	// servers, their DSNs and password file (nil: Target.Log).
	Notices io.Writer
}

// Rehearsal is a target that is up, with its workload set up and its pools open.
type Rehearsal struct {
	sc       *scenarios.Scenario
	cfg      Config
	log      io.Writer
	tgt      Target
	wl       workload.Workload
	pools    *pools
	retry    loadgen.Retry
	versions map[string]string
	shard    *sharding // nil unless the run is sharded
}

// Open starts (or connects to) sc's target, sets its workload up and opens the
// pools. sc must be valid (scenarios.Scenario.Validate). On error everything started
// is stopped again.
func Open(ctx context.Context, sc *scenarios.Scenario, cfg Config) (*Rehearsal, error) {
	log := cfg.Target.Log
	if log == nil {
		log = io.Discard
		cfg.Target.Log = log
	}
	wl, err := NewWorkload(ctx, sc)
	if err != nil {
		return nil, err
	}
	retry, err := retryPolicy(sc.Client.Retry)
	if err != nil {
		return nil, err
	}
	if a, ok := wl.(activeSessions); ok && sc.Load.Model == "open" {
		n := cfg.ActiveSessions
		if n == 0 {
			n = sc.Load.Sessions
		}
		a.SetActiveSessions(n)
	}
	var tgt Target
	var sh *sharding
	if cfg.Shard != nil {
		tgt, sh, err = openShard(ctx, sc, cfg)
	} else {
		tgt, err = OpenTarget(ctx, sc, cfg.Target)
	}
	if err != nil {
		return nil, err
	}
	r := &Rehearsal{sc: sc, cfg: cfg, log: log, tgt: tgt, wl: wl, retry: retry,
		versions: map[string]string{"rehearse": cfg.Version, "go": runtime.Version()}, shard: sh}
	if err := r.setUp(ctx); err != nil {
		r.shard.close(ctx, err.Error())
		r.shard = nil
		r.Close(context.WithoutCancel(ctx), false)
		return nil, err
	}
	return r, nil
}

func (r *Rehearsal) setUp(ctx context.Context) error {
	var err error
	if r.pools, err = connect(ctx, r.tgt, r.sc); err != nil {
		return err
	}
	if !r.setsUp() {
		// The coordinator sets the workload up; the start barrier waits for it.
		if v, err := r.pools.serverVersion(ctx); err == nil {
			r.versions["postgresql"] = v
		}
		return nil
	}
	fmt.Fprintf(r.log, "setting up workload %s\n", r.wl.Name())
	if _, ok := r.wl.(*replay.Workload); ok {
		if err := runSetupFile(ctx, r.pools.writer(), relTo(r.sc, r.sc.Workload.Setup), r.sc.Workload.SetupCheck, r.log); err != nil {
			return interrupted(ctx, "during workload setup", err)
		}
	}
	if err := r.wl.Setup(ctx, r.pools.writer(), r.log); err != nil {
		if errors.Is(err, script.ErrInvalid) {
			return workloadInput(r.sc, err)
		}
		return interrupted(ctx, "during workload setup", fmt.Errorf("workload setup failed: %w", err))
	}
	if b, ok := r.wl.(baseliner); ok {
		if err := b.Baseline(ctx, r.pools.writer()); err != nil {
			if errors.Is(err, script.ErrInvalid) {
				return workloadInput(r.sc, err)
			}
			return interrupted(ctx, "checking the workload before the load", err)
		}
	}
	if v, err := r.pools.serverVersion(ctx); err == nil {
		r.versions["postgresql"] = v
	}
	return nil
}

// Target is the rehearsal's target.
func (r *Rehearsal) Target() Target { return r.tgt }

// Close closes the pools and the target (see Target.Close for keep). It bounds
// itself by VerifyTimeout, also when ctx has no deadline.
func (r *Rehearsal) Close(ctx context.Context, keep bool) {
	r.shard.close(ctx, "")
	if r.pools != nil {
		r.pools.close()
	}
	cctx, cancel := context.WithTimeout(ctx, VerifyTimeout)
	defer cancel()
	log := r.log
	if keep && r.cfg.Notices != nil {
		log = r.cfg.Notices
	}
	r.tgt.Close(cctx, keep, log)
}

// Versions are the versions the rehearsal's results record: rehearse, Go and, once
// connected, PostgreSQL. The map is the caller's.
func (r *Rehearsal) Versions() map[string]string { return maps.Clone(r.versions) }

// retryPolicy is the load generator's form of the client's retry policy.
func retryPolicy(r scenarios.Retry) (loadgen.Retry, error) {
	on, err := loadgen.ParseClasses(r.On)
	if err != nil {
		return loadgen.Retry{}, fmt.Errorf("%w: client.retry.on: %w", ErrInvalidInput, err)
	}
	return loadgen.Retry{MaxAttempts: r.MaxAttempts, Backoff: r.Backoff.D(), MaxBackoff: r.MaxBackoff.D(), On: on}, nil
}
