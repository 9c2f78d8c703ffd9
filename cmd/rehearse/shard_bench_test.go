//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/local"
	"github.com/rehearse-dev/rehearse/result"
)

// benchDuration is the load's length in BenchmarkFourShards (-args -shard-duration
// is not worth a flag: edit it for a longer measurement).
const benchDuration = "20s"

// BenchmarkFourShards is four local shard processes of 250,000 sessions each at
// 2,000 actions/s in all (constant arrivals), against one PostgreSQL the
// benchmark starts, merged. Targets: the merged achieved rate within 1 % of 2,000/s
// and the merged schedule lag p99 under 5 ms. It reports both, the shards' peak
// resident memory, and the merge's wall time.
//
//	go test -run '^$' -bench FourShards -benchtime 1x ./cmd/rehearse
func BenchmarkFourShards(b *testing.B) {
	testutil.RequireTool(b, "initdb", "the PostgreSQL server, Debian package postgresql")
	bin := buildRehearse(b)
	ctx := context.Background()
	pg, err := local.FindBinaries(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		b.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		b.Fatal(err)
	}
	node, err := local.InitPrimary(ctx, local.Config{Dir: dir, Name: "bench", Bin: pg, Fsync: false, MaxConnections: 200})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = node.Close(context.Background()) })
	sc := filepath.Join(dir, "four.yaml")
	if err := os.WriteFile(sc, []byte(fmt.Sprintf(`name: four-shards
workload:
  name: banking
  customers: 10000
load:
  model: open
  arrival: constant
  sessions: 1000000
  rate: 2000
  duration: %s
  pool_size: 16
target:
  dsn: %s
slo:
  max_lost_writes: 0
`, benchDuration, node.DSN(local.Database))), 0o644); err != nil {
		b.Fatal(err)
	}
	for i := 0; b.Loop(); i++ {
		run := filepath.Join(dir, fmt.Sprintf("run%d", i))
		outs := make([]string, 4)
		rss := make([]int64, 4)
		var wg sync.WaitGroup
		for s := range 4 {
			outs[s] = filepath.Join(run, fmt.Sprintf("shard-%d", s))
			wg.Go(func() {
				cmd := exec.CommandContext(ctx, bin, "run", sc, "--shard", fmt.Sprintf("%d/4", s), "--out", outs[s], "--quiet")
				cmd.Env = shardEnv()
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Errorf("shard %d: %v\n%s", s, err, out)
				}
				if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
					rss[s] = ru.Maxrss * 1024
				}
			})
		}
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
		mstart := time.Now()
		merged := filepath.Join(run, "merged")
		cmd := exec.CommandContext(ctx, bin, "report", "merge", run, "--out", merged)
		cmd.Env = shardEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitSLO {
				b.Fatalf("merge: %v\n%s", err, out)
			}
		}
		mergeWall := time.Since(mstart)
		res, err := result.ReadFile(filepath.Join(merged, "result.json"))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.Load.AchievedRate, "achieved/s")
		b.ReportMetric(100*(res.Load.AchievedRate/res.Load.TargetRate-1), "deviation-%")
		b.ReportMetric(res.Load.ScheduleLagP99Ms, "lag-p99-ms")
		var maxRSS int64
		for _, r := range rss {
			maxRSS = max(maxRSS, r)
		}
		b.ReportMetric(float64(maxRSS)/(1<<20), "shard-max-RSS-MiB")
		b.ReportMetric(mergeWall.Seconds(), "merge-s")
		b.Logf("run %d: %d sessions, %.1f/s of %.1f/s, lag p99 %.3f ms (max %.3f), shards' RSS %s MiB, merge %v",
			i, res.Load.Sessions, res.Load.AchievedRate, res.Load.TargetRate, res.Load.ScheduleLagP99Ms, res.Load.ScheduleLagMaxMs,
			mib(rss), mergeWall.Round(time.Millisecond))
	}
}

func mib(v []int64) string {
	s := ""
	for i, x := range v {
		if i > 0 {
			s += "/"
		}
		s += strconv.FormatInt(x>>20, 10)
	}
	return s
}
