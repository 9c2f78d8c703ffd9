package rehearse

import (
	"errors"

	"github.com/rehearse-dev/rehearse/internal/capacity"
	"github.com/rehearse-dev/rehearse/internal/engine"
)

// Sentinel errors returned (wrapped) by Run and Capacity. The CLI maps them to exit
// codes.
var (
	// ErrInvalidInput means the scenario, an option or a DSN is unusable (exit 2).
	// Field problems come as a *scenarios.Errors (errors.As), each naming its field
	// (load.duration, capacity.to), so a caller can say which of its inputs is wrong.
	ErrInvalidInput = engine.ErrInvalidInput
	// ErrSLOBreached means the run completed but at least one SLO was breached (exit 3).
	ErrSLOBreached = errors.New("SLO breached")
	// ErrInterrupted means the run was interrupted; the results so far were written
	// and marked interrupted (exit 130).
	ErrInterrupted = engine.ErrInterrupted
	// ErrBelowPeak means a capacity sign-off found a sustainable rate below the
	// declared peak, or no sustainable rate at all. Capacity wraps it together with
	// ErrSLOBreached, so the CLI exits 3.
	ErrBelowPeak = capacity.ErrBelowPeak
	// ErrAborted means a live guardrail (cutover.abort_if) aborted the cutover and
	// it was undone. Run wraps it together with ErrSLOBreached, so the CLI exits 3.
	ErrAborted = engine.ErrAborted
)
