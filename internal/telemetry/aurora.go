package telemetry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rehearse-dev/rehearse/migrate/aurora"
	"github.com/rehearse-dev/rehearse/result"
)

// cloudWatch is what the Aurora sampler reads: aurora.Monitor.
type cloudWatch interface {
	Instances(ctx context.Context) (writer string, ids []string, err error)
	Metrics(ctx context.Context, instances []string, start, end time.Time) ([]aurora.InstanceMetric, error)
	Events(ctx context.Context, instances []string, start, end time.Time) ([]aurora.Event, error)
	Period() time.Duration
}

// cloudWatchMetrics maps CloudWatch's RDS metrics onto result.json's, with the
// factor between their units.
var cloudWatchMetrics = map[string]struct {
	metric string
	scale  float64
}{
	"CPUUtilization":             {"cpu", 1},
	"ServerlessDatabaseCapacity": {"acu", 1},
	"ACUUtilization":             {"acu_utilization", 1},
	"DatabaseConnections":        {"connections", 1},
	"AuroraReplicaLag":           {"replica_lag_s", 0.001}, // CloudWatch reports milliseconds
	"ReadIOPS":                   {"read_iops", 1},
	"WriteIOPS":                  {"write_iops", 1},
	"FreeableMemory":             {"freeable_memory", 1},
}

// AuroraConfig configures an AuroraSampler.
type AuroraConfig struct {
	// Monitor reads CloudWatch and RDS events (aurora.Provider.Monitor).
	Monitor cloudWatch
	// Start is the run's start; Since the offset from it.
	Start time.Time
	Since func() time.Duration
	// Interval is how often the instances are listed (node events); metrics and
	// events are fetched every Fetch (at least the metrics' period).
	Interval, Fetch time.Duration
	// Metrics gets the latest datapoints as gauges (nil: none).
	Metrics *Metrics
}

// AuroraSampler follows an Aurora cluster during a run: its instances as they come
// and go, their CloudWatch metrics and RDS's events, fetched during the run and
// once more after it. A permission the credentials lack stops only what needs it:
// database.missing says what is absent and why.
type AuroraSampler struct {
	cfg AuroraConfig
	rec *dbRecorder

	mu         sync.Mutex
	seen       []string // every instance listed during the run, in order
	rdsEvents  []result.DBEvent
	gotMetrics bool
}

// NewAuroraSampler returns a sampler; Run starts it.
func NewAuroraSampler(cfg AuroraConfig) *AuroraSampler {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	cfg.Fetch = max(cfg.Fetch, cfg.Monitor.Period(), cfg.Interval)
	return &AuroraSampler{cfg: cfg, rec: newDBRecorder(cfg.Metrics)}
}

// Run lists the instances every interval and fetches metrics and events every
// fetch interval, until ctx ends.
func (a *AuroraSampler) Run(ctx context.Context) {
	first := true
	var fetched time.Duration
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.list(ctx, first)
		first = false
		if now := a.cfg.Since(); fetched == 0 || now-fetched >= a.cfg.Fetch {
			fetched = max(now, 1)
			a.fetch(ctx, time.Now())
		}
		t.Reset(a.cfg.Interval)
	}
}

// list records the instances now: node events and the instances to fetch.
func (a *AuroraSampler) list(ctx context.Context, first bool) {
	at := a.cfg.Since().Seconds()
	writer, ids, err := a.cfg.Monitor.Instances(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.rec.note(fmt.Sprintf("the instance list was unavailable at %.0f s: %v", at, err))
		}
		return
	}
	roles := map[string]string{}
	a.mu.Lock()
	for _, id := range ids {
		roles[id] = role(id == writer)
		if !slices.Contains(a.seen, id) {
			a.seen = append(a.seen, id)
		}
	}
	a.mu.Unlock()
	a.rec.nodes(at, roles, first)
}

// fetch replaces the series and RDS events with what CloudWatch and RDS hold for
// the run up to end.
func (a *AuroraSampler) fetch(ctx context.Context, end time.Time) {
	a.mu.Lock()
	ids := slices.Clone(a.seen)
	a.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	start := a.cfg.Start
	ms, err := a.cfg.Monitor.Metrics(ctx, ids, start, end)
	switch {
	case err != nil && ctx.Err() != nil:
		return
	case err != nil:
		a.noteErr(err, "cloudwatch:GetMetricData", "no CloudWatch series ("+strings.Join(aurora.MetricNames, ", ")+")")
	default:
		a.record(ms)
	}
	evs, err := a.cfg.Monitor.Events(ctx, ids, start, end)
	switch {
	case err != nil && ctx.Err() != nil:
		return
	case err != nil:
		a.noteErr(err, "rds:DescribeEvents", "no RDS events (failover started and completed, instances created and deleted) on the timeline")
	default:
		out := make([]result.DBEvent, 0, len(evs))
		for _, e := range evs {
			out = append(out, result.DBEvent{TS: round3(max(0, e.Time.Sub(start).Seconds())), Node: e.Source, Event: e.Message})
		}
		a.mu.Lock()
		a.rdsEvents = out
		a.mu.Unlock()
	}
}

// noteErr names a permission the credentials lack, and what is absent for it.
func (a *AuroraSampler) noteErr(err error, action, absent string) {
	var pe *aurora.PermissionError
	if errors.As(err, &pe) {
		a.rec.note(fmt.Sprintf("%s was denied: %s; the run went on without it (add %s to the IAM policy)", pe.Action, absent, pe.Action))
		return
	}
	a.rec.note(fmt.Sprintf("%s failed: %s: %v", action, absent, err))
}

// record sets each metric's series from CloudWatch's datapoints and the gauges to
// the latest of them.
func (a *AuroraSampler) record(ms []aurora.InstanceMetric) {
	for _, m := range ms {
		cm, ok := cloudWatchMetrics[m.Metric]
		if !ok || len(m.Values) == 0 {
			continue
		}
		s := result.Series{Node: m.Instance, Metric: cm.metric, Unit: unitOf(cm.metric), Emulated: m.Emulated, Points: make([][2]float64, 0, len(m.Values))}
		half := a.cfg.Monitor.Period().Seconds() / 2
		last := 0.0
		for i, v := range m.Values {
			if i >= len(m.Times) {
				break
			}
			// A datapoint is its period's average, stamped with the period's start.
			// The period the run started in counts when most of it was the run's,
			// and then at the run's start.
			t := m.Times[i].Sub(a.cfg.Start).Seconds()
			if t+half < 0 {
				continue
			}
			s.Points = append(s.Points, [2]float64{round3(max(0, t)), roundValue(v * cm.scale)})
			last = v * cm.scale
		}
		if len(s.Points) == 0 {
			continue
		}
		a.rec.replace(s)
		a.mu.Lock()
		a.gotMetrics = true
		a.mu.Unlock()
		if a.cfg.Metrics != nil {
			a.cfg.Metrics.Database(cm.metric, m.Instance, a.rec.role(m.Instance), last)
		}
	}
}

// Finish fetches once more, after the run (CloudWatch publishes a period's
// datapoint after it ends), and returns the database section up to until seconds
// of the run (everything when until is negative). Call it after Run has returned.
func (a *AuroraSampler) Finish(ctx context.Context, until float64) *result.Database {
	end := time.Now()
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	a.fetch(fctx, end.Add(a.cfg.Monitor.Period()))
	db := a.rec.database(until)
	a.mu.Lock()
	rds := slices.DeleteFunc(slices.Clone(a.rdsEvents), func(e result.DBEvent) bool { return until >= 0 && e.TS > until })
	db.Events = mergeEvents(db.Events, rds)
	got := a.gotMetrics
	a.mu.Unlock()
	if !got && !hasDenied(db.Missing) {
		db.Missing = append(db.Missing, fmt.Sprintf("CloudWatch had no datapoints for the instances yet (it publishes RDS metrics every %v, a few minutes late): no CloudWatch series", a.cfg.Monitor.Period()))
	}
	return db
}

// hasDenied reports whether GetMetricData was denied (missing says so already).
func hasDenied(missing []string) bool {
	for _, m := range missing {
		if strings.HasPrefix(m, "cloudwatch:GetMetricData was denied") {
			return true
		}
	}
	return false
}

// mergeEvents merges two time-ordered event lists.
func mergeEvents(a, b []result.DBEvent) []result.DBEvent {
	out := append(slices.Clone(a), b...)
	slices.SortStableFunc(out, func(x, y result.DBEvent) int {
		switch {
		case x.TS < y.TS:
			return -1
		case x.TS > y.TS:
			return 1
		}
		return 0
	})
	return out
}
