// Package mergetest writes synthetic shard output directories, as `rehearse run
// --shard` writes them, for the merge's tests and benchmarks: every latency sample
// is drawn from a seeded stream, and the histograms of all the samples together
// are returned, to compare a merge with.
package mergetest

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/result"
)

// Config sizes the synthetic run.
type Config struct {
	Shards  int
	Seconds int
	// Rate is the run's operations per second, over all shards and operations.
	Rate float64
	Ops  []string
	Seed uint64
}

// Truth is what one histogram of all the run's samples says.
type Truth struct {
	// PerOp is each operation's latency histogram over the run (nanoseconds).
	PerOp map[string]*hdr.Histogram
	// PerSecond is every operation's latency in each second of the run.
	PerSecond []*hdr.Histogram
	// Transactions is how many samples there are.
	Transactions int64
}

// Scenario is the scenario file every synthetic shard ran.
const Scenario = "name: synthetic\nslo:\n  latency:\n    - {op: \"*\", percentile: 99, max: 1s}\n"

// Write writes cfg.Shards shard directories under dir (shard-0 …) and returns
// them with the truth about their samples.
func Write(dir string, cfg Config) ([]string, *Truth, error) {
	truth := &Truth{PerOp: map[string]*hdr.Histogram{}}
	for _, op := range cfg.Ops {
		truth.PerOp[op] = loadgen.NewHistogram()
	}
	for range cfg.Seconds {
		truth.PerSecond = append(truth.PerSecond, loadgen.NewHistogram())
	}
	sc, err := scenarioSHA()
	if err != nil {
		return nil, nil, err
	}
	start := time.UnixMilli(1_780_000_000_000)
	var dirs []string
	for s := range cfg.Shards {
		d := filepath.Join(dir, fmt.Sprintf("shard-%d", s))
		if err := writeShard(d, s, cfg, start, sc, truth); err != nil {
			return nil, nil, err
		}
		dirs = append(dirs, d)
	}
	return dirs, truth, nil
}

// scenarioSHA is the digest of Scenario's bytes, as scenarios.Parse computes it.
func scenarioSHA() (string, error) {
	sum := sha256.Sum256([]byte(Scenario))
	return hex.EncodeToString(sum[:]), nil
}

func writeShard(dir string, idx int, cfg Config, start time.Time, sha string, truth *Truth) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rnd := rand.New(rand.NewPCG(cfg.Seed, uint64(idx)+1))
	perOpRate := cfg.Rate / float64(cfg.Shards) / float64(len(cfg.Ops))
	res := &result.Result{
		Schema: result.SchemaV1, Mode: "dry",
		Scenario:  result.ScenarioInfo{Name: "synthetic", File: "synthetic.yaml", SHA256: sha},
		Target:    result.TargetInfo{Kind: "local", EndpointMode: "direct"},
		StartedAt: start.UTC(), EndedAt: start.Add(time.Duration(cfg.Seconds) * time.Second).UTC(),
		DurationS: float64(cfg.Seconds),
		Load: result.LoadInfo{Model: "open", Sessions: 1000, TargetRate: cfg.Rate / float64(cfg.Shards),
			PoolSize: 8, Workers: 16},
		Shard:     &result.ShardInfo{RunID: "synthetic-run", Index: idx, Count: cfg.Shards, Seed: uint64(idx)},
		Integrity: result.Integrity{Checked: idx == 0, BalanceConserved: true},
		Errors:    []result.ErrorClass{},
	}
	whole := map[string]*hdr.Histogram{}
	for _, op := range cfg.Ops {
		whole[op] = loadgen.NewHistogram()
	}
	lag := loadgen.NewHistogram()
	series := &result.AvailabilitySeries{}
	series.Read.Attempts = make([]uint8, cfg.Seconds*1000)
	series.Read.Successes = make([]uint8, cfg.Seconds*1000)
	hf, err := os.Create(filepath.Join(dir, "latency.hlog"))
	if err != nil {
		return err
	}
	defer hf.Close()
	bw := bufio.NewWriterSize(hf, 1<<16)
	hw, err := result.NewHlogWriter(bw, start)
	if err != nil {
		return err
	}
	iv := loadgen.NewHistogram()
	packed := loadgen.NewPacked()
	var total int64
	counts := map[string]int64{}
	for sec := range cfg.Seconds {
		row := result.TimelineRow{TS: float64(sec), PerOp: map[string]int64{}}
		for _, op := range cfg.Ops {
			iv.Reset()
			n := poisson(rnd, perOpRate)
			for range n {
				// Lognormal around 2 ms with a long tail.
				v := int64(math.Exp(rnd.NormFloat64()*0.8) * 2e6)
				v = min(max(v, 1000), int64(time.Hour))
				_ = iv.RecordValue(v)
				_ = whole[op].RecordValue(v)
				_ = truth.PerOp[op].RecordValue(v)
				_ = truth.PerSecond[sec].RecordValue(v)
				_ = lag.RecordValue(1000 + int64(rnd.IntN(100000)))
				ms := sec*1000 + rnd.IntN(1000)
				series.Read.Attempts[ms] = min(series.Read.Attempts[ms]+1, 255)
				series.Read.Successes[ms] = min(series.Read.Successes[ms]+1, 255)
			}
			if n > 0 {
				from := start.UnixMilli() + int64(sec)*1000
				packed.Reset()
				packed.MergeFrom(iv)
				if err := hw.WritePackedInterval(op, from, from+1000, packed); err != nil {
					return err
				}
			}
			row.PerOp[op] = int64(n)
			row.Ops += int64(n)
			counts[op] += int64(n)
		}
		total += row.Ops
		res.Timeline = append(res.Timeline, row)
	}
	truth.Transactions += total
	res.Totals = result.Totals{Transactions: total, Succeeded: total, Attempts: total}
	res.Load.Arrivals = total
	res.Load.AchievedRate = float64(total) / float64(cfg.Seconds)
	for _, op := range cfg.Ops {
		res.Operations = append(res.Operations, result.Operation{Name: op, Kind: "read", Count: counts[op],
			LatencyMs: loadgen.LatencyOf(whole[op]), Phases: map[string]result.Phase{result.PhaseBefore: {Count: counts[op], LatencyMs: loadgen.LatencyOf(whole[op])}}})
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := hf.Close(); err != nil {
		return err
	}
	err = result.WriteFileAtomic(filepath.Join(dir, result.HistogramsFile), func(w io.Writer) error {
		hw, err := result.NewHlogWriter(w, start)
		if err != nil {
			return err
		}
		end := start.Add(time.Duration(cfg.Seconds) * time.Second)
		if err := hw.WriteInterval(result.TagLag, start, end, lag); err != nil {
			return err
		}
		for _, op := range cfg.Ops {
			for _, tag := range []string{result.TagLatency, result.TagService, result.PhaseBefore} {
				if err := hw.WriteInterval(tag+":"+op, start, end, whole[op]); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := result.WriteFileAtomic(filepath.Join(dir, result.SeriesFile), func(w io.Writer) error { return result.WriteSeries(w, series) }); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, result.ScenarioFile), []byte(Scenario), 0o644); err != nil {
		return err
	}
	return result.WriteFileAtomic(filepath.Join(dir, "result.json"), func(w io.Writer) error { return result.Encode(w, res) })
}

// poisson draws a Poisson count of mean m (Knuth's method for small means, a
// normal approximation above).
func poisson(r *rand.Rand, m float64) int {
	if m > 30 {
		return max(0, int(math.Round(m+math.Sqrt(m)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-m), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
