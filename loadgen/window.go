package loadgen

import (
	"errors"
	"fmt"
	"math"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rehearse-dev/rehearse/result"
)

// RecorderOption tunes a Recorder.
type RecorderOption func(*Recorder)

// RetainAll keeps every interval of the run (see Retain).
const RetainAll = time.Duration(math.MaxInt64)

// Retain keeps each one-second interval's per-operation latency histograms for d of
// the run's timeline, so Window can answer for any span within it. They are kept
// sparse (a few hundred bytes per operation and second at a few thousand
// operations per second). 0, the default, keeps none.
func Retain(d time.Duration) RecorderOption { return func(r *Recorder) { r.retain = d } }

// ErrNotRetained is returned by Window for a span that starts before the oldest
// interval the recorder still holds.
var ErrNotRetained = errors.New("latency intervals not retained")

// interval is one flushed interval's successful latencies per operation (nil where
// an operation completed nothing).
type interval struct {
	start, end int64
	ops        []*hdr.PackedHistogram
}

// WindowLatency is the latency of the operations that completed in a span of the
// run, overall and per operation, from the intended start as everywhere else.
type WindowLatency struct {
	All   result.Latency
	Count int64
	PerOp map[string]result.Latency
}

// Window returns the latency of the successful operations that completed in the
// one-second intervals starting in [from, to) of the run's timeline (the last,
// partial interval after the run included, when it starts in the span). It merges
// the interval histograms the recorder retained (see Retain); a span starting
// before the oldest one retained is an error wrapping ErrNotRetained.
func (r *Recorder) Window(from, to time.Duration) (WindowLatency, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.retain <= 0 {
		return WindowLatency{}, fmt.Errorf("%w: the recorder keeps no intervals (see Retain)", ErrNotRetained)
	}
	if int64(from) < r.droppedUntil {
		return WindowLatency{}, fmt.Errorf("%w: the span starts at %v, the oldest interval kept at %v", ErrNotRetained, from, time.Duration(r.droppedUntil))
	}
	all := newHist()
	per := make([]*hdr.Histogram, len(r.ops))
	for _, iv := range r.intervals {
		// Interval starts fall on whole seconds of the run (the last may be late by
		// the flush's scheduling); half a second of slack keeps that boundary stable.
		if iv.start+int64(500*time.Millisecond) < int64(from) || iv.start >= int64(to) {
			continue
		}
		for i, p := range iv.ops {
			if p == nil {
				continue
			}
			if per[i] == nil {
				per[i] = newHist()
			}
			p.MergeInto(per[i])
			p.MergeInto(all)
		}
	}
	out := WindowLatency{All: latency(all), Count: all.TotalCount(), PerOp: map[string]result.Latency{}}
	for i, h := range per {
		if h != nil {
			out.PerOp[r.ops[i].name] = latency(h)
		}
	}
	return out, nil
}

// keepInterval retains the interval [start, end) whose per-operation histograms are
// in r.ops[i].interval, and drops what falls out of the retention.
func (r *Recorder) keepInterval(start, end int64) {
	iv := interval{start: start, end: end, ops: make([]*hdr.PackedHistogram, len(r.ops))}
	for i := range r.ops {
		h := r.ops[i].interval
		if h.TotalCount() == 0 {
			continue
		}
		var p *hdr.PackedHistogram
		if n := len(r.spare); n > 0 {
			p, r.spare = r.spare[n-1], r.spare[:n-1]
		} else {
			p = hdr.NewPacked(histLowest, histHighest, histSigFigs)
		}
		p.MergeFrom(h)
		iv.ops[i] = p
	}
	r.intervals = append(r.intervals, iv)
	if r.retain == RetainAll {
		return
	}
	horizon := end - int64(r.retain)
	drop := 0
	for drop < len(r.intervals) && r.intervals[drop].end <= horizon {
		old := r.intervals[drop]
		r.droppedUntil = old.end
		for _, p := range old.ops {
			if p != nil {
				p.Reset()
				r.spare = append(r.spare, p)
			}
		}
		drop++
	}
	if drop > 0 {
		r.intervals = append(r.intervals[:0], r.intervals[drop:]...)
	}
}
