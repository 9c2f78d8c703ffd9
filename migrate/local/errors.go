package local

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Match them with errors.Is; the concrete errors carry the details
// (command, output, server log tail, what to do).
var (
	// ErrNoBinaries means no usable PostgreSQL server binaries (postgres, initdb,
	// pg_ctl) were found.
	ErrNoBinaries = errors.New("local: PostgreSQL server binaries not found")
	// ErrNoFreePort means no free loopback address and port could be obtained for a node.
	ErrNoFreePort = errors.New("local: no free loopback port")
	// ErrPortInUse means the port a node must listen on is already taken.
	ErrPortInUse = errors.New("local: port already in use")
	// ErrNoOSUser means the process runs as root and the unprivileged OS user that
	// PostgreSQL must run as does not exist.
	ErrNoOSUser = errors.New("local: no unprivileged OS user to run PostgreSQL as")
	// ErrInvalidConfig means a Config field is unusable; the error lists every problem.
	ErrInvalidConfig = errors.New("local: invalid config")
	// ErrDataDirExists means the node's data directory already exists, so
	// InitPrimary refuses to overwrite it.
	ErrDataDirExists = errors.New("local: data directory already exists")
	// ErrAlreadyRunning means Start was called on a node whose server is running.
	ErrAlreadyRunning = errors.New("local: server already running")
	// ErrCommand means a PostgreSQL program (initdb, pg_ctl, ...) failed.
	ErrCommand = errors.New("local: command failed")
)

// CommandError describes a failed PostgreSQL program run: what was attempted, the
// command line, its output, the tail of the server log and a hint on what to do.
// It matches ErrCommand (and Kind, when set) with errors.Is.
type CommandError struct {
	// Op says what was attempted, e.g. "start node1".
	Op string
	// Args is the command line, program first.
	Args []string
	// Output is the program's combined stdout and stderr (trimmed).
	Output string
	// LogFile is the server log the tail came from; empty when none.
	LogFile string
	// LogTail is the last lines the server wrote during this attempt.
	LogTail string
	// Hint says what to do about it.
	Hint string
	// Kind is a more specific sentinel (e.g. ErrPortInUse); nil when none applies.
	Kind error
	// Err is the underlying error (exit status, context deadline, ...).
	Err error
}

// Error renders the failure as a short paragraph with indented details.
func (e *CommandError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "local: %s failed: %v", e.Op, e.Err)
	if len(e.Args) > 0 {
		fmt.Fprintf(&b, "\n  command: %s", strings.Join(e.Args, " "))
	}
	if e.Output != "" {
		fmt.Fprintf(&b, "\n  output:\n%s", indent(e.Output, "    "))
	}
	if e.LogTail != "" {
		fmt.Fprintf(&b, "\n  server log (%s), last lines:\n%s", e.LogFile, indent(e.LogTail, "    "))
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, "\n  what to do: %s", e.Hint)
	}
	return b.String()
}

// Unwrap exposes ErrCommand, the specific Kind and the underlying error.
func (e *CommandError) Unwrap() []error {
	errs := []error{ErrCommand}
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}
