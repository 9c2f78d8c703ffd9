package merge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/result"
)

// resultFile and hlogFile are a run's result and latency log (the root package's
// ResultFile and HlogFile).
const (
	resultFile = "result.json"
	hlogFile   = "latency.hlog"
)

// hlogMerge is the shards' latency logs summed per operation and second of the
// run's shared timeline.
type hlogMerge struct {
	tags []string // in the order first seen
	secs []map[string]*hdr.PackedHistogram
}

// at is the sum of tag's intervals in second sec.
func (m *hlogMerge) at(sec int, tag string) *hdr.PackedHistogram {
	for len(m.secs) <= sec {
		m.secs = append(m.secs, nil)
	}
	if m.secs[sec] == nil {
		m.secs[sec] = map[string]*hdr.PackedHistogram{}
	}
	h := m.secs[sec][tag]
	if h == nil {
		if !contains(m.tags, tag) {
			m.tags = append(m.tags, tag)
		}
		h = loadgen.NewPacked()
		m.secs[sec][tag] = h
	}
	return h
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// mergeTimeline sums the shards' timelines per second of the shared clock (every
// shard's clock started at the barrier's start), and takes each second's
// latencies from the sum of the shards' interval histograms of that second. The
// shards' logs are read in parallel, one reader per processor.
func mergeTimeline(res *result.Result, shards []Shard) (*hlogMerge, error) {
	var rows []result.TimelineRow
	rowAt := func(k int) *result.TimelineRow {
		for len(rows) <= k {
			rows = append(rows, result.TimelineRow{TS: float64(len(rows))})
		}
		return &rows[k]
	}
	lasts := make([]int, len(shards))
	for i, s := range shards {
		for _, row := range s.Result.Timeline {
			k := int(math.Round(row.TS))
			lasts[i] = max(lasts[i], k)
			m := rowAt(k)
			m.Ops += row.Ops
			m.Errors += row.Errors
			m.FailedAttempts += row.FailedAttempts
			m.LagP99Ms = max(m.LagP99Ms, row.LagP99Ms)
			for op, n := range row.PerOp {
				if m.PerOp == nil {
					m.PerOp = map[string]int64{}
				}
				m.PerOp[op] += n
			}
			for c, n := range row.ErrorsByClass {
				if m.ErrorsByClass == nil {
					m.ErrorsByClass = map[string]int64{}
				}
				m.ErrorsByClass[c] += n
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(shards))
	parts := make([]*hlogMerge, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		parts[w] = &hlogMerge{}
		wg.Go(func() {
			for i := w; i < len(shards) && errs[w] == nil; i += workers {
				errs[w] = readLatencyLog(parts[w], shards[i], lasts[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	hm := parts[0]
	for _, p := range parts[1:] {
		hm.merge(p)
	}
	all := loadgen.NewHistogram()
	for k := range rows {
		all.Reset()
		if k < len(hm.secs) {
			for _, h := range hm.secs[k] {
				h.MergeInto(all)
			}
		}
		row := &rows[k]
		if all.TotalCount() > 0 {
			row.P50Ms = loadgen.Ms(all.ValueAtQuantile(50))
			row.P99Ms = loadgen.Ms(all.ValueAtQuantile(99))
			row.MaxMs = loadgen.Ms(all.Max())
		}
	}
	if rows == nil {
		rows = []result.TimelineRow{}
	}
	res.Timeline = rows
	return hm, nil
}

// readLatencyLog adds one shard's latency.hlog to hm, each interval at its second
// of the run's timeline; last is the shard's last timeline row.
func readLatencyLog(hm *hlogMerge, s Shard, last int) error {
	startMs := s.Result.StartedAt.UnixMilli()
	f, err := os.Open(filepath.Join(s.Dir, hlogFile))
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrMismatch, s.Dir, err)
	}
	defer f.Close()
	err = result.ReadHlog(f, func(iv result.Interval) error {
		k := int(math.Round(float64(iv.StartMs-startMs) / 1000))
		// What finished after the last whole second joins the last row, as the
		// shard's own timeline has it.
		k = max(min(k, last), 0)
		return iv.Into(hm.at(k, iv.Tag))
	})
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(s.Dir, hlogFile), err)
	}
	return nil
}

// merge adds o's sums to m's.
func (m *hlogMerge) merge(o *hlogMerge) {
	for _, tag := range o.tags {
		if !contains(m.tags, tag) {
			m.tags = append(m.tags, tag)
		}
	}
	for k, sec := range o.secs {
		for tag, h := range sec {
			m.at(k, tag).Merge(h)
		}
	}
}

// write writes the summed intervals as a latency.hlog whose clock starts at start.
// Stretches of seconds are encoded in parallel, then written in order.
func (m *hlogMerge) write(w io.Writer, start time.Time) error {
	if _, err := result.NewHlogWriter(w, start); err != nil { // the header
		return err
	}
	const stretch = 256 // seconds per piece of work
	parts := make([]bytes.Buffer, (len(m.secs)+stretch-1)/stretch)
	err := parallel(len(parts), func(p int) error {
		buf := &parts[p]
		hw, err := result.NewHlogWriter(buf, start)
		if err != nil {
			return err
		}
		buf.Reset() // the header is written once, above; the base time is the same
		startMs := start.UnixMilli()
		for k := p * stretch; k < min((p+1)*stretch, len(m.secs)); k++ {
			for _, tag := range m.tags {
				h := m.secs[k][tag]
				if h == nil {
					continue
				}
				from := startMs + int64(k)*1000
				if err := hw.WritePackedInterval(tag, from, from+1000, h); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range parts {
		if _, err := parts[i].WriteTo(w); err != nil {
			return err
		}
	}
	return nil
}
