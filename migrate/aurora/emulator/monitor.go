package emulator

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/telemetry/nodestat"
)

// Meter is a Backend whose nodes run on this machine, so that GetMetricData can
// answer with their real numbers.
type Meter interface {
	// NodePID is a node's postmaster's pid (0 when it is not running).
	NodePID(node string) int
	// NodeDSN reaches a node itself ("" when unknown).
	NodeDSN(node string) string
}

// The emulator's stand-in for Serverless v2 scaling and instance sizes.
const (
	// acuCores is the CPU one ACU stands for: an ACU is about 2 GiB of memory
	// with the CPU to match, as on a memory-optimized instance (db.r6g.large:
	// 2 vCPUs, 16 GiB, i.e. 8 ACUs' worth).
	acuCores = 0.25
	// acuMemory is the memory of one ACU.
	acuMemory = 2 << 30
	// acuStep is the granularity capacity changes by.
	acuStep = 0.5
	// acuScaleDown is how long capacity holds before it drops by one step:
	// Serverless v2 scales up at once and down gradually.
	acuScaleDown = 5 * time.Second
	// historyMax bounds each series: six hours of seconds.
	historyMax = 6 * 3600
	// sampleEvery is the emulator's finest period.
	sampleEvery = time.Second
	// watchEvery is how often the cluster's state is compared for events.
	watchEvery = 100 * time.Millisecond
)

// instanceClasses are the provisioned classes the emulator knows: vCPUs and GiB.
var instanceClasses = map[string][2]float64{
	"db.r6g.large": {2, 16}, "db.r6g.xlarge": {4, 32}, "db.r6g.2xlarge": {8, 64},
	"db.r7g.large": {2, 16}, "db.r7g.xlarge": {4, 32}, "db.r5.large": {2, 16}, "db.t4g.medium": {2, 4},
}

// datapoint is one metric's value at one moment.
type datapoint struct {
	at time.Time
	v  float64
}

// event is something the emulator reports through DescribeEvents.
type event struct {
	at         time.Time
	sourceType string // db-cluster or db-instance
	source     string
	message    string
	category   string
}

// monitor measures the hosted cluster's instances every second (when the
// backend is a Meter) and watches its state for events, for GetMetricData and
// DescribeEvents.
type monitor struct {
	s *Server

	mu      sync.Mutex
	history map[[2]string][]datapoint // (instance, metric)
	events  []event

	// sampling state, owned by the sampling goroutine
	procs map[string]*nodestat.ProcMeter
	pgs   map[string]*nodestat.PGMeter
	conns map[string]*pgx.Conn
	acu   map[string]float64
	held  map[string]time.Time

	// watching state, owned by the watching goroutine
	seen      map[string]string // instance -> status
	writer    string
	failing   bool
	startedAt int // index of the pending "started failover" event, -1 when none
}

// startMonitor starts measuring and watching until the server closes.
func (s *Server) startMonitor() {
	m := &monitor{s: s, history: map[[2]string][]datapoint{}, procs: map[string]*nodestat.ProcMeter{},
		pgs: map[string]*nodestat.PGMeter{}, conns: map[string]*pgx.Conn{}, acu: map[string]float64{},
		held: map[string]time.Time{}, seen: map[string]string{}, startedAt: -1}
	s.mon = m
	m.watch(true)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(watchEvery)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
				m.watch(false)
			}
		}
	}()
	go func() {
		defer s.wg.Done()
		defer m.closeConns()
		meter, ok := s.b.(Meter)
		if !ok {
			return
		}
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
				m.sample(s.ctx, meter)
			}
		}
	}()
}

// snapshot is one instance as the monitor reads it.
type snapshot struct {
	id, class, status, node string
}

func (m *monitor) instances() (writer string, out []snapshot, status string, scaling [2]float64) {
	s := m.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.order {
		in := s.instances[id]
		out = append(out, snapshot{id: id, class: in.class, status: in.status, node: in.node})
	}
	if s.scaling != nil {
		scaling = *s.scaling
	}
	return s.writerLocked(), out, s.status, scaling
}

// watch compares the cluster with the last look and records what changed as RDS
// would: failovers started and completed, instances created and deleted.
func (m *monitor) watch(first bool) {
	writer, ins, status, _ := m.instances()
	now := m.s.opts.Now()
	cluster := m.s.opts.ClusterID
	m.mu.Lock()
	defer m.mu.Unlock()
	// Events of one look are a millisecond apart, the precision DescribeEvents
	// gives: a client that sorts by time keeps the order they happened in.
	step := time.Duration(0)
	add := func(typ, src, msg, cat string) int {
		m.events = append(m.events, event{at: now.Add(step), sourceType: typ, source: src, message: msg, category: cat})
		step += time.Millisecond
		return len(m.events) - 1
	}
	if first {
		for _, in := range ins {
			m.seen[in.id] = in.status
		}
		m.writer = writer
		return
	}
	// Within one look, what happened first goes first: an instance becomes
	// available, then the cluster fails over to it, then an instance goes.
	now2 := map[string]string{}
	for _, in := range ins {
		now2[in.id] = in.status
		was, ok := m.seen[in.id]
		if !ok {
			add("db-instance", in.id, "Creating DB instance", "creation")
		}
		if in.status == "available" && was != "available" {
			add("db-instance", in.id, "DB instance created", "creation")
		}
	}
	if status == "failing-over" && !m.failing {
		m.failing = true
		m.startedAt = add("db-cluster", cluster, "Started cross AZ failover", "failover")
	}
	if writer != m.writer && writer != "" {
		// A failover quicker than a look has its start here.
		if m.startedAt < 0 {
			m.startedAt = add("db-cluster", cluster, "", "failover")
		}
		m.events[m.startedAt].message = "Started cross AZ failover to DB instance: " + writer
		m.startedAt = -1
		add("db-cluster", cluster, "Completed failover to DB instance: "+writer, "failover")
		if m.writer != "" {
			add("db-instance", m.writer, "A new writer was promoted. Restarting database as a reader.", "failover")
		}
		m.writer = writer
	}
	if status != "failing-over" && m.failing {
		m.failing = false
		if m.startedAt >= 0 {
			m.events[m.startedAt].message += " (failed: the writer did not change)"
			m.startedAt = -1
		}
	}
	for _, in := range ins {
		if was := m.seen[in.id]; in.status == "deleting" && was != "deleting" {
			add("db-instance", in.id, "Deleting DB instance", "deletion")
		}
	}
	for id := range m.seen {
		if _, ok := now2[id]; !ok {
			add("db-instance", id, "DB instance deleted", "deletion")
		}
	}
	m.seen = now2
}

// eventsIn returns the events in [from, to), oldest first.
func (m *monitor) eventsIn(from, to time.Time) []event {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []event
	for _, e := range m.events {
		if !e.at.Before(from) && e.at.Before(to) {
			out = append(out, e)
		}
	}
	return out
}

// sample measures every instance that has a running node and records its
// CloudWatch metrics.
func (m *monitor) sample(ctx context.Context, meter Meter) {
	writer, ins, _, scaling := m.instances()
	now := m.s.opts.Now()
	wall := time.Now()
	type measured struct {
		in    snapshot
		proc  nodestat.ProcUsage
		okP   bool
		conns int64
		okC   bool
	}
	var ms []measured
	lags := map[string]float64{} // node -> seconds, from the writer's pg_stat_replication
	writerNode := ""
	for _, in := range ins {
		if in.id == writer {
			writerNode = in.node
		}
	}
	for _, in := range ins {
		if in.node == "" || in.status == "creating" {
			continue
		}
		x := measured{in: in}
		if pid := meter.NodePID(in.node); pid > 0 {
			p := m.procs[in.node]
			if p == nil {
				p = &nodestat.ProcMeter{}
				m.procs[in.node] = p
			}
			if u, err := p.Sample(pid, wall); err == nil {
				x.proc, x.okP = u, true
			}
		}
		if u, err := m.pgSample(ctx, meter, in.node, wall); err == nil {
			x.conns, x.okC = u.Connections, true
			if in.node == writerNode {
				for _, r := range u.Replicas {
					lags[r.Name] = r.Seconds
				}
			}
		}
		ms = append(ms, x)
	}
	maxACU := scaling[1]
	for _, x := range ms {
		id := x.in.id
		serverless := x.in.class == "db.serverless"
		if x.okP && x.proc.Rates {
			cores := x.proc.CPUCores
			if serverless && maxACU > 0 {
				acu := m.scale(id, cores, x.proc.RSS, scaling, wall)
				m.record(id, "ServerlessDatabaseCapacity", now, acu)
				m.record(id, "ACUUtilization", now, 100*acu/maxACU)
				// Serverless v2 reports CPU against what the maximum capacity has.
				m.record(id, "CPUUtilization", now, math.Min(100, 100*cores/(maxACU*acuCores)))
				m.record(id, "FreeableMemory", now, math.Max(0, acu*acuMemory-float64(x.proc.RSS)))
			} else {
				vcpus, gib := float64(runtime.NumCPU()), 0.0
				if c, ok := instanceClasses[x.in.class]; ok {
					vcpus, gib = c[0], c[1]
				}
				m.record(id, "CPUUtilization", now, math.Min(100, 100*cores/vcpus))
				if gib > 0 {
					m.record(id, "FreeableMemory", now, math.Max(0, gib*(1<<30)-float64(x.proc.RSS)))
				}
			}
			if x.proc.IO {
				m.record(id, "ReadIOPS", now, x.proc.ReadOps)
				m.record(id, "WriteIOPS", now, x.proc.WriteOps)
			}
		}
		if x.okC {
			m.record(id, "DatabaseConnections", now, float64(x.conns))
		}
		if lag, ok := lags[x.in.node]; ok && id != writer {
			m.record(id, "AuroraReplicaLag", now, lag*1000)
		}
	}
}

// scale is the emulated capacity of a Serverless v2 instance whose node uses cores
// and rss bytes of memory: up at once to what the CPU or the memory needs, down
// one step per acuScaleDown, within the cluster's range, in steps of half an ACU.
func (m *monitor) scale(id string, cores float64, rss int64, rng [2]float64, now time.Time) float64 {
	need := math.Max(cores/acuCores, float64(rss)/acuMemory)
	want := math.Ceil(need/acuStep) * acuStep
	want = math.Min(math.Max(want, rng[0]), rng[1])
	cur, ok := m.acu[id]
	switch {
	case !ok || want >= cur:
		cur = want
		m.held[id] = now
	case now.Sub(m.held[id]) >= acuScaleDown:
		cur = math.Max(want, cur-acuStep)
		m.held[id] = now
	}
	m.acu[id] = cur
	return cur
}

// pgSample reads a node's server statistics over a connection kept between
// samples.
func (m *monitor) pgSample(ctx context.Context, meter Meter, node string, now time.Time) (nodestat.PGUsage, error) {
	conn := m.conns[node]
	if conn == nil || conn.IsClosed() {
		dsn := meter.NodeDSN(node)
		if dsn == "" {
			return nodestat.PGUsage{}, fmt.Errorf("no address for node %s", node)
		}
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nodestat.PGUsage{}, err
		}
		cfg.RuntimeParams["application_name"] = "rehearse-aurora-emulator"
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		cctx, cancel := context.WithTimeout(ctx, sampleEvery)
		conn, err = pgx.ConnectConfig(cctx, cfg)
		cancel()
		if err != nil {
			return nodestat.PGUsage{}, err
		}
		m.conns[node] = conn
	}
	p := m.pgs[node]
	if p == nil {
		p = &nodestat.PGMeter{}
		m.pgs[node] = p
	}
	qctx, cancel := context.WithTimeout(ctx, sampleEvery)
	defer cancel()
	u, err := p.Sample(qctx, conn, now)
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		delete(m.conns, node)
	}
	return u, err
}

func (m *monitor) closeConns() {
	for n, c := range m.conns {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.Close(ctx)
		cancel()
		delete(m.conns, n)
	}
}

// record appends a datapoint, dropping the oldest beyond historyMax.
func (m *monitor) record(instance, metric string, at time.Time, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := [2]string{instance, metric}
	h := append(m.history[k], datapoint{at, v})
	if len(h) > historyMax {
		h = h[len(h)-historyMax:]
	}
	m.history[k] = h
}

// series returns a metric's datapoints of an instance in [from, to), oldest first.
func (m *monitor) series(instance, metric string, from, to time.Time) []datapoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []datapoint
	for _, d := range m.history[[2]string{instance, metric}] {
		if !d.at.Before(from) && d.at.Before(to) {
			out = append(out, d)
		}
	}
	return out
}

// metricNotes says how the emulator derives each metric (the Emulated message of
// GetMetricData's results).
var metricNotes = map[string]string{
	"CPUUtilization":             "the node's processes' CPU time on this machine, as a share of the instance class's vCPUs (for db.serverless, of the CPU the cluster's maximum ACU stands for)",
	"ServerlessDatabaseCapacity": "estimated from the node's CPU and memory: one ACU per quarter of a CPU core or 2 GiB of resident memory, whichever needs more, in steps of 0.5 within the cluster's Serverless v2 range, up at once and down one step per 5 s",
	"ACUUtilization":             "the estimated capacity as a share of the cluster's maximum ACU",
	"DatabaseConnections":        "client connections in the node's pg_stat_activity",
	"AuroraReplicaLag":           "the replica's replay lag as the writer's pg_stat_replication reports it (the emulator's replicas stream WAL, where Aurora's instances share storage)",
	"ReadIOPS":                   "read system calls per second of the node's processes",
	"WriteIOPS":                  "write system calls per second of the node's processes",
	"FreeableMemory":             "the instance's memory (its class's, or the estimated ACUs' at 2 GiB each) less the node's resident memory",
}
