package replay

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"
)

var memSize = flag.Int64("capture-mem", 0,
	"TestCaptureMemory: replay a synthetic capture of this many bytes (e.g. 1073741824) and check the process stays under 200 MB RSS")

// The parse-and-schedule throughput: both passes over a synthetic capture (Open,
// then the schedule drained as the load generator and its workers take it),
// reported in captured statements per second.
func BenchmarkParseSchedule(b *testing.B) {
	path := filepath.Join(b.TempDir(), "capture.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	stmts, err := synthCapture(f, 64<<20)
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		w, err := Open(context.Background(), Config{Capture: path})
		if err != nil {
			b.Fatal(err)
		}
		if w.Statements() != stmts {
			b.Fatalf("%d statements, the generator wrote %d", w.Statements(), stmts)
		}
		drainQuiet(b, w)
	}
	n := float64(stmts) * float64(b.N)
	b.ReportMetric(n/b.Elapsed().Seconds(), "stmts/s")
	// Per second of the process's CPU time (the garbage collector's included),
	// which other processes on the machine do not change as they do wall time.
	b.ReportMetric(n/(cpuTime(b)-cpu0).Seconds(), "stmts/cpu-s")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// drainQuiet takes every arrival as drain does, keeping nothing.
func drainQuiet(tb testing.TB, w *Workload) (n int64) {
	a, err := w.Arrivals(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	defer a.Close()
	q := w.active.Load()
	for {
		s, _, ok := a.Next()
		if !ok {
			break
		}
		q.done(s, q.pop(s))
		n++
	}
	if err := a.Err(); err != nil {
		tb.Fatal(err)
	}
	return n
}

// The replay's memory does not grow with the capture: reading and scheduling a
// capture of -capture-mem bytes keeps the process's peak RSS under 200 MB. The
// process measures itself: getrusage's peak resident set, and the Go heap
// sampled as the schedule is drained.
func TestCaptureMemory(t *testing.T) {
	if *memSize == 0 {
		t.Skip("measure a 1 GB capture with: go test ./workload/replay -run TestCaptureMemory -v -args -capture-mem=1073741824")
	}
	path := filepath.Join(t.TempDir(), "capture.csv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	stmts, err := synthCapture(f, *memSize)
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	runtime.GC()
	var peakHeap uint64
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		peakHeap = max(peakHeap, m.HeapInuse)
	}
	w, err := Open(context.Background(), Config{Capture: path})
	if err != nil {
		t.Fatal(err)
	}
	sample()
	a, err := w.Arrivals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	q := w.active.Load()
	var n int64
	for {
		s, _, ok := a.Next()
		if !ok {
			break
		}
		q.done(s, q.pop(s))
		if n++; n%200_000 == 0 {
			sample()
		}
	}
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	sample()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	rss := ru.Maxrss * 1024 // kilobytes on Linux
	t.Logf("capture %d MB, %d statements, %d sessions, %d fingerprints: peak RSS %d MB, peak Go heap in use %d MB",
		st.Size()>>20, stmts, w.Sessions(), w.Summary().Fingerprints, rss>>20, peakHeap>>20)
	if n != stmts+w.Summary().SessionEnds {
		t.Errorf("%d arrivals, want %d", n, stmts+w.Summary().SessionEnds)
	}
	if rss > 200<<20 {
		t.Errorf("peak RSS %d MB, over 200 MB", rss>>20)
	}
}
