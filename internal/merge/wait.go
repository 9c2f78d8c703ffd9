package merge

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/result"
)

// awaitPoll is how often Await looks for the shards' results.
const awaitPoll = 2 * time.Second

// Await waits until the shard directories args name (or hold) are complete: a
// result for every index of the run's shard count, or the coordinator's result
// naming the shards it lost. It returns them as Expand does. When timeout passes
// first it returns the shards present (the merge marks the others missing); when
// none is present, an error. A result.json appears whole (it is written last and
// atomically), so a shard's directory is read only once it is there.
func Await(ctx context.Context, args []string, skip string, timeout time.Duration, log io.Writer) ([]string, error) {
	if log == nil {
		log = io.Discard
	}
	deadline := time.Now().Add(timeout)
	lastSaid := time.Time{}
	for {
		dirs, missing := present(args, skip)
		if len(dirs) > 0 && len(missing) == 0 {
			return Expand(args, skip)
		}
		now := time.Now()
		if now.After(deadline) {
			if len(dirs) == 0 {
				return nil, fmt.Errorf("no shard's result appeared in %s within --wait %v", strings.Join(args, ", "), timeout)
			}
			fmt.Fprintf(log, "merging without %s: --wait %v has passed\n", strings.Join(missing, ", "), timeout)
			return Expand(args, skip)
		}
		if now.Sub(lastSaid) >= time.Minute {
			what := "any shard's result"
			if len(missing) > 0 {
				what = strings.Join(missing, ", ")
			}
			fmt.Fprintf(log, "waiting for %s (up to %v more)\n", what, deadline.Sub(now).Round(time.Second))
			lastSaid = now
		}
		t := time.NewTimer(awaitPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// present finds the shard results args hold now, and says which shards of their
// run are still missing ("shard 2/3").
func present(args []string, skip string) (dirs, missing []string) {
	skipAbs, _ := filepath.Abs(skip)
	var results []*result.Result
	add := func(d string) bool {
		r, err := result.ReadFile(filepath.Join(d, resultFile))
		if err != nil || r.Shard == nil {
			return false
		}
		dirs = append(dirs, d)
		results = append(results, r)
		return true
	}
	for _, a := range args {
		if add(a) {
			continue
		}
		ents, err := os.ReadDir(a)
		if err != nil {
			continue
		}
		for _, e := range ents {
			d := filepath.Join(a, e.Name())
			if abs, _ := filepath.Abs(d); e.IsDir() && abs != skipAbs {
				add(d)
			}
		}
	}
	if len(results) == 0 {
		return nil, nil
	}
	count := results[0].Shard.Count
	have := map[int]bool{}
	lost := map[int]bool{}
	for _, r := range results {
		have[r.Shard.Index] = true
		if r.Shard.Index == 0 {
			for _, l := range r.Shard.Lost {
				lost[l.Index] = true
			}
		}
	}
	for i := range count {
		if !have[i] && !lost[i] {
			missing = append(missing, fmt.Sprintf("shard %d/%d", i, count))
		}
	}
	return dirs, missing
}
