package aurora

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/aurora/emulator"
	"github.com/rehearse-dev/rehearse/migrate/local"
)

// realEmulator starts the emulator over a real local cluster (dns endpoints with a
// short stale window) and returns a provider pointed at it.
func realEmulator(t *testing.T) (*Provider, *emulator.Server, *emulator.LocalBackend, *testutil.SyncBuffer) {
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
	b, err := emulator.StartLocal(t.Context(), emulator.LocalConfig{
		Node:  local.Config{Dir: dir, Bin: bin, MaxConnections: 40, SharedBuffers: "16MB", Log: log},
		Stale: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("StartLocal: %v\n%s", err, log)
	}
	t.Cleanup(func() {
		if err := b.Close(context.Background()); err != nil {
			t.Errorf("close the cluster: %v", err)
		}
	})
	s := emulator.New(b, emulator.Options{Log: log})
	if err := s.SyncFunctions(t.Context()); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	cfg := fastConfig(hs.URL)
	cfg.DSN = "postgres://postgres@placeholder/rehearse?sslmode=disable"
	cfg.PassFile = b.Credentials().File()
	cfg.CreateTimeout = 90 * time.Second
	cfg.Log = log
	p, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, s, b, log
}

// load inserts rows through the writer endpoint until stopped, remembering which
// commits were acknowledged: explicit keys into acked (startLoad), or keys from a
// sequence into orders (startSerialLoad), which a blue/green switchover must carry
// over to green.
type load struct {
	dsn    string
	serial bool
	mu     sync.Mutex
	acked  []int64
	fails  int
	stop   chan struct{}
	done   chan struct{}
}

func startLoad(t *testing.T, dsn string) *load { return start(t, dsn, false) }

func startSerialLoad(t *testing.T, dsn string) *load { return start(t, dsn, true) }

func start(t *testing.T, dsn string, serial bool) *load {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	ddl := "CREATE TABLE acked (id bigint PRIMARY KEY, pad text)"
	if serial {
		ddl = "CREATE TABLE orders (id bigserial PRIMARY KEY, pad text)"
	}
	if _, err := conn.Exec(t.Context(), ddl); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	l := &load{dsn: dsn, serial: serial, stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	t.Cleanup(l.halt)
	return l
}

func (l *load) run() {
	defer close(l.done)
	var conn *pgx.Conn
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for id := int64(1); ; id++ {
		select {
		case <-l.stop:
			if conn != nil {
				conn.Close(context.Background())
			}
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var err error
		if conn == nil {
			conn, err = pgx.Connect(ctx, l.dsn)
			if err != nil {
				conn = nil
			}
		}
		if err == nil && l.serial {
			err = conn.QueryRow(ctx, "INSERT INTO orders (pad) VALUES ('x') RETURNING id").Scan(&id)
		} else if err == nil {
			_, err = conn.Exec(ctx, "INSERT INTO acked VALUES ($1, repeat('x', 100))", id)
		}
		cancel()
		l.mu.Lock()
		if err == nil {
			l.acked = append(l.acked, id)
		} else {
			l.fails++
			if conn != nil {
				conn.Close(context.Background())
				conn = nil
			}
		}
		l.mu.Unlock()
	}
}

func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// lost counts acknowledged rows missing from the writer (through the writer endpoint).
func (l *load) lost(ctx context.Context) (lost, acked int, err error) {
	l.mu.Lock()
	ids := slices.Clone(l.acked)
	l.mu.Unlock()
	conn, err := pgx.Connect(ctx, l.dsn)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	table := "acked"
	if l.serial {
		table = "orders"
	}
	err = conn.QueryRow(ctx, "SELECT count(*) FROM unnest($1::bigint[]) a(id) WHERE NOT EXISTS (SELECT 1 FROM "+table+" t WHERE t.id = a.id)", ids).Scan(&lost)
	return lost, len(ids), err
}

// TestWetPlanOverRealCluster drives the whole plan through the RDS API against the
// emulator over real PostgreSQL, under a write load through the writer endpoint.
func TestWetPlanOverRealCluster(t *testing.T) {
	p, s, b, log := realEmulator(t)
	ctx := t.Context()
	w, _, err := p.Endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := startLoad(t, p.DSN(w))
	var (
		mu    sync.Mutex
		calls []string
	)
	p.cfg.OnCall = func(c Call) { mu.Lock(); calls = append(calls, c.Action); mu.Unlock() }
	e := &migrate.Engine{
		Provider: p,
		Config: migrate.Config{StepTimeout: 90 * time.Second, CatchUpMaxLagBytes: 1 << 20, CatchUpSamples: 3,
			Soak: 200 * time.Millisecond, Poll: 50 * time.Millisecond},
		Validate: func(ctx context.Context) (map[string]any, error) {
			lost, acked, err := l.lost(ctx)
			if err != nil {
				return nil, err
			}
			if lost > 0 {
				return map[string]any{"lost": lost}, fmt.Errorf("%d of %d acknowledged writes lost", lost, acked)
			}
			return map[string]any{"acknowledged_writes": acked, "lost_acknowledged_writes": 0}, nil
		},
		Log: log,
	}
	m, err := e.Run(ctx)
	if err != nil {
		t.Fatalf("plan: %v\nsteps: %+v\nlog:\n%s", err, m.Steps, log)
	}
	var got []string
	for _, st := range m.Steps {
		got = append(got, st.Name+"="+st.Status)
	}
	want := "preflight=ok create_replica=ok catch_up=ok forward_writes=ok switchover=ok redirect=ok validate=ok keep_rollback_target=ok decommission=ok"
	if strings.Join(got, " ") != want {
		t.Errorf("steps:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if m.WriterBefore != "rehearse-demo-instance-1" || m.WriterAfter != "rehearse-demo-serverless" {
		t.Errorf("writer %s -> %s", m.WriterBefore, m.WriterAfter)
	}
	if b.Cluster().Writer().Name() != "node2" {
		t.Errorf("the local writer is %s, not node2", b.Cluster().Writer().Name())
	}
	actions := s.Actions()
	for _, a := range []string{"CreateDBInstance", "FailoverDBCluster", "ModifyDBCluster", "DeleteDBInstance"} {
		if !slices.Contains(actions, a) {
			t.Errorf("the emulator's call log has no %s: %v", a, actions)
		}
	}
	mu.Lock()
	if !slices.Contains(calls, "FailoverDBCluster") {
		t.Errorf("OnCall saw no FailoverDBCluster: %v", calls)
	}
	mu.Unlock()
	l.halt()
	lost, acked, err := l.lost(context.Background())
	if err != nil || lost != 0 || acked == 0 {
		t.Errorf("lost %d of %d acknowledged writes (%v)", lost, acked, err)
	}
	if errs := s.Errors(); len(errs) > 0 {
		t.Errorf("emulator background errors: %v", errs)
	}
	if !strings.Contains(log.String(), "instance rehearse-demo-serverless: creating -> backing-up") || !strings.Contains(log.String(), "backing-up -> available") {
		t.Errorf("no creating -> backing-up -> available transitions in the log:\n%s", log)
	}
	// The step details carry the API calls.
	for _, st := range m.Steps {
		if st.Name == migrate.StepSwitchover && st.Detail["api_calls"] == nil {
			t.Errorf("switchover detail has no api_calls: %v", st.Detail)
		}
	}
}

// TestDryPlanCallsOnlyDescribe: a dry run makes only Describe* calls, asserted from
// the emulator's own call log.
func TestDryPlanCallsOnlyDescribe(t *testing.T) {
	p, s, _, log := realEmulator(t)
	e := &migrate.Engine{Provider: p, Dry: true, Config: migrate.Config{Poll: 50 * time.Millisecond}, Log: log}
	m, err := e.Run(t.Context())
	if err != nil {
		t.Fatalf("dry plan: %v\n%s", err, log)
	}
	if m.Outcome != "dry" || len(m.Steps) != len(migrate.AllSteps) {
		t.Errorf("outcome %s, %d steps", m.Outcome, len(m.Steps))
	}
	actions := s.Actions()
	if len(actions) == 0 {
		t.Fatal("no API calls")
	}
	for _, a := range actions {
		if !strings.HasPrefix(a, "Describe") {
			t.Errorf("a dry run called %s (call log %v)", a, actions)
		}
	}
	if s.WriterInstance() != "rehearse-demo-instance-1" {
		t.Errorf("the writer changed: %s", s.WriterInstance())
	}
}

// TestLagFromAuroraReplicaStatus reads lag through the emulated function.
func TestLagFromAuroraReplicaStatus(t *testing.T) {
	p, _, _, log := realEmulator(t)
	ctx := t.Context()
	if _, err := p.CreateReplica(ctx); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	lag, err := p.Lag(ctx, "rehearse-demo-serverless")
	if err != nil {
		t.Fatal(err)
	}
	if lag.Bytes < 0 || lag.WriterLSN == "" || lag.ReplayLSN == "" {
		t.Errorf("lag: %+v", lag)
	}
	if _, err := p.Lag(ctx, "rehearse-demo-instance-1"); err == nil || !strings.Contains(err.Error(), "no row in aurora_replica_status()") {
		t.Errorf("the writer's lag: %v", err)
	}
}
