//go:build unix

package rehearse

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/internal/merge/mergetest"
)

// BenchmarkMerge16Shards1Hour is `rehearse report merge` of 16 shards of a 1-hour
// run at 2,000 operations/s in all (8 operations): reading 16 latency.hlog files
// of 28,800 intervals each, the histograms and series, merging, and writing
// result.json, report.md, report.html and latency.hlog. Target: < 10 s. It also
// reports the CPU time per merge, which a loaded machine does not inflate.
//
//	go test -run '^$' -bench Merge16Shards1Hour -benchtime 3x .
func BenchmarkMerge16Shards1Hour(b *testing.B) {
	dir := b.TempDir()
	ops := []string{"login", "balance", "statement", "transfer", "deposit", "logout", "dashboard", "background_job"}
	dirs, _, err := mergetest.Write(dir, mergetest.Config{Shards: 16, Seconds: 3600, Rate: 2000, Ops: ops, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var bytes int64
	for _, d := range dirs {
		st, _ := os.Stat(filepath.Join(d, HlogFile))
		bytes += st.Size()
	}
	b.ReportMetric(float64(bytes)/(1<<20), "hlog-MiB")
	cpu0 := cpuTime()
	i := 0
	for b.Loop() {
		out := filepath.Join(dir, fmt.Sprintf("merged-%d", i))
		i++
		res, err := Merge(context.Background(), dirs, out)
		if err != nil && res == nil {
			b.Fatal(err)
		}
		if res.Shards != 16 {
			b.Fatalf("merged %d shards", res.Shards)
		}
	}
	// CPU time is what a shared machine's load does not inflate.
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(i), "cpu-s/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
