package aurora

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/aurora/emulator"
)

// metricOf returns one metric of one instance from a Metrics answer.
func metricOf(ms []InstanceMetric, instance, metric string) (InstanceMetric, bool) {
	for _, m := range ms {
		if m.Instance == instance && m.Metric == metric {
			return m, true
		}
	}
	return InstanceMetric{}, false
}

// Through the unmodified SDK clients (CloudWatch in RPC v2 CBOR, RDS in Query),
// the emulator over a real cluster answers GetMetricData with the nodes' numbers
// and DescribeEvents with the instance created and the failover onto it.
func TestMonitorOverRealCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	p, s, _, log := realEmulator(t)
	ctx := t.Context()
	start := time.Now()
	w, _, err := p.Endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := startLoad(t, p.DSN(w))
	mon := p.Monitor()
	if mon.Period() != time.Second {
		t.Errorf("period %v against the emulator, want its second", mon.Period())
	}
	writer := "rehearse-demo-instance-1"
	testutil.Eventually(t, 20*time.Second, "CPU and connection datapoints of the writer", func() bool {
		ms, err := mon.Metrics(ctx, []string{writer}, start, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cpu, ok1 := metricOf(ms, writer, "CPUUtilization")
		conns, ok2 := metricOf(ms, writer, "DatabaseConnections")
		return ok1 && ok2 && len(cpu.Values) >= 3 && len(conns.Values) >= 3 && slices.Max(conns.Values) >= 1 && cpu.Emulated
	})

	replica, err := p.CreateReplica(ctx)
	if err != nil {
		t.Fatalf("create replica: %v\n%s", err, log)
	}
	if _, err := p.Switchover(ctx, replica.ID); err != nil {
		t.Fatalf("switchover: %v\n%s", err, log)
	}
	l.halt()
	var evs []Event
	testutil.Eventually(t, 20*time.Second, "the failover's events", func() bool {
		evs, err = mon.Events(ctx, []string{writer, replica.ID}, start, time.Now().Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(evs, func(e Event) bool { return strings.HasPrefix(e.Message, "Completed failover") })
	})
	want := []struct{ source, message string }{
		{replica.ID, "Creating DB instance"},
		{replica.ID, "DB instance created"},
		{emulator.DefaultClusterID, "Started cross AZ failover to DB instance: " + replica.ID},
		{emulator.DefaultClusterID, "Completed failover to DB instance: " + replica.ID},
		{writer, "A new writer was promoted. Restarting database as a reader."},
	}
	at := -1
	for _, w := range want {
		i := slices.IndexFunc(evs, func(e Event) bool { return e.Source == w.source && e.Message == w.message })
		if i < 0 || i < at {
			t.Errorf("event %q of %s missing or out of order in %+v", w.message, w.source, evs)
		}
		at = i
	}
	// The new instance is Serverless v2: its capacity is estimated within the
	// cluster's range; the old writer, a reader now, reports its replica lag.
	testutil.Eventually(t, 20*time.Second, "the serverless instance's capacity and the old writer's lag", func() bool {
		ms, err := mon.Metrics(ctx, []string{writer, replica.ID}, start, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		acu, ok := metricOf(ms, replica.ID, "ServerlessDatabaseCapacity")
		util, ok2 := metricOf(ms, replica.ID, "ACUUtilization")
		lag, ok3 := metricOf(ms, writer, "AuroraReplicaLag")
		if !ok || !ok2 || !ok3 || len(acu.Values) == 0 || len(util.Values) == 0 || len(lag.Values) == 0 {
			return false
		}
		if slices.Min(acu.Values) < DefaultMinACU || slices.Max(acu.Values) > DefaultMaxACU || !acu.Emulated || !strings.Contains(acu.Note, "estimated") {
			t.Fatalf("capacity %v (emulated %v, %q) outside [%v, %v]", acu.Values, acu.Emulated, acu.Note, DefaultMinACU, DefaultMaxACU)
		}
		if _, provisioned := metricOf(ms, writer, "ServerlessDatabaseCapacity"); provisioned {
			if m, _ := metricOf(ms, writer, "ServerlessDatabaseCapacity"); len(m.Values) > 0 {
				t.Fatalf("the provisioned instance has a capacity series %v", m.Values)
			}
		}
		return true
	})
	for _, c := range s.Calls() {
		if (c.Action == "GetMetricData" || c.Action == "DescribeEvents") && c.Status != 200 {
			t.Errorf("call %+v", c)
		}
	}
}

// A run goes on without CloudWatch or DescribeEvents: each denied call is a
// PermissionError naming the IAM action.
func TestMonitorAccessDenied(t *testing.T) {
	tests := []struct {
		name, action string
		call         func(*Monitor) error
	}{
		{"GetMetricData", "cloudwatch:GetMetricData", func(m *Monitor) error {
			_, err := m.Metrics(t.Context(), []string{"rehearse-demo-instance-1"}, time.Now().Add(-time.Minute), time.Now())
			return err
		}},
		{"DescribeEvents", "rds:DescribeEvents", func(m *Monitor) error {
			_, err := m.Events(t.Context(), []string{"rehearse-demo-instance-1"}, time.Now().Add(-time.Minute), time.Now())
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := memProvider(t, emulator.Options{Faults: emulator.Faults{Deny: []string{tt.name}}}, nil)
			err := tt.call(p.Monitor())
			var pe *PermissionError
			if !errors.As(err, &pe) || pe.Action != tt.action || !errors.Is(err, ErrAccessDenied) {
				t.Fatalf("error %v, want a PermissionError for %s", err, tt.action)
			}
		})
	}
}

// Throttled CloudWatch calls are retried by the SDK's standard retryer, as the
// Query-compatible error header tells it.
func TestMonitorThrottlingRetried(t *testing.T) {
	p, s := memProvider(t, emulator.Options{Faults: emulator.Faults{Throttle: map[string]int{"GetMetricData": 2}}}, nil)
	if _, err := p.Monitor().Metrics(t.Context(), []string{"rehearse-demo-instance-1"}, time.Now().Add(-time.Minute), time.Now()); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range s.Calls() {
		if c.Action == "GetMetricData" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d GetMetricData calls, want 2 throttled and 1 answered", n)
	}
}
