// Package telemetry is what a run publishes and samples besides the load: live
// Prometheus metrics (a registry per run, served while the run lasts) and the
// database's own numbers on the run's timeline (result.Database), sampled per node
// from PostgreSQL, /proc, the Docker engine or CloudWatch.
//
// The load's metrics cost the load generator nothing per operation: they are read
// from its recorder, which aggregates once a second, and only when scraped.
package telemetry

import (
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// RunInfo labels a run's metrics (rehearse_run_info).
type RunInfo struct {
	Scenario, Mode, Target, Workload string
	// Sessions and TargetRate are the load asked for (TargetRate 0: closed loop).
	Sessions   int
	TargetRate float64
}

// Metrics is one run's Prometheus metrics, on a registry of its own. Its methods
// are safe for concurrent use.
type Metrics struct {
	reg  *prometheus.Registry
	load *loadCollector

	step       *prometheus.GaugeVec
	steps      *prometheus.CounterVec
	phase      *prometheus.GaugeVec
	faults     *prometheus.CounterVec
	guardrails *prometheus.CounterVec
	db         map[string]*prometheus.GaugeVec

	mu       sync.Mutex
	lastStep [2]string
	dbLabels map[[2]string]string // (metric, node) -> role set last
}

// dbGauge is how a database metric is exported: its Prometheus name in base units
// and the factor from the unit result.json records it in.
type dbGauge struct {
	name, help string
	scale      float64
}

// dbGauges maps scenarios.DatabaseMetrics onto gauges.
var dbGauges = map[string]dbGauge{
	"cpu":                {"rehearse_database_cpu_utilization_ratio", "CPU used by the node's processes: a fraction of the host's CPUs (local, container) or of the instance (Aurora).", 0.01},
	"rss":                {"rehearse_database_resident_memory_bytes", "Resident memory of the node's processes (shared memory counted once).", 1},
	"read_iops":          {"rehearse_database_read_iops", "Read operations per second (read system calls for local nodes, ReadIOPS on Aurora).", 1},
	"write_iops":         {"rehearse_database_write_iops", "Write operations per second (write system calls for local nodes, WriteIOPS on Aurora).", 1},
	"tps":                {"rehearse_database_transactions_per_second", "Transactions committed or rolled back per second (pg_stat_database).", 1},
	"rollbacks":          {"rehearse_database_rollbacks_per_second", "Transactions rolled back per second (pg_stat_database).", 1},
	"connections":        {"rehearse_database_connections", "Client connections (pg_stat_activity, DatabaseConnections on Aurora).", 1},
	"connections_active": {"rehearse_database_connections_active", "Client connections running a statement (pg_stat_activity).", 1},
	"replica_lag_bytes":  {"rehearse_database_replica_lag_bytes", "WAL the replica has not replayed yet (pg_stat_replication on the writer).", 1},
	"replica_lag_s":      {"rehearse_database_replica_lag_seconds", "The replica's replay lag (pg_stat_replication, AuroraReplicaLag).", 1},
	"wal_bytes":          {"rehearse_database_wal_bytes_per_second", "WAL written per second (pg_current_wal_lsn).", 1},
	"checkpoints":        {"rehearse_database_checkpoints", "Checkpoints completed since the run started.", 1},
	"acu":                {"rehearse_database_capacity_acu", "Serverless v2 capacity in Aurora capacity units (ServerlessDatabaseCapacity).", 1},
	"acu_utilization":    {"rehearse_database_acu_utilization_ratio", "Capacity used as a fraction of the maximum ACU (ACUUtilization).", 0.01},
	"freeable_memory":    {"rehearse_database_freeable_memory_bytes", "Memory available to the instance (FreeableMemory).", 1},
}

// NewMetrics returns a run's metrics on a new registry, with the Go and process
// collectors of this process.
func NewMetrics(info RunInfo) *Metrics {
	m := &Metrics{
		reg:  prometheus.NewRegistry(),
		load: newLoadCollector(),
		step: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rehearse_cutover_step_info",
			Help: "The cutover step running or last run, and its status (1 for that step, no other series)."}, []string{"step", "status"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rehearse_cutover_steps_total",
			Help: "Cutover steps finished, by step and final status."}, []string{"step", "status"}),
		phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rehearse_phase",
			Help: "The run's phase now: 1 for the current phase (before, during, after the cutover), 0 for the others."}, []string{"phase"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rehearse_fault_events_total",
			Help: "Faults injected into the run, by fault."}, []string{"fault"}),
		guardrails: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rehearse_guardrail_events_total",
			Help: "Guardrail events (a limit crossed, the action taken), by guardrail and action."}, []string{"guardrail", "action"}),
		db:       map[string]*prometheus.GaugeVec{},
		dbLabels: map[[2]string]string{},
	}
	runInfo := prometheus.NewGauge(prometheus.GaugeOpts{Name: "rehearse_run_info", Help: "The run: scenario, mode, target kind and workload (always 1).",
		ConstLabels: prometheus.Labels{"scenario": info.Scenario, "mode": info.Mode, "target": info.Target, "workload": info.Workload}})
	runInfo.Set(1)
	sessions := prometheus.NewGauge(prometheus.GaugeOpts{Name: "rehearse_sessions", Help: "Simulated sessions (connections in the closed loop)."})
	sessions.Set(float64(info.Sessions))
	rate := prometheus.NewGauge(prometheus.GaugeOpts{Name: "rehearse_target_rate_per_second", Help: "The arrival rate asked for, in actions per second (0: closed loop)."})
	rate.Set(info.TargetRate)
	for _, p := range []string{"before", "during", "after"} {
		m.phase.WithLabelValues(p).Set(0)
	}
	m.phase.WithLabelValues("before").Set(1)
	m.reg.MustRegister(m.load, m.step, m.steps, m.phase, m.faults, m.guardrails, runInfo, sessions, rate,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	names := make([]string, 0, len(dbGauges))
	for k := range dbGauges {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		g := dbGauges[k]
		if _, ok := scenarios.DatabaseMetrics[k]; !ok {
			continue
		}
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: g.name, Help: g.help}, []string{"node", "role"})
		m.db[k] = v
		m.reg.MustRegister(v)
	}
	return m
}

// Registry returns the registry the metrics are on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus's exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, MaxRequestsInFlight: 4})
}

// Step records that a cutover step started ("started") or ended with status.
func (m *Metrics) Step(step, status string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lastStep[0] != "" {
		m.step.DeleteLabelValues(m.lastStep[0], m.lastStep[1])
	}
	m.step.WithLabelValues(step, status).Set(1)
	m.lastStep = [2]string{step, status}
	if status != "started" {
		m.steps.WithLabelValues(step, status).Inc()
	}
}

// Phase records that the run entered phase (before, during, after).
func (m *Metrics) Phase(phase string) {
	for _, p := range []string{"before", "during", "after"} {
		v := 0.0
		if p == phase {
			v = 1
		}
		m.phase.WithLabelValues(p).Set(v)
	}
}

// Fault counts one injected fault event (a node killed, a network cut): the hook
// fault injection calls.
func (m *Metrics) Fault(fault string) { m.faults.WithLabelValues(fault).Inc() }

// Guardrail counts one guardrail event (a limit crossed and the action taken): the
// hook guardrails call.
func (m *Metrics) Guardrail(guardrail, action string) {
	m.guardrails.WithLabelValues(guardrail, action).Inc()
}

// Database sets a database metric of a node (in result.json's unit); role is
// writer or reader.
func (m *Metrics) Database(metric, node, role string, v float64) {
	g, ok := dbGauges[metric]
	vec := m.db[metric]
	if !ok || vec == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	key := [2]string{metric, node}
	if old, ok := m.dbLabels[key]; ok && old != role {
		vec.DeleteLabelValues(node, old)
	}
	m.dbLabels[key] = role
	vec.WithLabelValues(node, role).Set(v * g.scale)
}

// NodeGone removes a node's database metrics: it no longer exists.
func (m *Metrics) NodeGone(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for key, role := range m.dbLabels {
		if key[1] == node {
			m.db[key[0]].DeleteLabelValues(node, role)
			delete(m.dbLabels, key)
		}
	}
}

// AttachLoad feeds the load's metrics from a run's recorder (its summary, read
// in the background after a Flushed while someone scrapes, within a small share of
// the time) and from the load generator's progress lines, which it passes on to
// progress (may be nil). It returns the writer to give the load generator as its
// progress writer. Close or Freeze stops it.
func (m *Metrics) AttachLoad(rec summarizer, since func() time.Duration, progress io.Writer) io.Writer {
	m.load.attach(rec, since)
	return &progressWriter{c: m.load, next: progress}
}

// Interval merges one operation's latency histogram of one interval (the
// recorder's interval sink; h may be reused once it returns).
func (m *Metrics) Interval(op string, h *hdr.Histogram) { m.load.interval(op, h) }

// Flushed notes that the recorder closed another one-second interval.
func (m *Metrics) Flushed() { m.load.flushed() }

// Freeze keeps the load's final numbers, over the run's length end: the load has
// ended and the metrics no longer change.
func (m *Metrics) Freeze(end time.Duration) { m.load.freeze(end) }

// Close stops refreshing the load's numbers (Freeze does too).
func (m *Metrics) Close() { m.load.close() }
