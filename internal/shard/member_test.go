package shard

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/local"
)

// server is one embedded PostgreSQL for the package's tests; each test has a
// database of its own in it.
var server struct {
	once sync.Once
	node *local.Node
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if server.node != nil {
		_ = server.node.Close(context.Background())
	}
	if server.dir != "" {
		_ = os.RemoveAll(server.dir)
	}
	os.Exit(code)
}

// database creates a database for the test and returns its connection config.
func database(t *testing.T) *pgx.ConnConfig {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
	server.once.Do(func() {
		ctx := context.Background()
		bin, err := local.FindBinaries(ctx, "")
		if err != nil {
			server.err = err
			return
		}
		if server.dir, server.err = os.MkdirTemp("", "rehearse-shard-test-"); server.err != nil {
			return
		}
		if server.err = os.Chmod(server.dir, 0o711); server.err != nil {
			return
		}
		server.node, server.err = local.InitPrimary(ctx, local.Config{Dir: server.dir, Name: "coord", Bin: bin, SharedBuffers: "16MB", MaxConnections: 60})
	})
	if server.err != nil {
		t.Fatal(server.err)
	}
	name := "t_" + strings.ToLower(strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	conn, err := pgx.Connect(t.Context(), server.node.DSN(local.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(server.node.DSN(name))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func config(conn *pgx.ConnConfig, index, count int) Config {
	return Config{
		Spec: Spec{index, count}, Conn: conn, Scenario: "smoke", ScenarioSHA256: "abcdef0123456789",
		Sessions: 10, BarrierTimeout: 20 * time.Second, Host: "test", PID: 100 + index, DeadAfter: 3 * time.Second,
	}
}

func join(t *testing.T, cfg Config) *Member {
	t.Helper()
	m, err := Join(t.Context(), cfg)
	if err != nil {
		t.Fatalf("shard %s: %v", cfg.Spec, err)
	}
	t.Cleanup(m.Close)
	return m
}

// Three shards pass the barrier with one start, the others see the coordinator's
// marks and stop, and the coordinator gets their records.
func TestRunThroughTheBarrier(t *testing.T) {
	conn := database(t)
	coordCfg := config(conn, 0, 3)
	coordCfg.Extends = true
	coord := join(t, coordCfg)
	followers := []*Member{join(t, config(conn, 1, 3)), join(t, config(conn, 2, 3))}
	for _, f := range followers {
		if f.RunID() != coord.RunID() || !f.Extends() {
			t.Fatalf("a follower joined run %s (extends %v), the coordinator made %s", f.RunID(), f.Extends(), coord.RunID())
		}
	}

	starts := make([]time.Time, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, m := range append([]*Member{coord}, followers...) {
		wg.Go(func() { starts[i], errs[i] = m.Ready(t.Context()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("shard %d at the barrier: %v", i, err)
		}
	}
	for i := 1; i < 3; i++ {
		if d := starts[i].Sub(starts[0]).Abs(); d > 50*time.Millisecond {
			t.Errorf("shard %d starts %v away from the coordinator", i, d)
		}
	}
	if time.Until(starts[0]) < 0 {
		t.Log("the start passed before every shard saw it (a loaded machine)")
	}

	// The coordinator marks a disruption, closes it, then publishes its stop.
	marks := []Mark{{Kind: MarkDisruption, Seq: 0, Label: "cutover", Disruption: "switchover", Start: 5 * time.Second}}
	if err := coord.PublishMarks(t.Context(), marks); err != nil {
		t.Fatal(err)
	}
	marks[0].End, marks[0].Ended = 8*time.Second, true
	marks = append(marks, Mark{Kind: MarkCycle, Seq: 0, Cycle: 1, Start: 0})
	if err := coord.PublishMarks(t.Context(), marks); err != nil {
		t.Fatal(err)
	}
	if err := coord.PublishStop(t.Context(), 11*time.Second); err != nil {
		t.Fatal(err)
	}
	for i, f := range followers {
		var got []Mark
		var stop time.Duration
		var why string
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		f.Follow(ctx, Follower{
			Since: func() time.Duration { return 0 },
			Marks: func(m []Mark) { got = m },
			Stop:  func(at time.Duration, w string) { stop, why = at, w },
		})
		cancel()
		if stop != 11*time.Second || why != "" {
			t.Errorf("follower %d: stop %v (%q), want 11s from the coordinator", i+1, stop, why)
		}
		if len(got) != 2 || !got[0].Ended || got[0].End != 8*time.Second || got[0].Label != "cutover" || got[1].Kind != MarkCycle {
			t.Errorf("follower %d got marks %+v", i+1, got)
		}
	}

	// Records of more than one chunk travel whole.
	big := bytes.Repeat([]byte("0123456789abcdef"), chunkBytes/16*2+3)
	if err := followers[0].Done(t.Context(), big, ""); err != nil {
		t.Fatal(err)
	}
	if err := followers[1].Done(t.Context(), []byte("two"), ""); err != nil {
		t.Fatal(err)
	}
	got := map[int][]byte{}
	lost, err := coord.Collect(t.Context(), func(idx int, b []byte) error { got[idx] = b; return nil })
	if err != nil || len(lost) != 0 {
		t.Fatalf("Collect: lost %v, %v", lost, err)
	}
	if !bytes.Equal(got[1], big) || string(got[2]) != "two" {
		t.Errorf("collected %d and %d bytes", len(got[1]), len(got[2]))
	}
	coord.Finish(t.Context(), "")
}

// What the barrier refuses: another count, another scenario, an index taken, a
// second coordinator while the first is live.
func TestBarrierRefuses(t *testing.T) {
	conn := database(t)
	join(t, config(conn, 0, 3))
	join(t, config(conn, 1, 3))
	other := config(conn, 2, 3)
	other.ScenarioSHA256 = "ffff"
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"another shard count", config(conn, 2, 4), "started with 3 shards, this shard with 4"},
		{"an index taken", config(conn, 1, 3), "already has a shard 1 (host test, pid 101)"},
		{"another scenario", other, "another scenario file"},
		{"a second coordinator", config(conn, 0, 3), "two shards with index 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Join(t.Context(), tt.cfg)
			if err == nil {
				m.Close()
				t.Fatal("joined")
			}
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v; want ErrRefused saying %q", err, tt.want)
			}
		})
	}
}

// A shard that never arrives fails the barrier, named; the one that came is told.
func TestBarrierTimeoutNamesTheMissing(t *testing.T) {
	conn := database(t)
	cc := config(conn, 0, 3)
	cc.BarrierTimeout = 2 * time.Second
	coord := join(t, cc)
	f := join(t, config(conn, 1, 3))
	var ferr error
	var wg sync.WaitGroup
	wg.Go(func() { _, ferr = f.Ready(t.Context()) })
	_, err := coord.Ready(t.Context())
	if !errors.Is(err, ErrBarrier) || !strings.Contains(err.Error(), "shard 2 of 3 did not arrive") {
		t.Errorf("coordinator: %v", err)
	}
	wg.Wait()
	if !errors.Is(ferr, ErrBarrier) || !strings.Contains(ferr.Error(), "shard 2 of 3 did not arrive") {
		t.Errorf("follower: %v", ferr)
	}
}

// A follower started without a coordinator gives up after the barrier timeout.
func TestFollowerWithoutCoordinator(t *testing.T) {
	conn := database(t)
	cfg := config(conn, 1, 2)
	cfg.BarrierTimeout = time.Second
	_, err := Join(t.Context(), cfg)
	if !errors.Is(err, ErrBarrier) || !strings.Contains(err.Error(), "no coordinator (shard 0/2)") {
		t.Fatalf("got %v", err)
	}
}

// A shard that dies after the start is reported lost by the coordinator, which
// does not wait for it beyond its heartbeat's silence.
func TestDeadShardIsLost(t *testing.T) {
	conn := database(t)
	coord := join(t, config(conn, 0, 2))
	f, err := Join(t.Context(), config(conn, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := f.Ready(t.Context()); err != nil {
			t.Error(err)
		}
	})
	if _, err := coord.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	f.Close() // dies: no more beats, never done
	start := time.Now()
	lost, err := coord.Collect(t.Context(), func(int, []byte) error { return nil })
	if err != nil || len(lost) != 1 || lost[0].Index != 1 || !strings.Contains(lost[0].Reason, "stopped heartbeating") {
		t.Fatalf("lost %+v, %v", lost, err)
	}
	t.Logf("declared lost after %v", time.Since(start).Round(time.Millisecond))
}

func TestRendezvous(t *testing.T) {
	dir := t.TempDir()
	path := RendezvousPath(dir, "smoke")
	if filepath.Base(path) != "rehearse-shards-smoke.json" {
		t.Errorf("path %s", path)
	}
	if _, err := Await(t.Context(), path, 200*time.Millisecond); !errors.Is(err, ErrBarrier) {
		t.Errorf("Await without a coordinator: %v", err)
	}
	e := Endpoints{Kind: "local", EndpointMode: "dns", Writer: "postgres://w", Reader: "postgres://r", DNSServer: "127.0.0.1:53", PID: os.Getpid(), Count: 3}
	remove, err := Publish(path, e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Await(t.Context(), path, time.Second)
	if err != nil || got != e {
		t.Fatalf("Await = %+v, %v", got, err)
	}
	// A shard of another count, or of another version of the file, finds the
	// coordinator and is refused.
	for _, c := range []struct {
		spec Spec
		sha  string
		want string
	}{
		{Spec{Index: 1, Count: 3}, "", ""},
		{Spec{Index: 1, Count: 4}, "", "runs 3 shards, this shard 4"},
		{Spec{Index: 1, Count: 3}, "beef", "another version of the scenario file"},
	} {
		err := got.Check(c.spec, c.sha)
		if c.want == "" && err != nil || c.want != "" && (!errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("Check(%s, %q) = %v, want %q", c.spec, c.sha, err, c.want)
		}
	}
	// A second coordinator on the machine is refused while the first lives.
	e2 := e
	e2.PID = os.Getppid()
	if _, err := Publish(path, e2); !errors.Is(err, ErrRefused) {
		t.Errorf("a second coordinator: %v", err)
	}
	remove()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file stayed: %v", err)
	}
	// A file left by a process that is gone is stale: replaced, and not awaited.
	stale := e
	stale.PID = 1 << 30
	if _, err := Publish(path, stale); err != nil {
		t.Fatal(err)
	}
	if _, err := Await(t.Context(), path, 200*time.Millisecond); !errors.Is(err, ErrBarrier) {
		t.Errorf("Await of a stale file: %v", err)
	}
	if _, err := Publish(path, e); err != nil {
		t.Errorf("replacing a stale file: %v", err)
	}
}

// A shard that fails before the start fails the barrier at once, named, rather
// than after the barrier timeout.
func TestBarrierFailsWithAFailedShard(t *testing.T) {
	conn := database(t)
	cc := config(conn, 0, 2)
	cc.BarrierTimeout = time.Minute
	coord := join(t, cc)
	f := join(t, config(conn, 1, 2))
	f.Fail(t.Context(), "interrupted at the barrier")
	// Were the coordinator to wait the barrier out, it would say the shard did
	// not get ready.
	_, err := coord.Ready(t.Context())
	if !errors.Is(err, ErrBarrier) || !strings.Contains(err.Error(), "shard 1 (host test, pid 101) failed before the start: interrupted at the barrier") {
		t.Fatalf("got %v", err)
	}
	// The run stays failed when the coordinator then ends.
	coord.Finish(t.Context(), "")
	var state string
	if err := coord.pool.QueryRow(t.Context(), `SELECT state FROM rehearse_run.runs WHERE id = $1`, coord.RunID()).Scan(&state); err != nil || state != runFailed {
		t.Errorf("run state %q, %v", state, err)
	}
}
