package telemetry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/migrate/local"
	"github.com/rehearse-dev/rehearse/result"
)

// benchOps are the banking workload's operations.
var benchOps = []string{"login", "balance", "statement", "transfer", "deposit", "logout", "dashboard", "background_job"}

// intervalHist is one operation's second at 2,000 actions/s spread over 8
// operations: 250 latencies around a few milliseconds.
func intervalHist(r *rand.Rand) *hdr.Histogram {
	h := hdr.New(int64(time.Microsecond), int64(time.Hour), 3)
	for range 250 {
		_ = h.RecordValue(int64(500*time.Microsecond) + r.Int64N(int64(20*time.Millisecond)))
	}
	return h
}

// hourSummary is the recorder's summary an hour into a run.
func hourSummary() loadgen.Summary {
	var s loadgen.Summary
	for _, op := range benchOps {
		s.Operations = append(s.Operations, result.Operation{Name: op, Phases: map[string]result.Phase{
			"before": {Count: 1e6}, "during": {Count: 1e4, Errors: 10}, "after": {Count: 1e6}}})
	}
	for _, c := range []string{"connection_refused", "connection_reset", "read_only", "admin_shutdown", "serialization"} {
		s.Errors = append(s.Errors, result.ErrorClass{Class: c, Count: 100, Phases: map[string]int64{"during": 90, "after": 10}})
	}
	s.Timeline = make([]result.TimelineRow, 3600)
	return s
}

// The recorder's interval sink, per operation and second: merging one second's
// histogram into the run's.
func BenchmarkIntervalMerge(b *testing.B) {
	m := NewMetrics(RunInfo{})
	h := intervalHist(rand.New(rand.NewPCG(1, 2)))
	b.ReportAllocs()
	for b.Loop() {
		m.Interval("transfer", h)
	}
}

// A scrape of /metrics's content (the HTTP server aside) an hour into a run with 8
// operations and a database of 3 nodes, which reads the snapshot ("scrape"), and
// the background refresh of the snapshot after a flush ("refresh": the buckets of
// the histograms; the recorder is a stand-in, its own Summary is loadgen's cost).
func BenchmarkScrape(b *testing.B) {
	setup := func(b *testing.B) (*Metrics, *hdr.Histogram) {
		m := NewMetrics(RunInfo{Scenario: "bench"})
		m.AttachLoad(&fakeRecorder{sum: hourSummary()}, func() time.Duration { return time.Hour }, nil)
		b.Cleanup(m.Close)
		r := rand.New(rand.NewPCG(1, 2))
		for _, op := range benchOps {
			for range 60 {
				m.Interval(op, intervalHist(r))
			}
		}
		for _, node := range []string{"node1", "node2", "node3"} {
			for metric := range dbGauges {
				m.Database(metric, node, RoleReader, 1)
			}
		}
		if _, err := m.Registry().Gather(); err != nil {
			b.Fatal(err)
		}
		return m, intervalHist(r)
	}
	b.Run("scrape", func(b *testing.B) {
		m, _ := setup(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.Registry().Gather(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("refresh", func(b *testing.B) {
		m, h := setup(b)
		b.ReportAllocs()
		for b.Loop() {
			for _, op := range benchOps {
				m.Interval(op, h)
			}
			m.load.refresh(-1)
		}
	})
}

// One sample of a real PostgreSQL node: its server statistics over SQL and its
// processes from /proc, as the sampler takes every sample_interval.
func BenchmarkSampleLocalNode(b *testing.B) {
	testutil.RequireTool(b, "initdb", "the PostgreSQL server, Debian package postgresql")
	bin, err := local.FindBinaries(b.Context(), "")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		b.Fatal(err)
	}
	n, err := local.InitPrimary(b.Context(), local.Config{Name: "node1", Dir: dir, Bin: bin, MaxConnections: 40, SharedBuffers: "16MB", Log: &testutil.SyncBuffer{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Close(context.Background()) })
	node := Node{Name: "node1", Writer: true, DSN: n.DSN("postgres"), PID: n.PID()}
	start := time.Now()
	s := NewSampler(SamplerConfig{Nodes: staticNodes{node}, Interval: time.Second, Since: func() time.Duration { return time.Since(start) }})
	defer s.closeConns()
	s.sample(b.Context()) // connects
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		s.sample(b.Context())
	}
	// Most of a sample is waiting for the server: what it costs this process is
	// its CPU time.
	b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	if db := s.Database(-1); len(db.Missing) > 0 {
		b.Fatal(fmt.Sprint(db.Missing))
	}
}

// cpuTime is the CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// staticNodes is a cluster that does not change.
type staticNodes []Node

func (s staticNodes) Nodes(context.Context) ([]Node, error) { return s, nil }
