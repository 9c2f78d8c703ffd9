package merge

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rehearse-dev/rehearse/internal/merge/mergetest"
	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/result"
)

// The merge's percentiles are those of one histogram of all the samples, per
// operation, per second of the timeline and in the merged latency.hlog, not an
// average of the shards' percentiles.
func TestMergeIsExact(t *testing.T) {
	ops := []string{"balance", "transfer", "login"}
	dirs, truth, err := mergetest.Write(t.TempDir(), mergetest.Config{Shards: 4, Seconds: 20, Rate: 800, Ops: ops, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	shards, err := Read(dirs)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Merge(shards)
	if err != nil {
		t.Fatal(err)
	}
	res := m.Result
	if res.Shards != 4 || res.Incomplete || res.Totals.Transactions != truth.Transactions {
		t.Fatalf("shards %d, incomplete %v, %d transactions (want %d)", res.Shards, res.Incomplete, res.Totals.Transactions, truth.Transactions)
	}
	// An average of the shards' p99s is not the run's p99: the test would not
	// tell the two apart if it were.
	var avg float64
	for _, s := range shards {
		avg += s.Result.Operations[1].LatencyMs.P99 / float64(len(shards))
	}
	want := loadgen.LatencyOf(truth.PerOp["transfer"])
	if avg == want.P99 {
		t.Fatalf("the shards' mean p99 equals the run's (%v): pick another seed", avg)
	}
	for _, o := range res.Operations {
		if got, want := o.LatencyMs, loadgen.LatencyOf(truth.PerOp[o.Name]); got != want {
			t.Errorf("%s latency %+v, one histogram of every sample says %+v", o.Name, got, want)
		}
		if got, want := o.Phases[result.PhaseBefore].LatencyMs, loadgen.LatencyOf(truth.PerOp[o.Name]); got != want {
			t.Errorf("%s before-phase latency %+v, want %+v", o.Name, got, want)
		}
	}
	if len(res.Timeline) != len(truth.PerSecond) {
		t.Fatalf("%d timeline rows, want %d", len(res.Timeline), len(truth.PerSecond))
	}
	for i, row := range res.Timeline {
		h := truth.PerSecond[i]
		if row.P50Ms != loadgen.Ms(h.ValueAtQuantile(50)) || row.P99Ms != loadgen.Ms(h.ValueAtQuantile(99)) || row.MaxMs != loadgen.Ms(h.Max()) || row.Ops != h.TotalCount() {
			t.Errorf("second %d: %d ops p50 %v p99 %v max %v; want %d, %v, %v, %v", i, row.Ops, row.P50Ms, row.P99Ms, row.MaxMs,
				h.TotalCount(), loadgen.Ms(h.ValueAtQuantile(50)), loadgen.Ms(h.ValueAtQuantile(99)), loadgen.Ms(h.Max()))
		}
	}
	// The merged latency.hlog holds the same samples, per operation.
	var buf bytes.Buffer
	if err := m.Write(&buf); err != nil {
		t.Fatal(err)
	}
	perOp := map[string]*hdr.Histogram{}
	if err := result.ReadHlog(&buf, func(iv result.Interval) error {
		if perOp[iv.Tag] == nil {
			perOp[iv.Tag] = loadgen.NewHistogram()
		}
		return iv.Into(perOp[iv.Tag])
	}); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if !perOp[op].Equals(truth.PerOp[op]) {
			t.Errorf("the merged latency.hlog's %s differs from all the samples' histogram", op)
		}
	}
	if res.SLO.Checks == nil {
		t.Error("the SLOs were not evaluated")
	}
}

// Shards missing from the merge leave it incomplete, saying which; the
// coordinator's missing drops what only it knows.
func TestMergeIncomplete(t *testing.T) {
	dirs, _, err := mergetest.Write(t.TempDir(), mergetest.Config{Shards: 3, Seconds: 3, Rate: 300, Ops: []string{"a"}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	shards, err := Read([]string{dirs[0], dirs[2]})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Merge(shards)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Result
	if !r.Incomplete || r.Shards != 2 || len(r.Sharding.Missing) != 1 || r.Sharding.Missing[0].Index != 1 {
		t.Errorf("incomplete %v, shards %d, missing %+v", r.Incomplete, r.Shards, r.Sharding.Missing)
	}
	shards, err = Read(dirs[1:])
	if err != nil {
		t.Fatal(err)
	}
	if m, err = Merge(shards); err != nil {
		t.Fatal(err)
	}
	if r := m.Result; !r.Incomplete || r.Integrity.Checked || r.Migration != nil {
		t.Errorf("without the coordinator: incomplete %v, integrity %+v", r.Incomplete, r.Integrity)
	}
}

func TestExpand(t *testing.T) {
	root := t.TempDir()
	dirs, _, err := mergetest.Write(root, mergetest.Config{Shards: 2, Seconds: 1, Rate: 10, Ops: []string{"a"}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "merged")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := Expand([]string{root}, out)
	if err != nil || len(got) != 2 || got[0] != dirs[0] || got[1] != dirs[1] {
		t.Errorf("Expand(run directory) = %v, %v", got, err)
	}
	if _, err := Expand([]string{out}, ""); !errors.Is(err, ErrMismatch) {
		t.Errorf("an empty directory: %v", err)
	}
}

// A merge started alongside the shards waits for their results: every shard's,
// or, past its time, those present.
func TestAwait(t *testing.T) {
	root := t.TempDir()
	run := filepath.Join(root, "results")
	dirs, _, err := mergetest.Write(run, mergetest.Config{Shards: 3, Seconds: 1, Rate: 30, Ops: []string{"a"}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	aside := filepath.Join(root, "aside")
	if err := os.Rename(dirs[2], aside); err != nil {
		t.Fatal(err)
	}
	got, err := Await(t.Context(), []string{run}, filepath.Join(run, "merged"), 50*time.Millisecond, nil)
	if err != nil || len(got) != 2 {
		t.Fatalf("past the wait: %v, %v", got, err)
	}
	done := make(chan []string)
	go func() {
		got, err := Await(t.Context(), []string{run}, filepath.Join(run, "merged"), time.Minute, nil)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	if err := os.Rename(aside, dirs[2]); err != nil {
		t.Fatal(err)
	}
	if got := <-done; len(got) != 3 {
		t.Errorf("Await returned %v", got)
	}
	if _, err := Await(t.Context(), []string{filepath.Join(root, "none")}, "", 10*time.Millisecond, nil); err == nil {
		t.Error("no shard at all is no error")
	}
}
