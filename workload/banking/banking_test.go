package banking

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/workload"
	"github.com/rehearse-dev/rehearse/workload/internal/pgtest"
)

func newPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func newWorkload(t testing.TB, cfg Config) *Workload {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// setup starts a server, seeds a small bank and returns the workload and a pool.
func setup(t testing.TB, customers int) (*Workload, *pgxpool.Pool, string) {
	t.Helper()
	srv := pgtest.Start(t)
	pool := newPool(t, srv.DSN)
	w := newWorkload(t, Config{Customers: customers, AccountsPerCustomer: 2, OpeningBalance: 100000})
	if err := w.Setup(context.Background(), pool, &testLog{t: t}); err != nil {
		t.Fatal(err)
	}
	return w, pool, srv.DSN
}

type testLog struct {
	t   testing.TB
	buf bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) {
	l.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return l.buf.Write(p)
}

func opIndex(t testing.TB, w *Workload, name string) int {
	t.Helper()
	for i, op := range w.Ops() {
		if op.Name == name {
			return i
		}
	}
	t.Fatalf("no op %q", name)
	return -1
}

// runOp runs the named op on a fresh connection from pool.
func runOp(t testing.TB, w *Workload, pool *pgxpool.Pool, name string, s *workload.Session, r *rand.Rand) error {
	t.Helper()
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	return w.Ops()[opIndex(t, w, name)].Run(context.Background(), conn.Conn(), s, r)
}

func queryInt(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func verifyClean(t testing.TB, w *Workload, pool *pgxpool.Pool) {
	t.Helper()
	start := time.Now()
	res, err := w.Verify(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("verify took %s: %+v", time.Since(start), res)
	if !res.Checked || !res.BalanceConserved || res.LostAcknowledgedWrites != 0 || res.DuplicateWrites != 0 {
		t.Fatalf("integrity failed: %+v", res)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative customers", Config{Customers: -1}, "customers must be positive"},
		{"one account", Config{Customers: 1, AccountsPerCustomer: 1}, "at least two accounts"},
		{"unknown op", Config{Mix: map[string]float64{"withdraw": 1, "balance": 1}}, "unknown mix operations withdraw"},
		{"login in mix", Config{Mix: map[string]float64{"login": 1}}, "unknown mix operations login"},
		{"negative weight", Config{Mix: map[string]float64{"balance": -1, "transfer": 1}}, "must not be negative"},
		{"all zero", Config{Mix: map[string]float64{"balance": 0}}, "no positive weight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: got %v, want ErrConfig containing %q", err, tt.want)
			}
		})
	}
}

func TestMixSelection(t *testing.T) {
	tests := []struct {
		name string
		mix  map[string]float64
	}{
		{"default", nil},
		{"even", map[string]float64{"balance": 1, "statement": 1, "transfer": 1, "deposit": 1, "dashboard": 1, "background_job": 1}},
		{"skewed", map[string]float64{"balance": 90, "transfer": 9, "background_job": 1}},
		{"single", map[string]float64{"transfer": 3}},
	}
	const draws = 100000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorkload(t, Config{Mix: tt.mix})
			mix := tt.mix
			if mix == nil {
				mix = DefaultMix()
			}
			var total float64
			for _, v := range mix {
				total += v
			}
			r := rand.New(rand.NewPCG(1, 2))
			counts := make([]int, len(w.Ops()))
			s := workload.Session{Customer: 1, Token: 1}
			for range draws {
				s.Left = 10
				counts[w.Next(&s, r)]++
			}
			for i, op := range w.Ops() {
				p := mix[op.Name] / total
				want := p * draws
				sigma := math.Sqrt(draws * p * (1 - p))
				if d := math.Abs(float64(counts[i]) - want); d > 5*sigma+1 {
					t.Errorf("%s: %d draws, want %.0f ± %.0f", op.Name, counts[i], want, 5*sigma)
				}
			}
		})
	}
}

func TestSessionLifecycle(t *testing.T) {
	w := newWorkload(t, Config{Customers: 100, ActionsPerLogin: 5})
	r := rand.New(rand.NewPCG(7, 7))
	s := w.NewSession(3, r)
	if s.Customer < 1 || s.Customer > 100 || s.Token != 0 {
		t.Fatalf("NewSession = %+v", s)
	}
	logins, actions := 0, 0
	for range 10000 {
		switch op := w.Next(&s, r); op {
		case opLogin:
			logins++
			if s.Left < 1 || s.Left > 9 {
				t.Fatalf("Left = %d, want 1..9", s.Left)
			}
			s.Token = 42
		case opLogout:
			s.Token, s.Left = 0, 0
		default:
			actions++
		}
	}
	if mean := float64(actions) / float64(logins); mean < 4 || mean > 6 {
		t.Errorf("mean actions per login = %.2f, want about 5", mean)
	}
}

func TestNextDoesNotAllocate(t *testing.T) {
	w := newWorkload(t, Config{})
	r := rand.New(rand.NewPCG(1, 1))
	s := workload.Session{Customer: 1}
	allocs := testing.AllocsPerRun(1000, func() {
		if w.Next(&s, r) == opLogin {
			s.Token = 1
		}
	})
	if allocs != 0 {
		t.Fatalf("Next allocates %.1f times per call", allocs)
	}
}

func TestKeysAreUUIDv4AndUnique(t *testing.T) {
	w := newWorkload(t, Config{})
	r := rand.New(rand.NewPCG(1, 1))
	seen := map[[16]byte]bool{}
	for range 10000 {
		k := w.newKey(r)
		if k[6]>>4 != 4 || k[8]>>6 != 2 {
			t.Fatalf("key %x is not a UUIDv4", k)
		}
		if seen[k] {
			t.Fatalf("duplicate key %x", k)
		}
		seen[k] = true
	}
	// Two workloads with the same seed must not produce the same keys (reruns reuse data).
	w2 := newWorkload(t, Config{})
	if w.newKey(rand.New(rand.NewPCG(5, 5))) == w2.newKey(rand.New(rand.NewPCG(5, 5))) {
		t.Fatal("keys repeat across workload instances")
	}
}

func TestSetupReusesAndReseeds(t *testing.T) {
	srv := pgtest.Start(t)
	pool := newPool(t, srv.DSN)
	ctx := context.Background()
	cfg := Config{Customers: 500, AccountsPerCustomer: 3, OpeningBalance: 5000}

	w := newWorkload(t, cfg)
	log1 := &testLog{t: t}
	if err := w.Setup(ctx, pool, log1); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM accounts`); n != 1500 {
		t.Fatalf("accounts = %d, want 1500", n)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM accounts WHERE customer_id = 7 AND id BETWEEN 19 AND 21`); n != 3 {
		t.Fatalf("customer 7 owns %d of accounts 19..21, want 3", n)
	}
	s := workload.Session{Customer: 7}
	r := rand.New(rand.NewPCG(1, 1))
	if err := runOp(t, w, pool, OpDeposit, &s, r); err != nil {
		t.Fatal(err)
	}

	// Same parameters: reuse, keeping the deposit.
	log2 := &testLog{t: t}
	if err := newWorkload(t, cfg).Setup(ctx, pool, log2); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log2.buf.String(), "reusing") {
		t.Fatalf("second setup did not reuse: %q", log2.buf.String())
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM transfers`); n != 1 {
		t.Fatalf("transfers after reuse = %d, want 1", n)
	}
	verifyClean(t, w, pool)

	// Different parameters: re-seed, saying so.
	cfg.OpeningBalance = 7000
	log3 := &testLog{t: t}
	if err := newWorkload(t, cfg).Setup(ctx, pool, log3); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log3.buf.String(), "re-seeding") {
		t.Fatalf("setup with new parameters did not say it re-seeds: %q", log3.buf.String())
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM transfers`); n != 0 {
		t.Fatalf("transfers after re-seed = %d, want 0", n)
	}
	if n := queryInt(t, pool, `SELECT sum(balance)::bigint FROM accounts`); n != 1500*7000 {
		t.Fatalf("total balance = %d, want %d", n, 1500*7000)
	}
}

func TestSeed100kAccounts(t *testing.T) {
	if testing.Short() {
		t.Skip("seeding 100k accounts is slow in -short mode")
	}
	srv := pgtest.Start(t)
	pool := newPool(t, srv.DSN)
	w := newWorkload(t, Config{Customers: 50000, AccountsPerCustomer: 2})
	start := time.Now()
	if err := w.Setup(context.Background(), pool, &testLog{t: t}); err != nil {
		t.Fatal(err)
	}
	t.Logf("seeding 100k accounts took %s", time.Since(start))
	if n := queryInt(t, pool, `SELECT count(*) FROM accounts`); n != 100000 {
		t.Fatalf("accounts = %d", n)
	}
}

func TestOperations(t *testing.T) {
	w, pool, _ := setup(t, 200)
	r := rand.New(rand.NewPCG(3, 4))
	s := workload.Session{Customer: 10}

	if err := runOp(t, w, pool, OpLogin, &s, r); err != nil {
		t.Fatal(err)
	}
	if s.Token == 0 || queryInt(t, pool, `SELECT count(*) FROM user_sessions WHERE id = $1 AND customer_id = 10 AND ended_at IS NULL`, s.Token) != 1 {
		t.Fatalf("login did not create the session row (token %d)", s.Token)
	}
	token := s.Token

	if err := runOp(t, w, pool, OpTransfer, &s, r); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM transfers WHERE kind = 'transfer'`); n != 1 {
		t.Fatalf("transfers = %d", n)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM ledger_entries WHERE kind LIKE 'transfer_%'`); n != 2 {
		t.Fatalf("transfer ledger rows = %d", n)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM accounts WHERE balance <> opening_balance`); n != 2 {
		t.Fatalf("accounts changed by transfer = %d, want 2", n)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM transfers WHERE kind = 'transfer' AND from_account BETWEEN 19 AND 20`); n != 1 {
		t.Fatal("transfer did not come from the customer's own account")
	}

	if err := runOp(t, w, pool, OpDeposit, &s, r); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM transfers t JOIN ledger_entries l ON l.ref = t.id WHERE t.kind = 'deposit' AND l.kind = 'deposit' AND t.to_account BETWEEN 19 AND 20`); n != 1 {
		t.Fatalf("deposit rows = %d", n)
	}

	for _, name := range []string{OpBalance, OpStatement, OpDashboard} {
		if err := runOp(t, w, pool, name, &s, r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	before := queryInt(t, pool, `SELECT sum(balance)::bigint FROM accounts`)
	for range 4 {
		if err := runOp(t, w, pool, OpBackgroundJob, &s, r); err != nil {
			t.Fatal(err)
		}
	}
	jobs := queryInt(t, pool, `SELECT count(*) FROM transfers WHERE kind IN ('interest', 'fee')`)
	if jobs != 4 {
		t.Fatalf("batch transfers rows = %d, want 4", jobs)
	}
	after := queryInt(t, pool, `SELECT sum(balance)::bigint FROM accounts`)
	delta := queryInt(t, pool, `SELECT sum(amount)::bigint FROM transfers WHERE kind IN ('interest', 'fee')`)
	if after-before != delta || delta == 0 {
		t.Fatalf("batches moved %d cents but recorded %d", after-before, delta)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM ledger_entries WHERE kind IN ('interest', 'fee')`); n < 300 {
		t.Fatalf("batch ledger rows = %d, want hundreds", n)
	}

	if err := runOp(t, w, pool, OpLogout, &s, r); err != nil {
		t.Fatal(err)
	}
	if s.Token != 0 || queryInt(t, pool, `SELECT count(*) FROM user_sessions WHERE id = $1 AND ended_at IS NOT NULL`, token) != 1 {
		t.Fatal("logout did not end the session")
	}

	res, err := w.Verify(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if !res.BalanceConserved || res.AcknowledgedWrites != 6 || res.LostAcknowledgedWrites != 0 || len(res.Details) != 0 {
		t.Fatalf("Verify = %+v", res)
	}
}

func TestInsufficientFundsIsNotAnError(t *testing.T) {
	w, pool, _ := setup(t, 50)
	if _, err := pool.Exec(context.Background(), `UPDATE accounts SET balance = 0, opening_balance = 0 WHERE customer_id = 5`); err != nil {
		t.Fatal(err)
	}
	s := workload.Session{Customer: 5}
	r := rand.New(rand.NewPCG(1, 1))
	if err := runOp(t, w, pool, OpTransfer, &s, r); err != nil {
		t.Fatal(err)
	}
	if w.InsufficientFunds() != 1 || queryInt(t, pool, `SELECT count(*) FROM transfers`) != 0 {
		t.Fatalf("insufficient = %d, want 1 and no transfer", w.InsufficientFunds())
	}
}

// hammer runs ops concurrently: goroutines × perG of a transfer-heavy mix, each
// goroutine on its own connection from dsn, reconnecting after errors.
func hammer(t *testing.T, w *Workload, dsn string, goroutines, perG int) (errs int64) {
	t.Helper()
	ops := []int{opTransfer, opTransfer, opTransfer, opTransfer, opTransfer, opTransfer, opDeposit, opDeposit, opBackgroundJob}
	var wg sync.WaitGroup
	var nErr atomic.Int64
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			r := rand.New(rand.NewPCG(uint64(g), 99))
			s := w.NewSession(g, r)
			var conn *pgx.Conn
			defer func() {
				if conn != nil {
					conn.Close(ctx)
				}
			}()
			for range perG {
				if conn == nil || conn.IsClosed() {
					c, err := pgx.Connect(ctx, dsn)
					if err != nil {
						nErr.Add(1)
						continue
					}
					conn = c
				}
				op := ops[r.IntN(len(ops))]
				if err := w.Ops()[op].Run(ctx, conn, &s, r); err != nil {
					nErr.Add(1)
					if conn.PgConn().TxStatus() != 'I' {
						conn.Close(ctx)
					}
				}
			}
		}()
	}
	wg.Wait()
	return nErr.Load()
}

func TestConcurrentTransfersConserveMoney(t *testing.T) {
	w, pool, dsn := setup(t, 100) // 200 accounts: plenty of lock contention
	errs := hammer(t, w, dsn, 16, 200)
	t.Logf("errors: %d, acknowledged: %d, insufficient funds: %d", errs, w.Acknowledged(), w.InsufficientFunds())
	if errs != 0 {
		t.Errorf("%d operations failed without faults", errs)
	}
	verifyClean(t, w, pool)
}

func TestTerminatedBackendsLoseNoAcknowledgedWrites(t *testing.T) {
	w, pool, dsn := setup(t, 100)
	workerDSN := dsn + "&application_name=banking_worker"
	done := make(chan struct{})
	var kills atomic.Int64
	go func() {
		tick := time.NewTicker(15 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				var n int64
				err := pool.QueryRow(context.Background(),
					`SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'banking_worker'`).Scan(&n)
				if err == nil {
					kills.Add(n)
				}
			}
		}
	}()
	errs := hammer(t, w, workerDSN, 8, 300)
	close(done)
	_, amb := w.log.counts()
	t.Logf("kills: %d, errors: %d, acknowledged: %d, ambiguous: %d", kills.Load(), errs, w.Acknowledged(), amb)
	if kills.Load() > 0 && errs == 0 {
		t.Error("backends were terminated but no operation failed")
	}
	verifyClean(t, w, pool)
}

func TestVerifyDetectsLostAcknowledgedWrite(t *testing.T) {
	w, pool, dsn := setup(t, 100)
	hammer(t, w, dsn, 4, 50)
	var victim [16]byte
	found := false
	for _, chunk := range w.log.snapshot() {
		for _, e := range chunk {
			if e.kind() == kindTransfer && !e.ambiguous() {
				victim, found = e.key, true
			}
		}
	}
	if !found {
		t.Fatal("no acknowledged transfer to delete")
	}
	if _, err := pool.Exec(context.Background(), `DELETE FROM transfers WHERE id = $1`, victim); err != nil {
		t.Fatal(err)
	}
	res, err := w.Verify(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.LostAcknowledgedWrites != 1 || res.BalanceConserved || len(res.Details) == 0 {
		t.Fatalf("Verify after deleting an acknowledged transfer = %+v", res)
	}
}

func TestVerifyDetectsBalanceDrift(t *testing.T) {
	w, pool, _ := setup(t, 20)
	if _, err := pool.Exec(context.Background(), `UPDATE accounts SET balance = balance + 1 WHERE id = 3`); err != nil {
		t.Fatal(err)
	}
	res, err := w.Verify(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if res.BalanceConserved || len(res.Details) != 2 {
		t.Fatalf("Verify after drifting one balance = %+v", res)
	}
}

func BenchmarkNext(b *testing.B) {
	w := newWorkload(b, Config{})
	r := rand.New(rand.NewPCG(1, 1))
	s := workload.Session{Customer: 1}
	b.ReportAllocs()
	for b.Loop() {
		if w.Next(&s, r) == opLogin {
			s.Token = 1
		}
	}
}

func BenchmarkTransfer(b *testing.B) {
	w, _, dsn := setup(b, 20000)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	r := rand.New(rand.NewPCG(1, 1))
	s := workload.Session{Customer: 1}
	run := w.Ops()[opTransfer].Run
	b.ReportAllocs()
	for b.Loop() {
		s.Customer = r.Int64N(20000) + 1
		if err := run(ctx, conn, &s, r); err != nil {
			b.Fatal(err)
		}
	}
}

func TestVerifyResolvesAmbiguousWrites(t *testing.T) {
	w, pool, _ := setup(t, 50)
	r := rand.New(rand.NewPCG(9, 9))
	s := workload.Session{Customer: 3}
	for range 3 {
		if err := runOp(t, w, pool, OpDeposit, &s, r); err != nil {
			t.Fatal(err)
		}
	}
	// A second client whose commits of two of those deposits were ambiguous, plus one
	// ambiguous deposit that never reached the database.
	other := newWorkload(t, Config{Customers: 50, AccountsPerCustomer: 2, OpeningBalance: 100000})
	n := 0
	for _, chunk := range w.log.snapshot() {
		for _, e := range chunk {
			if n < 2 {
				other.log.add(e.key, e.kind(), e.amount(), true)
				n++
			}
		}
	}
	other.log.add(other.newKey(r), kindDeposit, 5, true)
	res, err := other.Verify(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ambiguous != 3 || res.AmbiguousCommitted != 2 || res.AcknowledgedWrites != 0 || res.LostAcknowledgedWrites != 0 || !res.BalanceConserved {
		t.Fatalf("Verify = %+v", res)
	}
}

func TestVerifyManyKeysIsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("large verification in -short mode")
	}
	w, pool, _ := setup(t, 1000)
	seedManyDeposits(t, w, pool)
	verifyClean(t, w, pool)
}

// seedManyDeposits records n acknowledged deposits and writes them.
func seedManyDeposits(t *testing.T, w *Workload, pool *pgxpool.Pool) {
	ctx := context.Background()
	const n = 200000
	r := rand.New(rand.NewPCG(1, 1))
	keys := make([][16]byte, n)
	for i := range keys {
		keys[i] = w.newKey(r)
		w.log.add(keys[i], kindDeposit, 1, false)
	}
	// Write the matching rows directly: n deposits of one cent into account 1.
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"transfers"}, []string{"id", "to_account", "amount", "kind"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) { return []any{keys[i], int64(1), int64(1), "deposit"}, nil })); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"ledger_entries"}, []string{"account_id", "amount", "kind", "ref"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) { return []any{int64(1), int64(1), "deposit", keys[i]}, nil })); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE accounts SET balance = balance + $1 WHERE id = 1`, n); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
}

// TestCommitInterruptedAfterLocalCommitIsAmbiguous makes a COMMIT wait for a
// synchronous standby that does not exist, then terminates the backend: the server
// has committed locally but the client only sees the connection close. The deposit
// must be reported ambiguous and Verify must find it committed.
func TestCommitInterruptedAfterLocalCommitIsAmbiguous(t *testing.T) {
	w, pool, dsn := setup(t, 20)
	ctx := context.Background()
	err := pgtest.CommitCutOff(t, pool, dsn, func(ctx context.Context, conn *pgx.Conn) error {
		s := workload.Session{Customer: 2}
		return w.Ops()[opDeposit].Run(ctx, conn, &s, rand.New(rand.NewPCG(1, 1)))
	})
	if !errors.Is(err, workload.ErrAmbiguous) {
		t.Fatalf("deposit returned %v, want ErrAmbiguous", err)
	}
	res, err := w.Verify(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ambiguous != 1 || res.AmbiguousCommitted != 1 || !res.BalanceConserved || res.LostAcknowledgedWrites != 0 {
		t.Fatalf("Verify = %+v", res)
	}
}

func TestActiveSessionsStartLoggedIn(t *testing.T) {
	srv := pgtest.Start(t)
	pool := newPool(t, srv.DSN)
	ctx := context.Background()
	w := newWorkload(t, Config{Customers: 300, AccountsPerCustomer: 2, OpeningBalance: 5000})
	w.SetActiveSessions(1000)
	if err := w.Setup(ctx, pool, &testLog{t: t}); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM user_sessions WHERE ended_at IS NULL`); n != 1000 {
		t.Fatalf("open user_sessions = %d, want 1000", n)
	}
	r := rand.New(rand.NewPCG(3, 3))
	s := w.NewSession(42, r)
	if s.Token != 43 || s.Left <= 0 {
		t.Fatalf("session 42 = %+v, want logged in with token 43 and actions left", s)
	}
	if got := queryInt(t, pool, `SELECT customer_id FROM user_sessions WHERE id = 43`); got != s.Customer {
		t.Fatalf("seeded row's customer %d != session's customer %d", got, s.Customer)
	}
	if s2 := w.NewSession(1000, r); s2.Token != 0 {
		t.Fatalf("session 1000 is beyond the active count but has token %d", s2.Token)
	}
	s.Left = 0
	if op := w.Next(&s, r); w.Ops()[op].Name != OpLogout {
		t.Fatalf("a session with no actions left chose %s, want logout", w.Ops()[op].Name)
	}
	if err := runOp(t, w, pool, OpLogout, &s, r); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, pool, `SELECT count(*) FROM user_sessions WHERE id = 43 AND ended_at IS NOT NULL`); n != 1 {
		t.Fatal("logout did not end the seeded session row")
	}
	// A new login gets an id past the seeded ones.
	if err := runOp(t, w, pool, OpLogin, &s, r); err != nil {
		t.Fatal(err)
	}
	if s.Token <= 1000 {
		t.Fatalf("new login token %d collides with seeded ids", s.Token)
	}
}
