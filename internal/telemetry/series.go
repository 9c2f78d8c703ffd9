package telemetry

import (
	"cmp"
	"math"
	"slices"
	"sync"

	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// Node roles as the database events and gauges name them.
const (
	RoleWriter = "writer"
	RoleReader = "reader"
)

// Node events, in result.json's database.events.
const (
	EventPresent     = "present at the start"
	EventAppeared    = "appeared"
	EventBecameWrite = "became writer"
	EventBecameRead  = "became reader"
	EventGone        = "disappeared"
)

// dbRecorder collects a run's database series, events and what is missing, and
// mirrors each point onto the live gauges.
type dbRecorder struct {
	mu      sync.Mutex
	series  map[[2]string]*result.Series // (node, metric)
	events  []result.DBEvent
	missing []string
	noted   map[string]bool
	metrics *Metrics

	roles map[string]string // node -> role at the last listing
}

func newDBRecorder(m *Metrics) *dbRecorder {
	return &dbRecorder{series: map[[2]string]*result.Series{}, noted: map[string]bool{}, metrics: m, roles: map[string]string{}}
}

// point appends one sample of metric on node at t seconds of the run.
func (r *dbRecorder) point(node, role, metric string, t, v float64, emulated bool) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	r.mu.Lock()
	s := r.series[[2]string{node, metric}]
	if s == nil {
		s = &result.Series{Node: node, Metric: metric, Unit: unitOf(metric), Points: [][2]float64{}, Emulated: emulated}
		r.series[[2]string{node, metric}] = s
	}
	s.Points = append(s.Points, [2]float64{round3(t), roundValue(v)})
	r.mu.Unlock()
	if r.metrics != nil {
		r.metrics.Database(metric, node, role, v)
	}
}

// replace sets a whole series at once (CloudWatch answers with a metric's history).
func (r *dbRecorder) replace(s result.Series) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cp := s
	cp.Points = slices.Clone(s.Points)
	r.series[[2]string{s.Node, s.Metric}] = &cp
}

// event records what happened to a node at t seconds of the run.
func (r *dbRecorder) event(t float64, node, what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, result.DBEvent{TS: round3(t), Node: node, Event: what})
}

// note records, once, a series that could not be collected and why.
func (r *dbRecorder) note(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.noted[msg] {
		r.noted[msg] = true
		r.missing = append(r.missing, msg)
	}
}

// nodes diffs the nodes listed now against the last listing and records the
// events: present at the start, appeared, became writer or reader, disappeared.
func (r *dbRecorder) nodes(t float64, now map[string]string, first bool) {
	r.mu.Lock()
	prev := r.roles
	r.roles = now
	r.mu.Unlock()
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range now {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		role, was := now[n], prev[n]
		switch {
		case was == "" && first:
			r.event(t, n, EventPresent+" ("+role+")")
		case was == "":
			r.event(t, n, EventAppeared+" ("+role+")")
		case was != role && role == RoleWriter:
			r.event(t, n, EventBecameWrite)
		case was != role:
			r.event(t, n, EventBecameRead)
		}
		if was != "" && was != role && r.metrics != nil {
			// Its gauges carry the old role until it answers in the new one.
			r.metrics.NodeGone(n)
		}
	}
	for n := range prev {
		if _, ok := now[n]; !ok {
			r.event(t, n, EventGone)
			if r.metrics != nil {
				r.metrics.NodeGone(n)
			}
		}
	}
}

// role is a node's role at the last listing (reader when unknown).
func (r *dbRecorder) role(node string) string {
	if role, ok := r.roleOf(node); ok {
		return role
	}
	return RoleReader
}

// roleOf is a node's role at the last listing; ok is false for a name the listing
// did not have.
func (r *dbRecorder) roleOf(node string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	role, ok := r.roles[node]
	return role, ok
}

// database returns what was recorded up to t seconds of the run (no limit when t
// is negative): the series ordered by metric and node, the events by time.
func (r *dbRecorder) database(until float64) *result.Database {
	r.mu.Lock()
	defer r.mu.Unlock()
	db := &result.Database{Series: []result.Series{}, Events: []result.DBEvent{}, Missing: slices.Clone(r.missing)}
	for _, s := range r.series {
		cp := *s
		cp.Points = slices.Clone(s.Points)
		if until >= 0 {
			cp.Points = slices.DeleteFunc(cp.Points, func(p [2]float64) bool { return p[0] > until })
		}
		if len(cp.Points) > 0 {
			db.Series = append(db.Series, cp)
		}
	}
	slices.SortFunc(db.Series, func(a, b result.Series) int {
		return cmp.Or(cmp.Compare(a.Metric, b.Metric), cmp.Compare(a.Node, b.Node))
	})
	for _, e := range r.events {
		if until < 0 || e.TS <= until {
			db.Events = append(db.Events, e)
		}
	}
	slices.SortStableFunc(db.Events, func(a, b result.DBEvent) int { return cmp.Compare(a.TS, b.TS) })
	return db
}

// unitOf is a metric's unit in result.json.
func unitOf(metric string) string { return scenarios.DatabaseMetrics[metric] }

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// roundValue keeps whole numbers from 10,000 up and thousandths below: enough for
// a chart and a percentile, and a compact result.json.
func roundValue(v float64) float64 {
	if v == 0 || math.Abs(v) >= 1e4 {
		return math.Round(v)
	}
	return round3(v)
}
