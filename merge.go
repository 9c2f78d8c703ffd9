package rehearse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/internal/merge"
	"github.com/rehearse-dev/rehearse/report"
	"github.com/rehearse-dev/rehearse/result"
)

// Merge merges the results of a sharded run (rehearse run --shard) into one, in the
// rehearse/result/v1 schema with shards set, and writes it to out as a run writes
// its own: result.json, report.md, report.html and latency.hlog. Each of dirs is a
// shard's output directory, or a directory holding them. Percentiles come from the
// sum of the shards' histograms, the timeline is summed per second on the run's
// shared clock, unavailability windows are computed from the sum of the shards'
// per-millisecond series, the cutover and integrity check are the coordinator's,
// and the SLOs are evaluated on the merged numbers. A result missing some shard is
// marked incomplete. The error wraps ErrInvalidInput when the directories are not
// the shards of one run (another run, scenario or shard count) or out already
// holds a result, and ErrSLOBreached when the merged result breaches an SLO.
func Merge(ctx context.Context, dirs []string, out string, opts ...MergeOption) (*result.Result, error) {
	var o mergeOptions
	for _, f := range opts {
		f(&o)
	}
	if out == "" {
		return nil, fmt.Errorf("%w: the merged result needs an output directory (--out)", ErrInvalidInput)
	}
	var expanded []string
	var err error
	if o.wait > 0 {
		expanded, err = merge.Await(ctx, dirs, out, o.wait, o.log)
	} else {
		expanded, err = merge.Expand(dirs, out)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
		return nil, mergeErr(err)
	}
	shards, err := merge.Read(expanded)
	if err != nil {
		return nil, mergeErr(err)
	}
	m, err := merge.Merge(shards)
	if err != nil {
		return nil, mergeErr(err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInterrupted, err)
	}
	if _, err := prepareOut(out); err != nil {
		return nil, err
	}
	res := m.Result
	if err := result.WriteFileAtomic(filepath.Join(out, HlogFile), func(w io.Writer) error { return m.Write(w) }); err != nil {
		return res, fmt.Errorf("writing %s: %w", HlogFile, err)
	}
	if err := writeOutputs(out, res, report.Markdown, report.HTML, result.Encode); err != nil {
		return res, err
	}
	if !res.SLO.Passed {
		return res, fmt.Errorf("%w: %s", ErrSLOBreached, strings.Join(report.Reasons(res.SLO), "; "))
	}
	return res, nil
}

// MergeOption tunes Merge.
type MergeOption func(*mergeOptions)

type mergeOptions struct {
	wait time.Duration
	log  io.Writer
}

// MergeWait makes Merge wait up to d for the shards' results to appear (every
// shard's, or the coordinator's naming the shards it lost), as a merge Job
// started alongside the shards must; past d it merges those present, marked
// incomplete.
func MergeWait(d time.Duration) MergeOption { return func(o *mergeOptions) { o.wait = d } }

// MergeLog sends what the merge waits for to w.
func MergeLog(w io.Writer) MergeOption { return func(o *mergeOptions) { o.log = w } }

// mergeErr makes the merge's refusals invalid input (exit 2).
func mergeErr(err error) error {
	if errors.Is(err, merge.ErrMismatch) {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return err
}
