package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse"
	"github.com/rehearse-dev/rehearse/internal/shard"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// shardFlags maps --shard and --barrier-timeout (or, without --shard, the
// environment an Indexed Job gives its pods) onto the run's options. A malformed
// or out-of-range shard is a usage error naming where it came from.
func shardFlags(cmd *cobra.Command, flag, barrier string, getenv func(string) string) ([]rehearse.Option, error) {
	var spec shard.Spec
	var sharded bool
	if cmd.Flags().Changed("shard") {
		s, err := shard.Parse(flag)
		if err != nil {
			return nil, usageError{fmt.Errorf("--shard %s: %w", flag, unwrapSpec(err))}
		}
		spec, sharded = s, true
	} else {
		s, ok, err := shard.FromEnv(getenv)
		if err != nil {
			return nil, usageError{fmt.Errorf("the environment's shard: %w", unwrapSpec(err))}
		}
		spec, sharded = s, ok
	}
	var opts []rehearse.Option
	if sharded {
		opts = append(opts, rehearse.WithShard(spec.Index, spec.Count))
	}
	if cmd.Flags().Changed("barrier-timeout") {
		if !sharded {
			return nil, usageError{errors.New("--barrier-timeout: only a sharded run waits at a barrier: add --shard INDEX/COUNT")}
		}
		d, err := scenarios.ParseDuration(barrier)
		if err != nil || d.D() <= 0 {
			return nil, usageError{fmt.Errorf("--barrier-timeout %s: must be a positive duration such as 2m or 90s", barrier)}
		}
		opts = append(opts, rehearse.WithBarrierTimeout(d.D()))
	}
	return opts, nil
}

// unwrapSpec drops the sentinel's own words from a shard error, which already
// say what is wrong.
func unwrapSpec(err error) error {
	msg := err.Error()
	prefix := shard.ErrSpec.Error() + ": "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return errors.New(msg[len(prefix):])
	}
	return err
}

// shardLine says which shard a result is, and that its verdict is on its share.
func shardLine(res *result.Result) string {
	sh := res.Shard
	if sh == nil {
		return ""
	}
	role := "load only"
	if sh.Index == 0 {
		role = "coordinator: cutover and integrity check"
	}
	line := fmt.Sprintf("shard %d/%d of run %s (%s); this verdict is on the shard's share alone: merge the shards' directories with `rehearse report merge` for the run's", sh.Index, sh.Count, sh.RunID, role)
	for _, l := range sh.Lost {
		line += fmt.Sprintf("\n  - shard %d lost: %s", l.Index, l.Reason)
	}
	if sh.Stopped != "" {
		line += "\n  - stopped early: " + sh.Stopped
	}
	return line
}
