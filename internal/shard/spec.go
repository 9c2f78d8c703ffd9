// Package shard spreads one rehearsal over several processes or pods: which share of
// the load a shard runs, and how the shards of a run find each other and agree on
// what happened, through nothing but the target database (a small rehearse_run
// schema: registration, a start barrier with one start time, the coordinator's
// phase marks and stop time, heartbeats, and the acknowledged-write records the
// coordinator's integrity check needs). See ARCHITECTURE.md, "Sharded runs".
//
// Shard 0 is the coordinator: it sets the workload up, runs the cutover and the
// integrity check. The others run load only.
package shard

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Environment variables a shard reads its place from when --shard is not given: an
// Indexed Job sets JOB_COMPLETION_INDEX on every pod; REHEARSE_SHARDS is the
// Job's completions, set in its pod template.
const (
	EnvIndex  = "JOB_COMPLETION_INDEX"
	EnvShards = "REHEARSE_SHARDS"
)

// ErrSpec is wrapped by every problem with a shard specification (exit 2).
var ErrSpec = errors.New("invalid shard")

// Spec is one shard of a run spread over Count processes: Index is 0 … Count-1.
type Spec struct {
	Index, Count int
}

// Coordinator reports whether the shard is the run's coordinator (index 0).
func (s Spec) Coordinator() bool { return s.Index == 0 }

// String is the spec as --shard takes it: "i/N".
func (s Spec) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Parse reads "i/N": a shard index from 0 to N-1 and a shard count N ≥ 1.
func Parse(v string) (Spec, error) {
	i, n, ok := strings.Cut(strings.TrimSpace(v), "/")
	if !ok {
		return Spec{}, fmt.Errorf("%w: %q: write it as INDEX/COUNT, e.g. 0/3 (indexes run from 0 to COUNT-1)", ErrSpec, v)
	}
	idx, err1 := strconv.Atoi(i)
	cnt, err2 := strconv.Atoi(n)
	if err1 != nil || err2 != nil {
		return Spec{}, fmt.Errorf("%w: %q: INDEX and COUNT must be whole numbers, e.g. 0/3", ErrSpec, v)
	}
	return New(idx, cnt)
}

// New checks a shard's index against its count.
func New(index, count int) (Spec, error) {
	switch {
	case count < 1:
		return Spec{}, fmt.Errorf("%w: %d/%d: the shard count must be at least 1", ErrSpec, index, count)
	case index < 0 || index >= count:
		return Spec{}, fmt.Errorf("%w: %d/%d: the index must be from 0 to %d", ErrSpec, index, count, count-1)
	}
	return Spec{Index: index, Count: count}, nil
}

// FromEnv reads the spec an Indexed Job gives its pods: JOB_COMPLETION_INDEX and
// REHEARSE_SHARDS. ok is false when neither is set; one without the other is an
// error, as is a value that is not a whole number or an index out of range.
func FromEnv(getenv func(string) string) (spec Spec, ok bool, err error) {
	i, n := strings.TrimSpace(getenv(EnvIndex)), strings.TrimSpace(getenv(EnvShards))
	switch {
	case i == "" && n == "":
		return Spec{}, false, nil
	case n == "":
		return Spec{}, false, fmt.Errorf("%w: %s=%s is set but %s is not: set it to the number of shards (the Job's completions)", ErrSpec, EnvIndex, i, EnvShards)
	case i == "":
		return Spec{}, false, fmt.Errorf("%w: %s=%s is set but %s is not: an Indexed Job sets it on each pod; elsewhere use --shard INDEX/COUNT", ErrSpec, EnvShards, n, EnvIndex)
	}
	idx, err1 := strconv.Atoi(i)
	cnt, err2 := strconv.Atoi(n)
	if err1 != nil || err2 != nil {
		return Spec{}, false, fmt.Errorf("%w: %s=%q, %s=%q: both must be whole numbers", ErrSpec, EnvIndex, i, EnvShards, n)
	}
	s, err := New(idx, cnt)
	return s, err == nil, err
}

// Share is this shard's part of total things (sessions, connections) dealt out in
// turn: the first total%Count shards take one more. offset is how many the shards
// before it take, so shard i's things are offset … offset+n-1 of the run's.
func (s Spec) Share(total int) (n, offset int) {
	base, extra := total/s.Count, total%s.Count
	n = base
	if s.Index < extra {
		n++
	}
	offset = s.Index*base + min(s.Index, extra)
	return n, offset
}

// Seed is this shard's seed for the run's seed: its own stream of random choices,
// and the same seed for a run of one shard.
func (s Spec) Seed(run uint64) uint64 { return run + uint64(s.Index) }
