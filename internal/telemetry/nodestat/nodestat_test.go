package nodestat_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/telemetry/nodestat"
	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/local"
)

// burn keeps one CPU busy for d.
func burn(d time.Duration) {
	x := 0
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := range 10000 {
			x += i
		}
	}
	_ = x
}

// rusage is the CPU time of this process and of the children it has reaped, as
// the kernel accounts them.
func rusage(t *testing.T) time.Duration {
	t.Helper()
	var self, children syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children); err != nil {
		t.Fatal(err)
	}
	return time.Duration(self.Utime.Nano() + self.Stime.Nano() + children.Utime.Nano() + children.Stime.Nano())
}

// The meter reads a tree's CPU from its processes, and a child's CPU stays counted
// once the parent has reaped it (it moves to the parent's cutime): between two
// samples it sees what the kernel accounted to the process and its reaped
// children, to the clock tick.
func TestProcMeter(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	sh := testutil.RequireTool(t, "sh", "")
	var m nodestat.ProcMeter
	pid := os.Getpid()
	t1 := time.Now()
	cpu1 := rusage(t)
	first, err := m.Sample(pid, t1)
	if err != nil {
		t.Fatal(err)
	}
	if first.Rates || first.RSS <= 0 {
		t.Errorf("first sample %+v: want no rates and a resident size", first)
	}
	// A child that burns CPU and exits, reaped before the next sample.
	cmd := exec.Command(sh, "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	child := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	burn(100 * time.Millisecond)
	t2 := time.Now()
	u, err := m.Sample(pid, t2)
	cpu2 := rusage(t)
	if err != nil {
		t.Fatal(err)
	}
	if !u.Rates || !u.IO {
		t.Fatalf("second sample %+v: want rates and I/O counters", u)
	}
	got := time.Duration(u.CPUCores * float64(t2.Sub(t1)))
	// /proc counts in 10 ms ticks, a few per process; rusage to the microsecond.
	const tick = 40 * time.Millisecond
	if want := cpu2 - cpu1; got < want-tick || got > want+tick || got < child-tick {
		t.Errorf("CPU between the samples %v, the kernel accounted %v (the child %v)", got, want, child)
	}
	if u.ReadOps < 0 || u.WriteOps < 0 {
		t.Errorf("negative I/O rates %+v", u)
	}
}

func TestProcMeterNoProcess(t *testing.T) {
	var m nodestat.ProcMeter
	for _, pid := range []int{0, -1, 1 << 30} {
		if _, err := m.Sample(pid, time.Now()); err == nil {
			t.Errorf("pid %d: no error", pid)
		}
	}
}

// startNode starts a PostgreSQL primary for the test and stops it afterwards, also
// when the test fails.
func startNode(t *testing.T) *local.Node {
	t.Helper()
	testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
	bin, err := local.FindBinaries(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	log := &testutil.SyncBuffer{}
	n, err := local.InitPrimary(t.Context(), local.Config{Name: "node1", Dir: dir, Bin: bin, MaxConnections: 30, SharedBuffers: "16MB", Log: log})
	if err != nil {
		t.Fatalf("start PostgreSQL: %v\n%s", err, log)
	}
	t.Cleanup(func() {
		if err := n.Close(context.Background()); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
	})
	return n
}

// The server's counters, against a real PostgreSQL: connections, transactions and
// WAL written between two samples, a checkpoint, and the postmaster's process tree.
func TestPGMeter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	n := startNode(t)
	ctx := t.Context()
	sampler, err := pgx.Connect(ctx, n.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer sampler.Close(context.Background())
	work, err := pgx.Connect(ctx, n.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer work.Close(context.Background())

	var m nodestat.PGMeter
	first, err := m.Sample(ctx, sampler, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if first.Rates || first.InRecovery || first.Connections < 1 || first.Checkpoints != 0 {
		t.Errorf("first sample %+v: want no rates, a primary, the other connection, no checkpoint yet", first)
	}
	if _, err := work.Exec(ctx, "CREATE TABLE t (v text)"); err != nil {
		t.Fatal(err)
	}
	const txs = 200
	for range txs {
		if _, err := work.Exec(ctx, "INSERT INTO t SELECT repeat('x', 1000)"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := work.Exec(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	// The statistics reach the shared counters as the backend goes idle, at most
	// once a second: wait for them rather than for a fixed time.
	var (
		u   nodestat.PGUsage
		wal float64 // the WAL may show in an earlier sample than the transactions
	)
	testutil.Eventually(t, 10*time.Second, "the transactions in pg_stat_database", func() bool {
		var err error
		if u, err = m.Sample(ctx, sampler, time.Now()); err != nil {
			t.Fatal(err)
		}
		wal = max(wal, u.WALBytes)
		return u.Rates && u.TPS > 0
	})
	tests := []struct {
		name string
		ok   bool
	}{
		{"the other connection is counted, this one not", u.Connections == first.Connections},
		{"WAL was written", wal > 0},
		{"a checkpoint completed", u.Checkpoints >= 1},
		{"no replica streams", len(u.Replicas) == 0},
	}
	for _, tt := range tests {
		if !tt.ok {
			t.Errorf("%s: %+v (first %+v)", tt.name, u, first)
		}
	}

	var p nodestat.ProcMeter
	if _, err := p.Sample(n.PID(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := work.Exec(ctx, "SELECT count(*) FROM generate_series(1, 3000000)"); err != nil {
		t.Fatal(err)
	}
	pu, err := p.Sample(n.PID(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !pu.Rates || pu.CPUCores <= 0 || pu.RSS < 1<<20 {
		t.Errorf("postmaster tree %+v: want CPU from the backend's query and a resident size", pu)
	}
}
