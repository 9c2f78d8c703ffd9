package telemetry

import (
	"bytes"
	"io"
	"math"
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

// Refreshing the load's snapshot: at most this share of wall time is spent on it
// (the recorder's summary grows with the run: a few milliseconds after a minute,
// tens after an hour), and not at all once nobody has scraped for idleAfter.
const (
	refreshDuty time.Duration = 400
	idleAfter                 = 2 * time.Minute
)

// loadCollector exports the load's numbers from a snapshot of the recorder's
// summary and of the latency histograms. A goroutine refreshes the snapshot after
// the recorder's flushes, within refreshDuty and only while someone scrapes, so a
// scrape only reads it: its cost does not grow with the run.
type loadCollector struct {
	busy    atomic.Int64
	hasBusy atomic.Bool
	wake    chan struct{}
	duty    time.Duration // refreshDuty (tests lower it)

	// mu guards the fields below; it is never held while the recorder is asked.
	mu         sync.Mutex
	rec        summarizer
	since      func() time.Duration
	snap       *loadSnapshot
	lastScrape time.Time
	next       time.Time // the earliest next refresh
	frozen     bool
	stop       chan struct{}

	// refreshMu serialises refreshes.
	refreshMu sync.Mutex

	// histMu guards the histograms; the interval sink takes it with the recorder's
	// lock held, so nothing holding it may call the recorder.
	histMu sync.Mutex
	hists  map[string]*opHist
	order  []string
}

// loadSnapshot is what a scrape exports.
type loadSnapshot struct {
	sum   loadgen.Summary
	hists []histSnapshot
}

// histSnapshot is one operation's histogram as Prometheus buckets.
type histSnapshot struct {
	op      string
	buckets map[float64]uint64
	count   uint64
	sum     float64
}

// opHist is one operation's successful latencies over the run, merged from the
// recorder's interval histograms, and its buckets as last computed.
type opHist struct {
	h       *hdr.Histogram
	changed bool
	last    histSnapshot
}

func newLoadCollector() *loadCollector {
	return &loadCollector{hists: map[string]*opHist{}, wake: make(chan struct{}, 1), duty: refreshDuty}
}

// attach points the collector at a run's recorder and clock and starts
// refreshing its snapshot.
func (c *loadCollector) attach(rec summarizer, since func() time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop != nil {
		close(c.stop)
	}
	c.rec, c.since, c.snap, c.frozen, c.next = rec, since, nil, false, time.Time{}
	stop := make(chan struct{})
	c.stop = stop
	go c.refresher(stop)
}

// refresher refreshes the snapshot after each flush, when it may: a flush that
// comes too soon is taken up when the time has come.
func (c *loadCollector) refresher(stop <-chan struct{}) {
	var (
		timer *time.Timer
		later <-chan time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-stop:
			return
		case <-c.wake:
		case <-later:
			later = nil
		}
		c.mu.Lock()
		active := !c.frozen && !c.lastScrape.IsZero() && time.Since(c.lastScrape) < idleAfter
		wait := time.Until(c.next)
		c.mu.Unlock()
		switch {
		case !active:
		case wait > 0:
			if later == nil {
				timer = time.NewTimer(wait)
				later = timer.C
			}
		default:
			c.refresh(-1)
		}
	}
}

// flushed notes that the recorder closed another interval.
func (c *loadCollector) flushed() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// close stops refreshing.
func (c *loadCollector) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop != nil {
		close(c.stop)
		c.stop = nil
	}
}

// freeze keeps the final numbers, over the run's length end: the load has ended.
func (c *loadCollector) freeze(end time.Duration) {
	c.close()
	c.refresh(end)
	c.mu.Lock()
	c.frozen = true
	c.mu.Unlock()
}

// refresh asks the recorder for its summary (over the run so far, or up to end
// when end is not negative), computes the histograms' buckets and publishes the
// snapshot.
func (c *loadCollector) refresh(end time.Duration) *loadSnapshot {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	c.mu.Lock()
	rec, since := c.rec, c.since
	c.mu.Unlock()
	if rec == nil {
		return nil
	}
	began := time.Now()
	if end < 0 {
		end = since()
	}
	snap := &loadSnapshot{sum: rec.Summary(end)}
	c.histMu.Lock()
	for _, op := range c.order {
		oh := c.hists[op]
		if oh.changed || oh.last.buckets == nil {
			b, n, sum := promBuckets(oh.h)
			oh.last, oh.changed = histSnapshot{op: op, buckets: b, count: n, sum: sum}, false
		}
		snap.hists = append(snap.hists, oh.last)
	}
	c.histMu.Unlock()
	done := time.Now()
	c.mu.Lock()
	c.snap, c.next = snap, done.Add(done.Sub(began)*c.duty)
	c.mu.Unlock()
	return snap
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

// snapshot returns the snapshot to export, taking the first one at once.
func (c *loadCollector) snapshot() (*loadSnapshot, time.Duration) {
	c.mu.Lock()
	c.lastScrape = time.Now()
	snap, rec, since := c.snap, c.rec, c.since
	c.mu.Unlock()
	if rec == nil {
		return nil, 0
	}
	if snap == nil {
		snap = c.refresh(-1)
	}
	return snap, since()
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
	snap, now := c.snapshot()
	if snap == nil {
		return
	}
	for _, h := range snap.hists {
		ch <- prometheus.MustNewConstHistogram(descDuration, h.count, h.sum, h.buckets, h.op)
	}
	sum := snap.sum
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

// promBuckets turns a histogram of nanoseconds into Prometheus's cumulative
// buckets in seconds. Each HDR bucket counts at its highest equivalent value, so a
// value lands in a bucket only if it is surely at or below the bound (HDR keeps
// three significant digits). It walks a copy of the counts once (Distribution
// would allocate a bar per index).
func promBuckets(h *hdr.Histogram) (map[float64]uint64, uint64, float64) {
	s := h.Export()
	g := geometryOf(s)
	counts := make([]uint64, len(durationBuckets))
	var total uint64
	var sum float64
	for i, c := range s.Counts {
		if c <= 0 {
			continue
		}
		lo, hi := g.bounds(i)
		sum += float64(c) * float64(lo+hi) / 2 / 1e9
		total += uint64(c)
		v := float64(hi) / 1e9
		for j, b := range durationBuckets {
			if v <= b {
				counts[j] += uint64(c)
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

// hdrGeometry is how hdrhistogram-go lays its counts out (HdrHistogram's layout):
// buckets of half-sub-buckets of powers of two, from the lowest discernible value.
type hdrGeometry struct {
	unitMag, halfMag int32
}

func geometryOf(s *hdr.Snapshot) hdrGeometry {
	sig := min(max(int(s.SignificantFigures), 1), 5)
	largest := 2 * math.Pow10(sig)
	half := max(int32(math.Ceil(math.Log2(largest))), 1) - 1
	unit := max(int32(math.Floor(math.Log2(float64(max(s.LowestTrackableValue, 1))))), 0)
	return hdrGeometry{unitMag: unit, halfMag: half}
}

// bounds are the lowest and highest values counts[i] stands for.
func (g hdrGeometry) bounds(i int) (lo, hi int64) {
	halfCount := int32(1) << g.halfMag
	idx := int32(i)
	bucket := (idx >> g.halfMag) - 1
	sub := (idx & (halfCount - 1)) + halfCount
	if bucket < 0 {
		sub -= halfCount
		bucket = 0
	}
	shift := uint(bucket + g.unitMag)
	lo = int64(sub) << shift
	return lo, lo + int64(1)<<shift - 1
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
