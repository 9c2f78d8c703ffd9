package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/result"
)

// buildRehearse builds the rehearse binary once per test binary.
var built struct {
	once sync.Once
	path string
	out  []byte
	err  error
}

func buildRehearse(t testing.TB) string {
	t.Helper()
	goTool := testutil.RequireTool(t, "go", "the Go toolchain")
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "rehearse-bin-")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "rehearse")
		cmd := exec.Command(goTool, "build", "-o", built.path, ".")
		built.out, built.err = cmd.CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("go build: %v\n%s", built.err, built.out)
	}
	return built.path
}

// shardEnv is the environment without any shard variables of the test's own.
func shardEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "JOB_COMPLETION_INDEX=") || strings.HasPrefix(kv, "REHEARSE_SHARDS=") || strings.HasPrefix(kv, "TMPDIR=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

type procRun struct {
	code     int
	out, err string
}

// runShards runs n processes of the binary at once, shard i with exactly the
// environment an Indexed Job gives pod i (JOB_COMPLETION_INDEX, REHEARSE_SHARDS),
// and waits for them all.
func runShards(t *testing.T, bin string, n int, tmp string, args func(i int) []string) []procRun {
	t.Helper()
	out := make([]procRun, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args(i)...)
			cmd.Env = shardEnv(fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i), fmt.Sprintf("REHEARSE_SHARDS=%d", n), "TMPDIR="+tmp)
			var so, se bytes.Buffer
			cmd.Stdout, cmd.Stderr = &so, &se
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				code = -1
				se.WriteString(err.Error())
			}
			out[i] = procRun{code, so.String(), se.String()}
		})
	}
	wg.Wait()
	return out
}

// The acceptance run: three processes of the binary, each with the
// environment an Indexed Job gives its pods, against one embedded cluster that
// shard 0 starts, through a wet cutover; then `report merge`. The merged totals
// are the shards' sums, its cutover and integrity are the coordinator's, and the
// integrity check covers every shard's acknowledged writes.
func TestThreeShardsThroughAWetCutover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and three rehearse processes")
	}
	testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
	bin := buildRehearse(t)
	dir := t.TempDir()
	// The postgres OS user must reach the work directory.
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	sc := filepath.Join(dir, "sharded.yaml")
	if err := os.WriteFile(sc, []byte(`name: sharded
workload:
  customers: 2000
target:
  fsync: false
  dns_ttl: 1s
load:
  sessions: 600
  rate: 150
  duration: 8s
  pool_size: 4
cutover:
  enabled: true
  warmup: 3s
  soak: 1s
  dns_propagation: 1s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	outs := []string{filepath.Join(dir, "shard-0"), filepath.Join(dir, "shard-1"), filepath.Join(dir, "shard-2")}
	runs := runShards(t, bin, 3, tmp, func(i int) []string {
		return []string{"run", sc, "--mode", "wet", "--out", outs[i]}
	})
	for i, r := range runs {
		if r.code != 0 {
			t.Fatalf("shard %d: exit %d\nstdout:\n%s\nstderr:\n%s", i, r.code, r.out, r.err)
		}
		if !strings.Contains(r.out, fmt.Sprintf("shard %d/3 of run", i)) {
			t.Errorf("shard %d's summary does not say which shard it is:\n%s", i, r.out)
		}
	}
	shards := make([]*result.Result, 3)
	for i, o := range outs {
		shards[i] = readResult(t, o)
	}
	merged := filepath.Join(dir, "merged")
	m := cli(t, t.Context(), "report", "merge", outs[0], outs[1], outs[2], "--out", merged)
	if m.code != 0 {
		t.Fatalf("merge: exit %d\n%s\n%s", m.code, m.out, m.err)
	}
	res := readResult(t, merged)
	checkMerged(t, res, shards)
	for _, f := range []string{"latency.hlog", "report.md", "report.html"} {
		if st, err := os.Stat(filepath.Join(merged, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", f, err)
		}
	}
	// Nothing is left running: the coordinator's cluster is gone, and so is its
	// rendezvous file.
	if ents, _ := filepath.Glob(filepath.Join(outs[0], "pg", "node*", "PG_VERSION")); len(ents) != 0 {
		t.Errorf("data directories left behind: %v", ents)
	}
	if ents, _ := filepath.Glob(filepath.Join(tmp, "rehearse-shards-*")); len(ents) != 0 {
		t.Errorf("rendezvous files left behind: %v", ents)
	}
}

func checkMerged(t *testing.T, res *result.Result, shards []*result.Result) {
	t.Helper()
	coord := shards[0]
	if res.Schema != result.SchemaV1 || res.Shards != 3 || res.Incomplete || res.Shard != nil {
		t.Errorf("schema %q, shards %d, incomplete %v, shard %+v", res.Schema, res.Shards, res.Incomplete, res.Shard)
	}
	var sessions int
	var totals result.Totals
	var acked, arrivals int64
	for i, s := range shards {
		if s.Shard == nil || s.Shard.Index != i || s.Shard.Count != 3 || s.Shard.RunID != coord.Shard.RunID {
			t.Fatalf("shard %d's result says %+v", i, s.Shard)
		}
		if !reflect.DeepEqual(s.Shard.Phases, coord.Shard.Phases) {
			t.Errorf("shard %d's phases %v differ from the coordinator's %v", i, s.Shard.Phases, coord.Shard.Phases)
		}
		sessions += s.Load.Sessions
		arrivals += s.Load.Arrivals
		totals.Transactions += s.Totals.Transactions
		totals.Succeeded += s.Totals.Succeeded
		totals.Failed += s.Totals.Failed
		totals.Ambiguous += s.Totals.Ambiguous
		totals.Attempts += s.Totals.Attempts
		totals.Retries += s.Totals.Retries
		totals.FailedAttempts += s.Totals.FailedAttempts
		acked += s.Shard.AcknowledgedWrites
		if s.Shard.AcknowledgedWrites == 0 {
			t.Errorf("shard %d saw no acknowledged writes", i)
		}
	}
	if res.Load.Sessions != sessions || sessions != 600 {
		t.Errorf("load.sessions %d, the shards' sum %d (want 600)", res.Load.Sessions, sessions)
	}
	if res.Totals != totals {
		t.Errorf("totals %+v, the shards' sum %+v", res.Totals, totals)
	}
	if res.Load.Arrivals != arrivals {
		t.Errorf("arrivals %d, the shards' sum %d", res.Load.Arrivals, arrivals)
	}
	var ops int64
	for _, row := range res.Timeline {
		ops += row.Ops
	}
	if ops != res.Totals.Transactions {
		t.Errorf("the timeline holds %d operations, the totals %d", ops, res.Totals.Transactions)
	}
	var opCount int64
	for _, o := range res.Operations {
		opCount += o.Count
	}
	if opCount != res.Totals.Transactions {
		t.Errorf("the operations count %d, the totals %d", opCount, res.Totals.Transactions)
	}
	if !reflect.DeepEqual(res.Migration, coord.Migration) || res.Migration == nil || res.Migration.Outcome != "completed" {
		t.Errorf("migration is not the coordinator's completed cutover: %+v", res.Migration)
	}
	if !reflect.DeepEqual(res.Integrity, coord.Integrity) {
		t.Errorf("integrity %+v is not the coordinator's %+v", res.Integrity, coord.Integrity)
	}
	in := res.Integrity
	if !in.Checked || !in.BalanceConserved || in.LostAcknowledgedWrites != 0 {
		t.Errorf("integrity %+v", in)
	}
	// The coordinator's check covered every shard's writes, not only its own.
	if in.AcknowledgedWrites != acked {
		t.Errorf("the integrity check covered %d acknowledged writes, the shards saw %d", in.AcknowledgedWrites, acked)
	}
	if !res.SLO.Passed && len(res.SLO.Checks) == 0 {
		t.Error("no SLO verdict on the merged result")
	}
}

// shardDB is a database of its own on the package's shared server, for runs that
// coordinate through a DSN target.
func shardDB(t *testing.T) string {
	t.Helper()
	base := sharedDSN(t)
	name := "shard_" + strings.ToLower(strings.NewReplacer("/", "_").Replace(t.Name()))
	conn, err := pgx.Connect(t.Context(), base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(base, "/rehearse", "/"+name, 1)
}

// dsnScenario is a short load against an existing database: shards coordinate
// through it.
func dsnScenario(t *testing.T, dsn string) string {
	t.Helper()
	return writeFile(t, "dsn.yaml", fmt.Sprintf(`name: sharded-dsn
workload:
  customers: 500
target:
  dsn: %s
load:
  sessions: 40
  rate: 40
  duration: 2s
  pool_size: 2
`, dsn))
}

// What a shard refuses before anything starts: a malformed or out-of-range
// --shard or environment (exit 2), a barrier timeout without a shard.
func TestShardInputRefused(t *testing.T) {
	sc := writeFile(t, "x.yaml", "name: x\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"out of range", []string{"--shard", "3/3"}, nil, "--shard 3/3: 3/3: the index must be from 0 to 2"},
		{"negative", []string{"--shard", "-1/3"}, nil, "the index must be from 0 to 2"},
		{"malformed", []string{"--shard", "two"}, nil, "--shard two: \"two\": write it as INDEX/COUNT"},
		{"no count", []string{"--shard", "1/0"}, nil, "the shard count must be at least 1"},
		{"environment out of range", nil, map[string]string{"JOB_COMPLETION_INDEX": "4", "REHEARSE_SHARDS": "3"}, "the index must be from 0 to 2"},
		{"environment without a count", nil, map[string]string{"JOB_COMPLETION_INDEX": "1"}, "REHEARSE_SHARDS is not"},
		{"barrier timeout without a shard", []string{"--barrier-timeout", "1m"}, nil, "only a sharded run waits at a barrier"},
		{"bad barrier timeout", []string{"--shard", "0/2", "--barrier-timeout", "soon"}, nil, "--barrier-timeout soon: must be a positive duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			r := cli(t, t.Context(), append([]string{"run", sc, "--quiet", "--out", filepath.Join(t.TempDir(), "o")}, tt.args...)...)
			if r.code != exitInput || !strings.Contains(r.err, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 saying %q", r.code, r.err, tt.want)
			}
		})
	}
}

// The barrier's refusals, with the shards coordinating through a DSN target: a
// count that differs from the run's and an index already taken are refused (exit
// 2); a shard that never arrives fails the coordinator (exit 1), named.
func TestShardBarrier(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
	dsn := shardDB(t)
	sc := dsnScenario(t, dsn)
	out := func(name string) string { return filepath.Join(t.TempDir(), name) }
	registered := func(idx int) bool {
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			return false
		}
		defer conn.Close(context.Background())
		var n int
		err = conn.QueryRow(t.Context(), `SELECT count(*) FROM rehearse_run.shards WHERE idx = $1`, idx).Scan(&n)
		return err == nil && n > 0
	}

	// The coordinator of two waits at the barrier while the wrong shards try.
	var coord run
	var wg sync.WaitGroup
	wg.Go(func() {
		coord = cli(t, t.Context(), "run", sc, "--shard", "0/2", "--barrier-timeout", "90s", "--quiet", "--out", out("c"))
	})
	testutil.Eventually(t, time.Minute, "the coordinator to open the run", func() bool { return registered(0) })
	mismatch := cli(t, t.Context(), "run", sc, "--shard", "1/3", "--barrier-timeout", "60s", "--quiet", "--out", out("m"))
	if mismatch.code != exitInput || !strings.Contains(mismatch.err, "started with 2 shards, this shard with 3") {
		t.Errorf("a shard of another count: exit %d, %q", mismatch.code, mismatch.err)
	}
	var first run
	wg.Go(func() { first = cli(t, t.Context(), "run", sc, "--shard", "1/2", "--quiet", "--out", out("f")) })
	testutil.Eventually(t, time.Minute, "shard 1 to register", func() bool { return registered(1) })
	dup := cli(t, t.Context(), "run", sc, "--shard", "1/2", "--quiet", "--out", out("d"))
	if dup.code != exitInput || !strings.Contains(dup.err, "already has a shard 1") {
		t.Errorf("a second shard 1: exit %d, %q", dup.code, dup.err)
	}
	wg.Wait()
	if coord.code != 0 || first.code != 0 {
		t.Fatalf("the run itself: coordinator exit %d %s; shard 1 exit %d %s", coord.code, coord.err, first.code, first.err)
	}

	// A coordinator alone gives up at the barrier, naming who did not come.
	alone := cli(t, t.Context(), "run", sc, "--shard", "0/3", "--barrier-timeout", "2s", "--quiet", "--out", out("a"))
	if alone.code != exitRuntime || !strings.Contains(alone.err, "shards 1, 2 of 3 did not arrive within --barrier-timeout 2s") {
		t.Errorf("a coordinator alone: exit %d, %q", alone.code, alone.err)
	}
}

// On an embedded target the shards meet at the coordinator's rendezvous file: a
// shard started with another count finds the coordinator there and is refused
// (exit 2), as the database's barrier refuses it.
func TestShardBarrierOnTheEmbeddedTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
	// The rendezvous file goes to the temporary directory: this test's own.
	cOut, mOut := filepath.Join(t.TempDir(), "c"), filepath.Join(t.TempDir(), "m")
	tmp, err := os.MkdirTemp("", "rehearse-rendezvous-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil { // the servers' fallback work directory is made here
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	sc := writeFile(t, "embedded.yaml", "name: sharded-embedded\nworkload:\n  customers: 500\ntarget:\n  fsync: false\nload:\n  sessions: 40\n  rate: 40\n  duration: 2s\n  pool_size: 2\n")
	var coord run
	var wg sync.WaitGroup
	wg.Go(func() {
		coord = cli(t, t.Context(), "run", sc, "--shard", "0/2", "--barrier-timeout", "10s", "--quiet", "--out", cOut)
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	testutil.Eventually(t, time.Minute, "the coordinator to publish its target", func() bool {
		select {
		case <-done:
			t.Fatalf("the coordinator ended before the other shard came: exit %d, %s", coord.code, coord.err)
		default:
		}
		_, err := os.Stat(filepath.Join(tmp, "rehearse-shards-sharded-embedded.json"))
		return err == nil
	})
	mismatch := cli(t, t.Context(), "run", sc, "--shard", "1/3", "--barrier-timeout", "20s", "--quiet", "--out", mOut)
	if mismatch.code != exitInput || !strings.Contains(mismatch.err, "runs 2 shards, this shard 3") {
		t.Errorf("a shard of another count: exit %d, %q", mismatch.code, mismatch.err)
	}
	wg.Wait()
	if coord.code != exitRuntime || !strings.Contains(coord.err, "shard 1 of 2 did not arrive") {
		t.Errorf("the coordinator without its shard 1: exit %d, %q", coord.code, coord.err)
	}
}

// report merge refuses what is not the shards of one run (exit 2).
func TestMergeRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, r *result.Result) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := result.WriteFileAtomic(filepath.Join(d, "result.json"), func(w io.Writer) error { return result.Encode(w, r) }); err != nil {
			t.Fatal(err)
		}
		return d
	}
	shardResult := func(run string, idx, count int, sha string) *result.Result {
		return &result.Result{Schema: result.SchemaV1, Scenario: result.ScenarioInfo{Name: "s", SHA256: sha},
			Shard: &result.ShardInfo{RunID: run, Index: idx, Count: count}, Operations: []result.Operation{}, Errors: []result.ErrorClass{}}
	}
	a0 := write("a0", shardResult("run-a", 0, 2, "aa"))
	a1 := write("a1", shardResult("run-a", 1, 2, "aa"))
	b1 := write("b1", shardResult("run-b", 1, 2, "aa"))
	c1 := write("c1", shardResult("run-a", 1, 3, "aa"))
	d1 := write("d1", shardResult("run-a", 1, 2, "bb"))
	plain := write("plain", &result.Result{Schema: result.SchemaV1, Operations: []result.Operation{}, Errors: []result.ErrorClass{}})
	tests := []struct {
		name string
		dirs []string
		want string
	}{
		{"different runs", []string{a0, b1}, "is run run-a"},
		{"different shard counts", []string{a0, c1}, "is a shard of 2"},
		{"different scenarios", []string{a0, d1}, "(another file)"},
		{"an index twice", []string{a0, a1, a1}, "are both shard 1/2"},
		{"not a shard", []string{a0, plain}, "not a shard's result"},
		{"no such directory", []string{a0, filepath.Join(dir, "nope")}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, t.Context(), append(append([]string{"report", "merge"}, tt.dirs...), "--out", filepath.Join(t.TempDir(), "m"))...)
			if r.code != exitInput || !strings.Contains(r.err, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 saying %q", r.code, r.err, tt.want)
			}
		})
	}
	if r := cli(t, t.Context(), "report", "merge", a0, a1); r.code != exitInput || !strings.Contains(r.err, "--out") {
		t.Errorf("without --out: exit %d, %q", r.code, r.err)
	}
}

// A shard that dies mid-run: the coordinator names it (exit 1) and the merge of
// the others is marked incomplete.
func TestShardDiesMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and waits for a dead shard's heartbeat to go stale")
	}
	testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
	bin := buildRehearse(t)
	dsn := shardDB(t)
	sc := writeFile(t, "dies.yaml", fmt.Sprintf(`name: dies
workload:
  customers: 500
target:
  dsn: %s
load:
  sessions: 60
  rate: 30
  duration: 8s
  pool_size: 2
`, dsn))
	dir := t.TempDir()
	out := func(i int) string { return filepath.Join(dir, fmt.Sprintf("shard-%d", i)) }
	var coord, other run
	var wg sync.WaitGroup
	wg.Go(func() { coord = cli(t, t.Context(), "run", sc, "--shard", "0/3", "--quiet", "--out", out(0)) })
	wg.Go(func() { other = cli(t, t.Context(), "run", sc, "--shard", "1/3", "--quiet", "--out", out(1)) })
	victim := exec.CommandContext(t.Context(), bin, "run", sc, "--quiet", "--out", out(2))
	victim.Env = shardEnv("JOB_COMPLETION_INDEX=2", "REHEARSE_SHARDS=3")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	running := func() bool {
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			return false
		}
		defer conn.Close(context.Background())
		var n int
		err = conn.QueryRow(t.Context(), `SELECT count(*) FROM rehearse_run.shards WHERE idx = 2 AND state = 'running'`).Scan(&n)
		return err == nil && n == 1
	}
	testutil.Eventually(t, 2*time.Minute, "shard 2 to start its load", running)
	if err := victim.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = victim.Wait()
	wg.Wait()
	if other.code != 0 {
		t.Errorf("shard 1: exit %d\n%s", other.code, other.err)
	}
	if coord.code != exitRuntime || !strings.Contains(coord.err, "1 of 3 shards did not finish: shard 2 (it stopped heartbeating") {
		t.Fatalf("coordinator: exit %d, %q", coord.code, coord.err)
	}
	c := readResult(t, out(0))
	if len(c.Shard.Lost) != 1 || c.Shard.Lost[0].Index != 2 {
		t.Errorf("the coordinator's result names lost %+v", c.Shard.Lost)
	}
	m := cli(t, t.Context(), "report", "merge", out(0), out(1), "--out", filepath.Join(dir, "merged"))
	if m.code != 0 && m.code != exitSLO {
		t.Fatalf("merge: exit %d, %s", m.code, m.err)
	}
	res := readResult(t, filepath.Join(dir, "merged"))
	if !res.Incomplete || res.Shards != 2 || len(res.Sharding.Missing) != 1 || res.Sharding.Missing[0].Index != 2 ||
		!strings.Contains(res.Sharding.Missing[0].Reason, "stopped heartbeating") {
		t.Errorf("merged: incomplete %v, shards %d, missing %+v", res.Incomplete, res.Shards, res.Sharding.Missing)
	}
	if !strings.Contains(m.out, "(incomplete)") {
		t.Errorf("the merge's summary does not say incomplete:\n%s", m.out)
	}
}
