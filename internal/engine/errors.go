package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/rehearse-dev/rehearse/migrate"
)

// Sentinel errors of a rehearsal. The root package re-exports them and the CLI maps
// them to exit codes.
var (
	// ErrInvalidInput means the scenario, an option or a DSN is unusable (exit 2).
	// Nothing was started, or what was started has been stopped.
	ErrInvalidInput = errors.New("invalid input")
	// ErrInterrupted means the run was interrupted; the results so far were written
	// and marked interrupted (exit 130).
	ErrInterrupted = errors.New("interrupted")
	// ErrAborted means a live guardrail (cutover.abort_if) aborted the cutover,
	// which was undone; the result records the breach (exit 3).
	ErrAborted = migrate.ErrAborted
)

// interrupted wraps err as an interruption when ctx was cancelled.
func interrupted(ctx context.Context, while string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %s: %w", ErrInterrupted, while, err)
	}
	return err
}
