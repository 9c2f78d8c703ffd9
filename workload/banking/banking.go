// Package banking is the banking workload: customers with accounts, logins, balance
// and statement reads, transfers and deposits keyed by client-generated idempotency
// keys, and background interest/fee batches. Its integrity check is a Jepsen-style
// bank test: money is conserved, every account's balance equals its opening balance
// plus its ledger, and every acknowledged write is present exactly once.
package banking

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/rehearse-dev/rehearse/workload"
)

// ErrConfig is returned by New for an unusable workload configuration.
var ErrConfig = errors.New("banking: invalid workload configuration")

// Defaults used when the corresponding configuration field is zero.
const (
	DefaultCustomers           = 20000
	DefaultAccountsPerCustomer = 2
	DefaultOpeningBalance      = 100000
	DefaultActionsPerLogin     = 20
)

// Operation names, exactly as reported in results.
const (
	OpLogin         = "login"
	OpBalance       = "balance"
	OpStatement     = "statement"
	OpTransfer      = "transfer"
	OpDeposit       = "deposit"
	OpLogout        = "logout"
	OpDashboard     = "dashboard"
	OpBackgroundJob = "background_job"
)

// Indexes into Ops(); the order is fixed.
const (
	opLogin = iota
	opBalance
	opStatement
	opTransfer
	opDeposit
	opLogout
	opDashboard
	opBackgroundJob
	numOps
)

// jobSize is the number of contiguous accounts one background job touches.
const jobSize = 500

// Workload is the banking workload. It is safe for concurrent use by many workers.
type Workload struct {
	customers      int64
	perCustomer    int64
	accounts       int64
	openingBalance int64
	actions        int32

	ops []workload.Op
	// cum is the cumulative mix weight table and mixOps the op index of each entry;
	// Next scans it linearly (at most six entries), which beats any map on the hot path.
	cum    []float64
	mixOps []int
	total  float64

	saltHi, saltLo uint64
	seq            atomic.Uint64

	insufficient atomic.Int64
	log          outcomeLog

	// active is the number of sessions already logged in when the run starts; Setup
	// gives each a user_sessions row (ids 1..active), so a rehearsal starts with its
	// users mid-session instead of all logging in at once.
	active int64
}

var _ workload.Workload = (*Workload)(nil)

// Config sizes the banking workload. Zero fields take the package defaults.
type Config struct {
	// Customers is the number of customers seeded.
	Customers int
	// AccountsPerCustomer is the number of accounts each customer owns.
	AccountsPerCustomer int
	// OpeningBalance is each account's opening balance in cents.
	OpeningBalance int64
	// ActionsPerLogin is the mean number of actions between login and logout.
	ActionsPerLogin int
	// Mix weights the in-session actions by operation name; empty means DefaultMix.
	Mix map[string]float64
}

// DefaultMix returns the default weights of the in-session actions (weights, not
// percentages). The scenario defaults carry the same mix; a test keeps them equal.
func DefaultMix() map[string]float64 {
	return map[string]float64{
		OpBalance:       35,
		OpStatement:     15,
		OpTransfer:      20,
		OpDeposit:       8,
		OpDashboard:     20,
		OpBackgroundJob: 0.05,
	}
}

// New builds the banking workload. Zero fields take the package defaults; negative
// sizes and unknown mix entries are errors.
func New(cfg Config) (*Workload, error) {
	w, problems := sized(cfg)
	w.ops = []workload.Op{
		opLogin:         {Name: OpLogin, Kind: workload.Write, Run: w.login},
		opBalance:       {Name: OpBalance, Kind: workload.Read, Run: w.balance},
		opStatement:     {Name: OpStatement, Kind: workload.Read, Run: w.statement},
		opTransfer:      {Name: OpTransfer, Kind: workload.Write, Run: w.transfer},
		opDeposit:       {Name: OpDeposit, Kind: workload.Write, Run: w.deposit},
		opLogout:        {Name: OpLogout, Kind: workload.Write, Run: w.logout},
		opDashboard:     {Name: OpDashboard, Kind: workload.Read, Run: w.dashboard},
		opBackgroundJob: {Name: OpBackgroundJob, Kind: workload.Write, Run: w.backgroundJob},
	}
	problems = append(problems, w.setMix(cfg.Mix)...)
	// An empty mix is only worth reporting when nothing else is wrong: a mix whose
	// only entries were rejected above is empty because of them.
	if w.total <= 0 && len(problems) == 0 {
		problems = append(problems, "mix has no positive weight")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrConfig, strings.Join(problems, "; "))
	}
	var err error
	if w.saltHi, w.saltLo, err = newSalt(); err != nil {
		return nil, err
	}
	return w, nil
}

// sized returns a workload with cfg's sizes, the package defaults for those left
// zero, and what is wrong with them, so New can report every problem at once.
func sized(cfg Config) (*Workload, []string) {
	w := &Workload{
		customers:      int64(cfg.Customers),
		perCustomer:    int64(cfg.AccountsPerCustomer),
		openingBalance: cfg.OpeningBalance,
		actions:        int32(cfg.ActionsPerLogin),
	}
	if w.customers == 0 {
		w.customers = DefaultCustomers
	}
	if w.perCustomer == 0 {
		w.perCustomer = DefaultAccountsPerCustomer
	}
	if w.openingBalance == 0 {
		w.openingBalance = DefaultOpeningBalance
	}
	if w.actions == 0 {
		w.actions = DefaultActionsPerLogin
	}
	var problems []string
	if w.customers < 0 {
		problems = append(problems, fmt.Sprintf("customers must be positive, got %d", w.customers))
	}
	if w.perCustomer < 0 {
		problems = append(problems, fmt.Sprintf("accounts_per_customer must be positive, got %d", w.perCustomer))
	}
	if w.openingBalance < 0 {
		problems = append(problems, fmt.Sprintf("opening_balance must not be negative, got %d", w.openingBalance))
	}
	if w.actions < 0 {
		problems = append(problems, fmt.Sprintf("actions_per_login must be positive, got %d", w.actions))
	}
	w.accounts = w.customers * w.perCustomer
	if len(problems) == 0 && w.accounts < 2 {
		problems = append(problems, "transfers need at least two accounts (customers × accounts_per_customer ≥ 2)")
	}
	return w, problems
}

// setMix builds the cumulative weight table Next draws from out of mix (DefaultMix
// when empty), and returns what is wrong with mix: negative weights and operations
// that are not in-session actions. It needs w.ops.
func (w *Workload) setMix(mix map[string]float64) []string {
	if len(mix) == 0 {
		mix = DefaultMix()
	}
	var problems []string
	weights := make([]float64, numOps)
	var unknown []string
	for name, wt := range mix {
		idx := -1
		for i, op := range w.ops {
			if op.Name == name && i != opLogin && i != opLogout {
				idx = i
			}
		}
		switch {
		case idx < 0:
			unknown = append(unknown, name)
		case wt < 0:
			problems = append(problems, fmt.Sprintf("mix weight of %s must not be negative, got %g", name, wt))
		default:
			weights[idx] = wt
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		problems = append(problems, fmt.Sprintf("unknown mix operations %s (known: balance, statement, transfer, deposit, dashboard, background_job)", strings.Join(unknown, ", ")))
	}
	// Build the table in op order so the same seed always gives the same choices.
	for i, wt := range weights {
		if wt > 0 {
			w.total += wt
			w.cum = append(w.cum, w.total)
			w.mixOps = append(w.mixOps, i)
		}
	}
	return problems
}

// newSalt draws the random salt newKey mixes into every idempotency key.
func newSalt() (hi, lo uint64, err error) {
	var salt [16]byte
	if _, err = rand.Read(salt[:]); err != nil {
		return 0, 0, fmt.Errorf("banking: idempotency key salt: %w", err)
	}
	return binary.BigEndian.Uint64(salt[:8]), binary.BigEndian.Uint64(salt[8:]), nil
}

// Name returns "banking".
func (w *Workload) Name() string { return "banking" }

// Ops lists the operations; the slice must not be modified.
func (w *Workload) Ops() []workload.Op { return w.ops }

// NewSession assigns session i a customer drawn uniformly from r. The session starts
// logged out.
//
// Session i's customer is a fixed function of i, so the rows Setup seeds for active
// sessions and the sessions the load generator creates agree. Sessions below the
// active count start logged in, with a random number of actions left.
func (w *Workload) NewSession(i int, r *mrand.Rand) workload.Session {
	s := workload.Session{Customer: w.sessionCustomer(int64(i))}
	if int64(i) < w.active {
		s.Token = int64(i) + 1
		s.Left = int32(r.IntN(int(2*w.actions-1))) + 1
	}
	return s
}

// SetActiveSessions makes the first n sessions start logged in (see NewSession).
// Call it before Setup.
func (w *Workload) SetActiveSessions(n int) { w.active = int64(max(n, 0)) }

// sessionCustomer spreads sessions over customers with a splitmix64 step of i.
func (w *Workload) sessionCustomer(i int64) int64 {
	z := uint64(i) + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return int64(z%uint64(w.customers)) + 1
}

// Next chooses the session's next operation: login when logged out, then actions
// from the mix until Left runs out, then logout. It does not allocate.
func (w *Workload) Next(s *workload.Session, r *mrand.Rand) int {
	if s.Token == 0 {
		// Uniform on 1..2×mean-1: mean actions per login, never zero.
		s.Left = int32(r.IntN(int(2*w.actions-1))) + 1
		return opLogin
	}
	if s.Left <= 0 {
		return opLogout
	}
	s.Left--
	u := r.Float64() * w.total
	for i, c := range w.cum {
		if u < c {
			return w.mixOps[i]
		}
	}
	return w.mixOps[len(w.mixOps)-1]
}

// InsufficientFunds is the number of transfers declined for lack of funds: a business
// outcome, not an error, reported in the result notes.
func (w *Workload) InsufficientFunds() int64 { return w.insufficient.Load() }

// Acknowledged is the number of acknowledged transfers, deposits and batch jobs so far.
func (w *Workload) Acknowledged() int64 { a, _ := w.log.counts(); return a }

// Accounts is the number of accounts seeded.
func (w *Workload) Accounts() int64 { return w.accounts }

// firstAccount is the id of customer c's first account; its accounts are contiguous.
func (w *Workload) firstAccount(c int64) int64 { return (c-1)*w.perCustomer + 1 }

// newKey returns a fresh UUIDv4 idempotency key without allocating. A process-wide
// counter guarantees uniqueness within the run even if two workers share a random
// stream; a random salt keeps reruns with the same seed from reusing keys.
func (w *Workload) newKey(r *mrand.Rand) [16]byte {
	var k [16]byte
	binary.BigEndian.PutUint64(k[:8], r.Uint64()^w.saltHi)
	binary.BigEndian.PutUint64(k[8:], w.seq.Add(1)^w.saltLo)
	k[6] = k[6]&0x0f | 0x40 // version 4
	k[8] = k[8]&0x3f | 0x80 // RFC 4122 variant
	return k
}
