package telemetry

import (
	"bytes"
	"io"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rehearse-dev/rehearse/loadgen"
)

// summarizer is the load generator's recorder, as the load metrics read it.
type summarizer interface {
	Summary(end time.Duration) loadgen.Summary
}

// durationBuckets are the upper bounds of rehearse_operation_duration_seconds: from
// a millisecond (a cached read) to half a minute (a stall across a failover).
var durationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

var (
	descOps = prometheus.NewDesc("rehearse_operations_total",
		"Operations finished (after the client's retries), by operation and the phase of their intended start.", []string{"op", "phase"}, nil)
	descOpsFailed = prometheus.NewDesc("rehearse_operations_failed_total",
		"Operations that failed after the client's retries (what users saw), by operation and phase.", []string{"op", "phase"}, nil)
	descOpAttemptsFailed = prometheus.NewDesc("rehearse_operation_failed_attempts_total",
		"Failed attempts, every retry included (what the database saw), by operation and phase.", []string{"op", "phase"}, nil)
	descFailedAttempts = prometheus.NewDesc("rehearse_failed_attempts_total",
		"Failed attempts, every retry included, by error class, SQLSTATE and phase.", []string{"class", "sqlstate", "phase"}, nil)
	descAttempts  = prometheus.NewDesc("rehearse_attempts_total", "Attempts, every retry included.", nil, nil)
	descRetries   = prometheus.NewDesc("rehearse_retries_total", "Attempts after an operation's first.", nil, nil)
	descAmbiguous = prometheus.NewDesc("rehearse_ambiguous_total",
		"Operations whose connection broke during COMMIT: their outcome is resolved after the run.", nil, nil)
	descDuration = prometheus.NewDesc("rehearse_operation_duration_seconds",
		"Latency of successful operations from their intended start (corrects coordinated omission), by operation.", []string{"op"}, nil)
	descLagP99 = prometheus.NewDesc("rehearse_schedule_lag_p99_seconds",
		"99th percentile of how late workers picked arrivals up, over the run so far.", nil, nil)
	descLagMax = prometheus.NewDesc("rehearse_schedule_lag_max_seconds",
		"The latest a worker picked an arrival up, over the run so far.", nil, nil)
	descBusy = prometheus.NewDesc("rehearse_sessions_busy",
		"Sessions with an action in flight or waiting for a worker, at the last second.", nil, nil)
	descLastOps = prometheus.NewDesc("rehearse_last_second_operations",
		"Operations finished in the last whole second of the run.", nil, nil)
	descLastLatency = prometheus.NewDesc("rehearse_last_second_latency_seconds",
		"Latency of the last whole second's successful operations: its p50, p99 and max.", []string{"stat"}, nil)
	descUnavailable = prometheus.NewDesc("rehearse_unavailable_max_seconds",
		"The longest span so far in which operations of a kind (read, write) were attempted and none succeeded.", []string{"kind"}, nil)
	descElapsed = prometheus.NewDesc("rehearse_elapsed_seconds", "Time since the load started.", nil, nil)
)

// loadCollector exports the load's numbers from the recorder's summary, computed
// when scraped and at most once per flush of the recorder: the recorder changes
// only then.
type loadCollector struct {
	flushes atomic.Uint64
	busy    atomic.Int64
	hasBusy atomic.Bool

	// sumMu guards the summary cache; it is held while the recorder is asked, so
	// the recorder's interval sink must never take it.
	sumMu    sync.Mutex
	rec      summarizer
	since    func() time.Duration
	sum      loadgen.Summary
	sumAt    uint64
	sumValid bool
	frozen   bool

	// histMu guards the histograms; the interval sink takes it with the recorder's
	// lock held, so nothing holding it may call the recorder.
	histMu sync.Mutex
	hists  map[string]*opHist
	order  []string
}

// opHist is one operation's successful latencies over the run, merged from the
// recorder's interval histograms, and its buckets as last computed.
type opHist struct {
	h       *hdr.Histogram
	changed bool
	buckets map[float64]uint64
	count   uint64
	sum     float64
}

func newLoadCollector() *loadCollector { return &loadCollector{hists: map[string]*opHist{}} }

// attach points the collector at a run's recorder and clock.
func (c *loadCollector) attach(rec summarizer, since func() time.Duration) {
	c.sumMu.Lock()
	defer c.sumMu.Unlock()
	c.rec, c.since, c.sumValid, c.frozen = rec, since, false, false
}

// flushed notes that the recorder closed another interval.
func (c *loadCollector) flushed() { c.flushes.Add(1) }

// freeze keeps the final summary: the load has ended.
func (c *loadCollector) freeze(end time.Duration) {
	c.sumMu.Lock()
	defer c.sumMu.Unlock()
	if c.rec == nil {
		return
	}
	c.sum, c.sumValid, c.frozen = c.rec.Summary(end), true, true
}

// interval merges one operation's interval histogram (the recorder's sink; the
// recorder reuses h afterwards).
func (c *loadCollector) interval(op string, h *hdr.Histogram) {
	c.histMu.Lock()
	defer c.histMu.Unlock()
	oh := c.hists[op]
	if oh == nil {
		oh = &opHist{h: hdr.New(h.LowestTrackableValue(), h.HighestTrackableValue(), int(h.SignificantFigures()))}
		c.hists[op] = oh
		c.order = append(c.order, op)
	}
	oh.h.Merge(h)
	oh.changed = true
}

// summary returns the recorder's summary, computed again only after a flush.
func (c *loadCollector) summary() (loadgen.Summary, time.Duration, bool) {
	c.sumMu.Lock()
	defer c.sumMu.Unlock()
	if c.rec == nil {
		return loadgen.Summary{}, 0, false
	}
	now := c.since()
	if c.frozen {
		return c.sum, now, true
	}
	if n := c.flushes.Load(); !c.sumValid || n != c.sumAt {
		c.sum, c.sumAt, c.sumValid = c.rec.Summary(now), n, true
	}
	return c.sum, now, true
}

// Describe implements prometheus.Collector.
func (c *loadCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOps, descOpsFailed, descOpAttemptsFailed, descFailedAttempts, descAttempts, descRetries,
		descAmbiguous, descDuration, descLagP99, descLagMax, descBusy, descLastOps, descLastLatency, descUnavailable, descElapsed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *loadCollector) Collect(ch chan<- prometheus.Metric) {
	if c.hasBusy.Load() {
		ch <- prometheus.MustNewConstMetric(descBusy, prometheus.GaugeValue, float64(c.busy.Load()))
	}
	c.collectHists(ch)
	sum, now, ok := c.summary()
	if !ok {
		return
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, o := range sum.Operations {
		for ph, p := range o.Phases {
			counter(descOps, float64(p.Count), o.Name, ph)
			counter(descOpsFailed, float64(p.Errors), o.Name, ph)
			counter(descOpAttemptsFailed, float64(p.FailedAttempts), o.Name, ph)
		}
	}
	for _, e := range sum.Errors {
		for ph, n := range e.Phases {
			counter(descFailedAttempts, float64(n), e.Class, e.SQLState, ph)
		}
	}
	counter(descAttempts, float64(sum.Totals.Attempts))
	counter(descRetries, float64(sum.Totals.Retries))
	counter(descAmbiguous, float64(sum.Totals.Ambiguous))
	gauge(descLagP99, sum.LagP99Ms/1e3)
	gauge(descLagMax, sum.LagMaxMs/1e3)
	gauge(descUnavailable, sum.Availability.WriteUnavailableMaxMs/1e3, "write")
	gauge(descUnavailable, sum.Availability.ReadUnavailableMaxMs/1e3, "read")
	gauge(descElapsed, now.Seconds())
	if n := len(sum.Timeline); n > 0 {
		last := sum.Timeline[n-1]
		gauge(descLastOps, float64(last.Ops))
		gauge(descLastLatency, last.P50Ms/1e3, "p50")
		gauge(descLastLatency, last.P99Ms/1e3, "p99")
		gauge(descLastLatency, last.MaxMs/1e3, "max")
	}
}

// collectHists exports each operation's latency histogram, computing its buckets
// again only when intervals were merged since the last scrape.
func (c *loadCollector) collectHists(ch chan<- prometheus.Metric) {
	c.histMu.Lock()
	defer c.histMu.Unlock()
	for _, op := range c.order {
		oh := c.hists[op]
		if oh.changed || oh.buckets == nil {
			oh.buckets, oh.count, oh.sum = promBuckets(oh.h)
			oh.changed = false
		}
		ch <- prometheus.MustNewConstHistogram(descDuration, oh.count, oh.sum, oh.buckets, op)
	}
}

// promBuckets turns a histogram of nanoseconds into Prometheus's cumulative
// buckets in seconds. Each HDR bucket counts at its highest equivalent value, so a
// value lands in a bucket only if it is surely at or below the bound (HDR keeps
// three significant digits).
func promBuckets(h *hdr.Histogram) (map[float64]uint64, uint64, float64) {
	counts := make([]uint64, len(durationBuckets))
	var total uint64
	var sum float64
	for _, bar := range h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		v := float64(bar.To) / 1e9
		sum += float64(bar.Count) * float64(bar.From+bar.To) / 2 / 1e9
		total += uint64(bar.Count)
		for i, b := range durationBuckets {
			if v <= b {
				counts[i] += uint64(bar.Count)
				break
			}
		}
	}
	out := make(map[float64]uint64, len(durationBuckets))
	var cum uint64
	for i, b := range durationBuckets {
		cum += counts[i]
		out[b] = cum
	}
	return out, total, sum
}

// busyRE finds the busy sessions in the load generator's progress line
// ("... sessions 2000 (busy 17)").
var busyRE = regexp.MustCompile(`\(busy (\d+)\)`)

// progressWriter passes the load generator's progress lines on and reads the busy
// sessions from them: the one number the recorder does not hold.
type progressWriter struct {
	c    *loadCollector
	next io.Writer
	buf  []byte
}

func (w *progressWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if m := busyRE.FindSubmatch(w.buf[:i]); m != nil {
			if n, err := strconv.ParseInt(string(m[1]), 10, 64); err == nil {
				w.c.busy.Store(n)
				w.c.hasBusy.Store(true)
			}
		}
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 4096 {
		w.buf = w.buf[:0] // not a progress line: nothing to read from it
	}
	if w.next == nil {
		return len(p), nil
	}
	return w.next.Write(p)
}
