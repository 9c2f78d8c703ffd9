package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// ClassSet is a set of error classes.
type ClassSet uint16

// Has reports whether c is in the set.
func (s ClassSet) Has(c Class) bool { return s&(1<<c) != 0 }

// ParseClasses reads class names (as results spell them, plus "connection" for both
// connection classes) into a set.
func ParseClasses(names []string) (ClassSet, error) {
	var s ClassSet
	for _, n := range names {
		if n == "connection" {
			s |= 1<<ConnectionRefused | 1<<ConnectionReset
			continue
		}
		found := false
		for c := Class(1); c < numClasses; c++ {
			if c.String() == n {
				s |= 1 << c
				found = true
			}
		}
		if !found {
			var all []string
			for c := Class(1); c < numClasses; c++ {
				all = append(all, c.String())
			}
			return 0, fmt.Errorf("unknown error class %q; the classes are connection, %s", n, strings.Join(all, ", "))
		}
	}
	return s, nil
}

// Retry is an application's retry policy: an operation that failed with a class in
// On is tried again after a backoff, up to MaxAttempts tries in all. The backoff
// doubles per attempt, up to MaxBackoff, plus up to 20% jitter. An operation whose COMMIT
// outcome is unknown is never retried: the workload resolves it by its idempotency
// key.
type Retry struct {
	MaxAttempts int
	Backoff     time.Duration
	MaxBackoff  time.Duration
	On          ClassSet
}

// again reports whether an operation that failed with class after tries attempts is
// tried again.
func (p Retry) again(class Class, tries int) bool {
	return tries < p.MaxAttempts && p.On.Has(class)
}

// wait sleeps before attempt tries+1: Backoff × 2^(tries-1), capped at MaxBackoff,
// plus up to a fifth more at random, so that clients that failed together do not
// retry together while the policy still retries for at least the sum of its
// backoffs (a policy written to span an outage does). It returns false when ctx
// ends first.
func (p Retry) wait(ctx context.Context, tries int, r *rand.Rand) bool {
	d := p.Backoff
	for i := 1; i < tries && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	if d <= 0 {
		return ctx.Err() == nil
	}
	d += time.Duration(r.Int64N(int64(d/5) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
