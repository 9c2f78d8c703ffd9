package telemetry

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/aws/smithy-go"
	"github.com/moby/moby/api/types/container"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/rehearse-dev/rehearse/internal/telemetry/nodestat"
	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/migrate/aurora"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// gathered is the text exposition of the named metric families of reg.
func gathered(t *testing.T, reg prometheus.Gatherer, names ...string) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, name := range names {
		for _, mf := range mfs {
			if mf.GetName() == name {
				if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return b.String()
}

// collect gathers one collector on a registry of its own.
func collect(t *testing.T, c prometheus.Collector) []*dto.Metric {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []*dto.Metric
	for _, mf := range mfs {
		out = append(out, mf.GetMetric()...)
	}
	return out
}

// gaugeValue is the value of the gauge of c with the label values, if it has one.
func gaugeValue(t *testing.T, c prometheus.Collector, labels ...string) (float64, bool) {
	t.Helper()
	for _, m := range collect(t, c) {
		var got []string
		for _, l := range m.GetLabel() {
			got = append(got, l.GetValue())
		}
		if strings.Join(got, "\x00") == strings.Join(labels, "\x00") {
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

func TestPromBuckets(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		want   map[float64]uint64 // a few cumulative buckets
	}{
		{"empty", nil, map[float64]uint64{0.001: 0, 30: 0}},
		{"below the first bound", []time.Duration{500 * time.Microsecond}, map[float64]uint64{0.001: 1, 30: 1}},
		{"spread", []time.Duration{2 * time.Millisecond, 20 * time.Millisecond, 200 * time.Millisecond, 2 * time.Second},
			map[float64]uint64{0.001: 0, 0.0025: 1, 0.025: 2, 0.25: 3, 2.5: 4, 30: 4}},
		{"past the last bound", []time.Duration{time.Minute}, map[float64]uint64{30: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hdr.New(int64(time.Microsecond), int64(time.Hour), 3)
			for _, v := range tt.values {
				_ = h.RecordValue(int64(v))
			}
			b, n, sum := promBuckets(h)
			if n != uint64(len(tt.values)) {
				t.Errorf("count %d, want %d", n, len(tt.values))
			}
			var want float64
			for _, v := range tt.values {
				want += v.Seconds()
			}
			if d := sum - want; d > want*0.01 || d < -want*0.01 {
				t.Errorf("sum %v, want about %v", sum, want)
			}
			for bound, c := range tt.want {
				if b[bound] != c {
					t.Errorf("bucket le=%v: %d, want %d (all %v)", bound, b[bound], c, b)
				}
			}
		})
	}
}

// promBuckets reads the counts by HDR's layout; Distribution, which walks the
// histogram through its own iterator, must agree.
func TestPromBucketsAgreeWithDistribution(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, geometry := range []struct {
		low, high int64
		sig       int
	}{{int64(time.Microsecond), int64(time.Hour), 3}, {1, int64(time.Minute), 2}, {1000, int64(time.Hour), 4}} {
		h := hdr.New(geometry.low, geometry.high, geometry.sig)
		for range 5000 {
			_ = h.RecordValue(int64(math.Exp(r.Float64() * 24))) // 1 ns to about 26 s
		}
		want := make(map[float64]uint64, len(durationBuckets))
		for _, bar := range h.Distribution() {
			for _, b := range durationBuckets {
				if float64(bar.To)/1e9 <= b {
					want[b] += uint64(bar.Count)
					break
				}
			}
		}
		got, n, _ := promBuckets(h)
		var cum uint64
		for _, b := range durationBuckets {
			cum += want[b]
			if got[b] != cum {
				t.Errorf("geometry %+v: bucket le=%v %d, Distribution says %d", geometry, b, got[b], cum)
			}
		}
		if n != uint64(h.TotalCount()) {
			t.Errorf("geometry %+v: count %d, want %d", geometry, n, h.TotalCount())
		}
	}
}

func TestProgressWriterReadsBusySessions(t *testing.T) {
	var out strings.Builder
	c := newLoadCollector()
	w := &progressWriter{c: c, next: &out}
	lines := []string{
		"    1s      412 ops/s  p50    1.20 ms  p99     9.10 ms  max    12.00 ms  errors     0  sessions 2000 (busy 17)\n",
		"    2s      400 ops/s  p50    1.10 ms  p99     8.00 ms  max    11.00 ms  errors     0  sessions 2000 (busy ",
		"23)\n",
	}
	for i, l := range lines {
		if _, err := w.Write([]byte(l)); err != nil {
			t.Fatal(err)
		}
		if i == 0 && c.busy.Load() != 17 {
			t.Errorf("busy %d after the first line, want 17", c.busy.Load())
		}
	}
	if c.busy.Load() != 23 || out.String() != strings.Join(lines, "") {
		t.Errorf("busy %d, want 23; passed on %q", c.busy.Load(), out.String())
	}
}

func TestCutoverEventsAndPhase(t *testing.T) {
	m := NewMetrics(RunInfo{})
	m.CutoverEvent("switchover", "started")
	m.CutoverEvent("switchover", "ok")
	m.CutoverEvent("redirect", "started")
	m.Phase("during")
	// Labels sort by name: status, then step.
	if v, ok := gaugeValue(t, m.step, "started", "redirect"); !ok || v != 1 {
		t.Errorf("step gauge %v (%v), want 1 for the redirect started", v, ok)
	}
	if n := len(collect(t, m.step)); n != 1 {
		t.Errorf("%d step series, want only the current one", n)
	}
	if v, _ := gaugeValue(t, m.steps, "ok", "switchover"); v != 1 {
		t.Errorf("steps_total{switchover,ok} = %v, want 1", v)
	}
	for _, p := range []string{"before", "during", "after"} {
		want := 0.0
		if p == "during" {
			want = 1
		}
		if v, _ := gaugeValue(t, m.phase, p); v != want {
			t.Errorf("phase %s = %v, want %v", p, v, want)
		}
	}
}

// fakeRecorder is a recorder summary that counts how often it is asked.
type fakeRecorder struct {
	sum   loadgen.Summary
	calls atomic.Int64
}

func (f *fakeRecorder) Summary(time.Duration) loadgen.Summary { f.calls.Add(1); return f.sum }

func TestLoadMetricsFromTheSummary(t *testing.T) {
	rec := &fakeRecorder{sum: loadgen.Summary{
		Operations: []result.Operation{
			{Name: "transfer", Phases: map[string]result.Phase{"before": {Count: 90, Errors: 1, FailedAttempts: 3}, "during": {Count: 10, Errors: 4, FailedAttempts: 9}}},
			{Name: "balance", Phases: map[string]result.Phase{"before": {Count: 50}}},
		},
		Errors:   []result.ErrorClass{{Class: "connection_refused", Count: 7, Phases: map[string]int64{"during": 7}}, {Class: "serialization", SQLState: "40001", Count: 5, Phases: map[string]int64{"before": 3, "during": 2}}},
		Totals:   result.Totals{Attempts: 160, Retries: 10},
		Timeline: []result.TimelineRow{{TS: 0, Ops: 70, P50Ms: 1, P99Ms: 9, MaxMs: 20}, {TS: 1, Ops: 80, P50Ms: 2, P99Ms: 30, MaxMs: 50}},
		LagP99Ms: 4, Availability: result.Availability{WriteUnavailableMaxMs: 1500},
	}}
	m := NewMetrics(RunInfo{Scenario: "s", Mode: "wet", Target: "local", Workload: "banking", Sessions: 10, TargetRate: 5})
	m.load.duty = 1 // refresh as soon as a flush comes
	m.AttachLoad(rec, func() time.Duration { return 3 * time.Second }, nil)
	defer m.Close()
	h := hdr.New(int64(time.Microsecond), int64(time.Hour), 3)
	_ = h.RecordValue(int64(3 * time.Millisecond))
	m.Interval("transfer", h)
	m.Fault("kill_writer")
	m.Guardrail("max_lag", "pause")

	want := `
# HELP rehearse_operations_total Operations finished (after the client's retries), by operation and the phase of their intended start.
# TYPE rehearse_operations_total counter
rehearse_operations_total{op="balance",phase="before"} 50
rehearse_operations_total{op="transfer",phase="before"} 90
rehearse_operations_total{op="transfer",phase="during"} 10
# HELP rehearse_failed_attempts_total Failed attempts, every retry included, by error class, SQLSTATE and phase.
# TYPE rehearse_failed_attempts_total counter
rehearse_failed_attempts_total{class="connection_refused",phase="during",sqlstate=""} 7
rehearse_failed_attempts_total{class="serialization",phase="before",sqlstate="40001"} 3
rehearse_failed_attempts_total{class="serialization",phase="during",sqlstate="40001"} 2
# HELP rehearse_last_second_latency_seconds Latency of the last whole second's successful operations: its p50, p99 and max.
# TYPE rehearse_last_second_latency_seconds gauge
rehearse_last_second_latency_seconds{stat="max"} 0.05
rehearse_last_second_latency_seconds{stat="p50"} 0.002
rehearse_last_second_latency_seconds{stat="p99"} 0.03
# HELP rehearse_unavailable_max_seconds The longest span so far in which operations of a kind (read, write) were attempted and none succeeded.
# TYPE rehearse_unavailable_max_seconds gauge
rehearse_unavailable_max_seconds{kind="read"} 0
rehearse_unavailable_max_seconds{kind="write"} 1.5
# HELP rehearse_fault_events_total Faults injected into the run, by fault.
# TYPE rehearse_fault_events_total counter
rehearse_fault_events_total{fault="kill_writer"} 1
# HELP rehearse_guardrail_events_total Guardrail events (a limit crossed, the action taken), by guardrail and action.
# TYPE rehearse_guardrail_events_total counter
rehearse_guardrail_events_total{action="pause",guardrail="max_lag"} 1
`
	if got := gathered(t, m.Registry(), "rehearse_operations_total", "rehearse_failed_attempts_total", "rehearse_last_second_latency_seconds",
		"rehearse_unavailable_max_seconds", "rehearse_fault_events_total", "rehearse_guardrail_events_total"); got != strings.TrimPrefix(want, "\n") {
		t.Errorf("metrics:\n%s\nwant:\n%s", got, want)
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var hist *dto.Histogram
	for _, mf := range mfs {
		if mf.GetName() == "rehearse_operation_duration_seconds" {
			hist = mf.GetMetric()[0].GetHistogram()
		}
	}
	if hist == nil || hist.GetSampleCount() != 1 {
		t.Fatalf("duration histogram %v", hist)
	}
	// A scrape reads the snapshot: the recorder is asked again only after a flush,
	// in the background.
	if rec.calls.Load() != 1 {
		t.Errorf("the first scrapes asked the recorder %d times, want once", rec.calls.Load())
	}
	m.Flushed()
	testutil.Eventually(t, 5*time.Second, "a refresh after the flush", func() bool { return rec.calls.Load() == 2 })
	m.Freeze(3 * time.Second)
	if rec.calls.Load() != 3 {
		t.Errorf("freezing asked the recorder %d times in all, want 3", rec.calls.Load())
	}
	m.Flushed()
	if _, err := m.Registry().Gather(); err != nil || rec.calls.Load() != 3 {
		t.Errorf("a frozen collector asked the recorder again (%d calls, %v)", rec.calls.Load(), err)
	}
	mfs, err = m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestDatabaseGaugesFollowRolesAndNodes(t *testing.T) {
	m := NewMetrics(RunInfo{})
	m.Database("cpu", "node1", RoleWriter, 50)
	m.Database("cpu", "node1", RoleReader, 20) // the writer became a reader
	m.Database("replica_lag_s", "node2", RoleReader, 0.5)
	if n := len(collect(t, m.db["cpu"])); n != 1 {
		t.Errorf("%d cpu series, want one (the old role's is gone)", n)
	}
	if v, _ := gaugeValue(t, m.db["cpu"], "node1", RoleReader); v != 0.2 {
		t.Errorf("cpu ratio %v, want 0.2 (20 percent)", v)
	}
	m.NodeGone("node2")
	if n := len(collect(t, m.db["replica_lag_s"])); n != 0 {
		t.Errorf("%d lag series after the node went, want none", n)
	}
}

func TestListenNamesATakenAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen(ln.Addr().String(), NewMetrics(RunInfo{}))
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("Listen on a taken address: %v, want an error naming it", err)
	}
	s, err := Listen("127.0.0.1:0", NewMetrics(RunInfo{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Error(err)
	}
}

func TestNodeEvents(t *testing.T) {
	r := newDBRecorder(nil)
	steps := []struct {
		t     float64
		roles map[string]string
	}{
		{0, map[string]string{"node1": RoleWriter}},
		{5, map[string]string{"node1": RoleWriter, "node2": RoleReader}},
		{7, map[string]string{"node1": RoleReader, "node2": RoleWriter}},
		{9, map[string]string{"node2": RoleWriter}},
	}
	for i, s := range steps {
		r.nodes(s.t, s.roles, i == 0)
	}
	want := []result.DBEvent{
		{TS: 0, Node: "node1", Event: "present at the start (writer)"},
		{TS: 5, Node: "node2", Event: "appeared (reader)"},
		{TS: 7, Node: "node1", Event: "became reader"},
		{TS: 7, Node: "node2", Event: "became writer"},
		{TS: 9, Node: "node1", Event: "disappeared"},
	}
	got := r.database(-1).Events
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestCost(t *testing.T) {
	acu := result.Series{Node: "node2", Metric: "acu", Unit: "ACU", Points: [][2]float64{{1, 0.5}, {2, 0.5}, {10, 2}, {11, 4}}}
	price := scenarios.Price{ACUHour: 0.12, ProvisionedHour: 0.29}
	tests := []struct {
		name     string
		db       *result.Database
		writer   string
		mean     float64
		noReason bool
	}{
		{"from when it became the writer", &result.Database{Series: []result.Series{acu}, Events: []result.DBEvent{{TS: 9, Node: "node2", Event: EventBecameWrite}}}, "node2", 3, true},
		{"the whole run when it always was", &result.Database{Series: []result.Series{acu}}, "node2", 1.75, true},
		{"no ACU series", &result.Database{Series: []result.Series{acu}}, "node1", 0, false},
		{"no database", nil, "node2", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, why := Cost(tt.db, tt.writer, price)
			if (why == "") != tt.noReason {
				t.Fatalf("reason %q", why)
			}
			if c == nil {
				return
			}
			if c.MeanACU != tt.mean || c.ServerlessPerHour != round2(tt.mean*0.12) || c.ProvisionedPerHour != 0.29 || !strings.Contains(c.Note, "estimate") {
				t.Errorf("cost %+v, want mean %v", c, tt.mean)
			}
		})
	}
}

func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

// fakeMonitor stands in for aurora.Monitor.
type fakeMonitor struct {
	metricsErr, eventsErr error
	metrics               []aurora.InstanceMetric
	events                []aurora.Event
}

func (f *fakeMonitor) Instances(context.Context) (string, []string, error) {
	return "w", []string{"w", "r"}, nil
}
func (f *fakeMonitor) Metrics(context.Context, []string, time.Time, time.Time) ([]aurora.InstanceMetric, error) {
	return f.metrics, f.metricsErr
}
func (f *fakeMonitor) Events(context.Context, []string, time.Time, time.Time) ([]aurora.Event, error) {
	return f.events, f.eventsErr
}
func (f *fakeMonitor) Period() time.Duration { return time.Second }

func TestAuroraSampler(t *testing.T) {
	start := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	denied := func(action string) error {
		return &aurora.PermissionError{Action: action, Err: &smithy.GenericAPIError{Code: "AccessDenied"}}
	}
	tests := []struct {
		name     string
		mon      *fakeMonitor
		series   int
		events   int
		missing  []string
		lagValue float64
	}{
		{"metrics and events", &fakeMonitor{
			metrics: []aurora.InstanceMetric{
				{Instance: "w", Metric: "CPUUtilization", Times: []time.Time{start.Add(-900 * time.Millisecond), start.Add(100 * time.Millisecond), start.Add(1100 * time.Millisecond)}, Values: []float64{5, 40, 60}, Emulated: true},
				{Instance: "r", Metric: "AuroraReplicaLag", Times: []time.Time{start.Add(time.Second)}, Values: []float64{250}},
			},
			events: []aurora.Event{{Time: start.Add(2 * time.Second), Source: "demo", SourceType: "db-cluster", Message: "Completed failover to DB instance: r"}},
		}, 2, 3, nil, 0.25},
		{"GetMetricData denied", &fakeMonitor{metricsErr: denied("cloudwatch:GetMetricData"),
			events: []aurora.Event{{Time: start.Add(time.Second), Source: "r", Message: "DB instance created"}}},
			0, 3, []string{"cloudwatch:GetMetricData was denied", "add cloudwatch:GetMetricData to the IAM policy"}, 0},
		{"DescribeEvents denied", &fakeMonitor{eventsErr: denied("rds:DescribeEvents")},
			0, 2, []string{"rds:DescribeEvents was denied", "no RDS events", "CloudWatch had no datapoints"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAuroraSampler(AuroraConfig{Monitor: tt.mon, Start: start, Since: func() time.Duration { return 0 }})
			a.list(t.Context(), true)
			db := a.Finish(t.Context(), -1)
			if len(db.Series) != tt.series || len(db.Events) != tt.events {
				t.Fatalf("%d series, %d events (%v), want %d and %d", len(db.Series), len(db.Events), db.Events, tt.series, tt.events)
			}
			all := strings.Join(db.Missing, "\n")
			for _, m := range tt.missing {
				if !strings.Contains(all, m) {
					t.Errorf("missing %q does not say %q", all, m)
				}
			}
			for _, s := range db.Series {
				switch s.Metric {
				case "cpu":
					// The period the run started in mostly before it is left out.
					if len(s.Points) != 2 || s.Points[0] != [2]float64{0.1, 40} || !s.Emulated || s.Unit != "percent" {
						t.Errorf("cpu series %+v", s)
					}
				case "replica_lag_s":
					if s.Points[0][1] != tt.lagValue || s.Node != "r" {
						t.Errorf("lag series %+v, want %v s on the replica", s, tt.lagValue)
					}
				}
			}
		})
	}
	var pe *aurora.PermissionError
	if !errors.As(denied("x"), &pe) {
		t.Fatal("the fake's error is no PermissionError")
	}
}

// Every database metric has a gauge and a unit.
func TestEveryDatabaseMetricIsExported(t *testing.T) {
	m := NewMetrics(RunInfo{})
	for metric := range scenarios.DatabaseMetrics {
		if _, ok := m.db[metric]; !ok {
			t.Errorf("no gauge for %s", metric)
		}
	}
	var _ prometheus.Collector = m.load
}

// A writer's pg_stat_replication lists every WAL sender: only the nodes are
// replicas (pg_basebackup copying a new node is not).
func TestReplicaLagOnlyOfNodes(t *testing.T) {
	s := NewSampler(SamplerConfig{Nodes: staticNodes{}, Since: func() time.Duration { return 0 }})
	s.rec.nodes(1, map[string]string{"node1": RoleWriter, "node2": RoleReader}, true)
	s.recordPG("node1", RoleWriter, 1, nodestat.PGUsage{Replicas: []nodestat.ReplicaLag{{Name: "node2", Bytes: 10, Seconds: 0.5}, {Name: "pg_basebackup", Bytes: 99}}})
	var lag []string
	for _, sr := range s.Database(-1).Series {
		if sr.Metric == "replica_lag_bytes" {
			lag = append(lag, sr.Node)
		}
	}
	if strings.Join(lag, ",") != "node2" {
		t.Errorf("replica lag series of %v, want node2's only", lag)
	}
}

func TestContainerCounters(t *testing.T) {
	var st container.StatsResponse
	st.CPUStats.CPUUsage.TotalUsage, st.CPUStats.SystemUsage = 5e9, 100e9
	st.MemoryStats.Usage = 300 << 20
	st.MemoryStats.Stats = map[string]uint64{"inactive_file": 100 << 20}
	st.BlkioStats.IoServicedRecursive = []container.BlkioStatEntry{{Op: "Read", Value: 7}, {Op: "Write", Value: 9}, {Op: "Read", Value: 1}, {Op: "Total", Value: 17}}
	c := counters(st)
	if c.CPU != 5e9 || c.System != 100e9 || c.Memory != 200<<20 || !c.IO || c.Reads != 8 || c.Writes != 9 {
		t.Errorf("counters %+v", c)
	}
	st.BlkioStats.IoServicedRecursive = nil
	st.MemoryStats.Stats = map[string]uint64{"total_inactive_file": 50 << 20}
	if c := counters(st); c.IO || c.Memory != 250<<20 {
		t.Errorf("cgroup v1 page cache, no I/O counts: %+v", c)
	}
}
