// Package workload defines what the load generator runs: operations, the per-session
// state they share, and the contract every workload (banking, tpcb) implements.
package workload

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rehearse-dev/rehearse/result"
)

// Kind says which endpoint an operation belongs to.
type Kind uint8

// Operation kinds.
const (
	// Read operations go to the reader endpoint.
	Read Kind = iota
	// Write operations go to the writer endpoint.
	Write
)

// String returns "read" or "write".
func (k Kind) String() string {
	if k == Write {
		return "write"
	}
	return "read"
}

// Session is one simulated user's state. It is deliberately small: 100k sessions must
// fit in a few hundred bytes each, so a workload keeps anything larger elsewhere.
type Session struct {
	// Customer is the customer this user logs in as.
	Customer int64
	// Token is the user_sessions row of the current login; 0 when logged out.
	Token int64
	// Left is the number of actions left before the user logs out.
	Left int32
	// Hold asks to keep the connection the operation ran on for the session's next
	// operation (an open transaction block); the operation sets it, and clears it
	// when the block ends. The load generator then runs the next operation on that
	// connection, whatever its kind.
	Hold bool
	// Pinned is which endpoint's pool holds the session's connection: set by the
	// load generator, not by workloads.
	Pinned uint8
}

// OpFunc runs one operation on a connection. It returns ErrAmbiguous (wrapped) when
// the outcome of a COMMIT is unknown.
type OpFunc func(ctx context.Context, c *pgx.Conn, s *Session, r *rand.Rand) error

// Op is one named operation.
type Op struct {
	// Name is reported in results ("transfer", "balance", ...).
	Name string
	// Kind routes the operation to the writer or reader endpoint.
	Kind Kind
	// Run executes it.
	Run OpFunc
}

// ErrAmbiguous marks an operation whose COMMIT outcome is unknown because the
// connection broke while committing. It is resolved after the run by idempotency key.
var ErrAmbiguous = errors.New("commit outcome unknown")

// Workload is a set of operations over a schema, with setup and an integrity check.
type Workload interface {
	// Name is the workload's name (banking, tpcb, tpcb-select).
	Name() string
	// Setup creates the schema and seeds data, reusing what already exists.
	// Progress lines go to log.
	Setup(ctx context.Context, pool *pgxpool.Pool, log io.Writer) error
	// Ops lists the operations; Next returns indexes into this slice.
	Ops() []Op
	// NewSession returns the initial state of simulated session i.
	NewSession(i int, r *rand.Rand) Session
	// Next chooses the session's next operation (login, actions, logout ...).
	Next(s *Session, r *rand.Rand) int
	// Verify checks integrity after the run against the writer.
	Verify(ctx context.Context, pool *pgxpool.Pool) (result.Integrity, error)
}
