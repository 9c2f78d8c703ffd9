package rehearse

import (
	"fmt"
	"os"
	"time"

	"github.com/rehearse-dev/rehearse/internal/engine"
	"github.com/rehearse-dev/rehearse/internal/shard"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// Shard environment variables (see WithShard): an Indexed Job sets
// JOB_COMPLETION_INDEX on each pod, and its pod template sets REHEARSE_SHARDS.
const (
	EnvShardIndex = shard.EnvIndex
	EnvShards     = shard.EnvShards
)

// DefaultBarrierTimeout is how long the shards of a run wait for each other at the
// start barrier unless WithBarrierTimeout says otherwise.
const DefaultBarrierTimeout = shard.DefaultBarrierTimeout

type shardOptions struct {
	spec    shard.Spec
	barrier time.Duration
	dir     string
}

// WithShard makes Run shard index of a run spread over count processes or pods
// against one target: it runs 1/count of the sessions and of the arrival rate, with
// its own seed. Shard 0 is the coordinator: it sets the workload up, runs the
// cutover and the integrity check, which covers every shard's writes; the others
// run load only. The shards find each other through the target database (a
// rehearse_run schema), wait at a start barrier and share one start time, so
// `rehearse report merge` can merge their results exactly. An index out of range
// is invalid input. Run only.
func WithShard(index, count int) Option {
	return func(o *options) {
		o.shardOpts().spec = shard.Spec{Index: index, Count: count}
		o.mark("WithShard")
	}
}

// WithBarrierTimeout bounds how long the shards of a run wait for each other at
// the start (default DefaultBarrierTimeout): a shard that has not arrived by then
// fails the run, named. Only with WithShard.
func WithBarrierTimeout(d time.Duration) Option {
	return func(o *options) { o.shardOpts().barrier = d; o.mark("WithBarrierTimeout") }
}

// WithRendezvousDir sets the directory where a coordinator that starts an embedded
// target on this machine publishes its endpoints for the machine's other shards
// (default: the temporary directory). Only with WithShard.
func WithRendezvousDir(dir string) Option {
	return func(o *options) { o.shardOpts().dir = dir }
}

func (o *options) shardOpts() *shardOptions {
	if o.shard == nil {
		o.shard = &shardOptions{spec: shard.Spec{Count: 1}}
	}
	return o.shard
}

// shardRun makes s this process's shard of the run and cfg join it; without
// WithShard it returns s unchanged.
func (o *options) shardRun(s *scenarios.Scenario, cfg *engine.Config) (*scenarios.Scenario, error) {
	if o.shard == nil || !o.set["WithShard"] {
		if o.set["WithBarrierTimeout"] {
			return nil, fmt.Errorf("%w: a barrier timeout is for a sharded run (--shard INDEX/COUNT)", ErrInvalidInput)
		}
		return s, nil
	}
	spec, err := shard.New(o.shard.spec.Index, o.shard.spec.Count)
	if err != nil {
		return nil, fmt.Errorf("%w: --shard: %w", ErrInvalidInput, err)
	}
	if o.shard.barrier < 0 {
		return nil, fmt.Errorf("%w: --barrier-timeout %v: must be positive", ErrInvalidInput, o.shard.barrier)
	}
	part, offset, err := engine.ShardScenario(s, spec)
	if err != nil {
		return nil, err
	}
	var file []byte
	if s.File != "" {
		if file, err = os.ReadFile(s.File); err != nil {
			return nil, fmt.Errorf("%w: reading the scenario for the shard's output: %w", ErrInvalidInput, err)
		}
	}
	cfg.ActiveSessions = s.Load.Sessions
	cfg.Shard = &engine.ShardConfig{
		Spec: spec, BarrierTimeout: o.shard.barrier, RendezvousDir: o.shard.dir,
		Total: s.Load.Sessions, Offset: offset, Seed: part.Workload.Seed, Scenario: file,
	}
	return part, nil
}
