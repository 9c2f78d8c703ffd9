// Package tpcb is pgbench's built-in TPC-B-like workload (and its select-only
// variant, pgbench -S) on pgbench's own tables, so results compare with pgbench runs
// and existing pgbench data sets can be reused.
package tpcb

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/rehearse-dev/rehearse/workload"
)

// ErrScaleMismatch is returned by Setup when pgbench tables exist at another scale;
// the tables are never dropped without the user's say-so.
var ErrScaleMismatch = errors.New("tpcb: pgbench tables exist at a different scale")

// ErrConfig is returned by New for an unusable configuration.
var ErrConfig = errors.New("tpcb: invalid workload configuration")

// DefaultScale is the pgbench scale factor used when the configuration has none.
const DefaultScale = 10

// pgbench's sizes per unit of scale.
const (
	nBranches = 1
	nTellers  = 10
	nAccounts = 100000
	// scale32BitThreshold is pgbench's SCALE_32BIT_THRESHOLD: from this scale on,
	// account ids need bigint.
	scale32BitThreshold = 20000
)

// Operation names.
const (
	OpTPCB   = "tpcb"
	OpSelect = "select"
)

// Workload is the pgbench TPC-B-like workload. It is safe for concurrent use.
type Workload struct {
	scale      int64
	selectOnly bool
	pipelined  bool
	ops        []workload.Op

	historyAtSetup int64
	txPool         sync.Pool
	acked          atomic.Int64
	ambiguous      atomic.Int64
}

var _ workload.Workload = (*Workload)(nil)

// Option tunes the workload beyond what a scenario file says.
type Option func(*Workload)

// Pipelined sends BEGIN and the TPC-B transaction's five statements as one pipelined
// batch and END on its own: two round trips per transaction instead of pgbench's
// seven. It measures what pipelining buys; it is not pgbench's wire behaviour, so
// results taken with it do not compare with `pgbench -M prepared`.
func Pipelined() Option { return func(w *Workload) { w.pipelined = true } }

// Config sizes the workload.
type Config struct {
	// Scale is pgbench's scale factor: 100,000 accounts per unit (default 10).
	Scale int
}

// New builds the workload at cfg.Scale (default 10). selectOnly gives pgbench -S.
// By default every statement is prepared and sent in its own round trip, exactly the
// wire work of `pgbench -M prepared`.
func New(cfg Config, selectOnly bool, opts ...Option) (*Workload, error) {
	w := &Workload{scale: int64(cfg.Scale), selectOnly: selectOnly}
	for _, o := range opts {
		o(w)
	}
	w.txPool.New = newTPCBTx
	if w.scale == 0 {
		w.scale = DefaultScale
	}
	if w.scale < 0 {
		return nil, fmt.Errorf("%w: scale must be positive, got %d", ErrConfig, w.scale)
	}
	if selectOnly {
		w.ops = []workload.Op{{Name: OpSelect, Kind: workload.Read, Run: w.selectOp}}
	} else {
		run := w.tpcb
		if w.pipelined {
			run = w.tpcbPipelined
		}
		w.ops = []workload.Op{{Name: OpTPCB, Kind: workload.Write, Run: run}}
	}
	return w, nil
}

// Name returns "tpcb" or "tpcb-select".
func (w *Workload) Name() string {
	if w.selectOnly {
		return "tpcb-select"
	}
	return "tpcb"
}

// Ops returns the single operation.
func (w *Workload) Ops() []workload.Op { return w.ops }

// NewSession returns an empty session: pgbench clients carry no state.
func (w *Workload) NewSession(int, *rand.Rand) workload.Session { return workload.Session{} }

// Next always returns the single operation.
func (w *Workload) Next(*workload.Session, *rand.Rand) int { return 0 }

// ConnBound reports that the operations wait on nothing but their connection, so the
// load generator may bound them by the connection's deadline and run several
// connections on one thread (loadgen.ConnBound).
func (w *Workload) ConnBound() bool { return true }

// Acknowledged is the number of committed TPC-B transactions so far.
func (w *Workload) Acknowledged() int64 { return w.acked.Load() }
