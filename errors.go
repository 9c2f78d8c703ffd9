package rehearse

import "errors"

// Sentinel errors returned (wrapped) by Run. The CLI maps them to exit codes.
var (
	// ErrInvalidInput means the scenario, an option or a DSN is unusable (exit 2).
	ErrInvalidInput = errors.New("invalid input")
	// ErrSLOBreached means the run completed but at least one SLO was breached (exit 3).
	ErrSLOBreached = errors.New("SLO breached")
	// ErrInterrupted means the run was interrupted; the results so far were written
	// and marked interrupted (exit 130).
	ErrInterrupted = errors.New("interrupted")
)
