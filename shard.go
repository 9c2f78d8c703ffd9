package rehearse

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/internal/engine"
	"github.com/rehearse-dev/rehearse/internal/shard"
	"github.com/rehearse-dev/rehearse/result"
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

// shardVerdict adjusts a shard's own SLO verdict: a non-coordinator's writes are
// checked by the coordinator, so its own "integrity not checked" is no breach.
func shardVerdict(res *result.Result) {
	if res.Shard == nil || res.Shard.Index == 0 {
		return
	}
	v := &res.SLO
	v.Passed = true
	for i := range v.Checks {
		c := &v.Checks[i]
		if !c.Passed && !res.Integrity.Checked && c.Reason == "integrity not checked" {
			c.Passed = true
			c.Reason = "checked by the coordinator (shard 0), whose integrity check covers this shard's writes"
		}
		v.Passed = v.Passed && c.Passed
	}
}

// shardOutcome is how a shard's run ends. Its SLO verdict is on its share of the
// load alone, so it is not the run's: the merge's is (rehearse report merge). The
// coordinator fails when shards died or never finished, naming them.
func shardOutcome(res *result.Result, dir string) error {
	if len(res.Shard.Lost) == 0 {
		return nil
	}
	var parts []string
	for _, l := range res.Shard.Lost {
		parts = append(parts, fmt.Sprintf("shard %d (%s)", l.Index, l.Reason))
	}
	return fmt.Errorf("%d of %d shards did not finish: %s; the coordinator's results are in %s, and a merge of the run is marked incomplete",
		len(res.Shard.Lost), res.Shard.Count, strings.Join(parts, "; "), dir)
}
