package scenarios

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
)

// ErrInvalid marks every error caused by invalid input: a missing or unreadable file,
// broken YAML, unknown fields, wrong types and values that fail validation. The CLI maps
// it to exit code 2. Match it with errors.Is.
var ErrInvalid = errors.New("invalid scenario")

// FieldError is one problem with a scenario, located as precisely as the input allows.
type FieldError struct {
	// File is the scenario's path ("" when it was not read from a file).
	File string
	// Line and Col are 1-based; 0 means unknown (e.g. after a programmatic change).
	Line, Col int
	// Field is the YAML path of the field, e.g. "load.stages[1].rate"; "" for
	// problems with the file as a whole.
	Field string
	// Msg says what is wrong and what to do about it.
	Msg string

	// err is an underlying cause (e.g. the os error of a missing file).
	err error
}

// Error formats the problem as "file:line:col: field.path: message", leaving out the
// parts that are unknown.
func (e FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
			if e.Col > 0 {
				fmt.Fprintf(&b, ":%d", e.Col)
			}
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is reports that every FieldError is an ErrInvalid.
func (e FieldError) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the underlying cause, if any (e.g. fs.ErrNotExist for a missing file).
func (e FieldError) Unwrap() error { return e.err }

// Errors is every problem found in one scenario, in file order. Load and Parse return
// it (as *Errors) for all invalid input.
type Errors struct {
	// List holds the problems, sorted by position; problems without one come last.
	List []FieldError
}

// Error prints one problem per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, fe := range e.List {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// Is reports that Errors is an ErrInvalid.
func (e *Errors) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the individual problems so errors.Is/As can reach their causes.
func (e *Errors) Unwrap() []error {
	out := make([]error, len(e.List))
	for i, fe := range e.List {
		out[i] = fe
	}
	return out
}

// sortErrors orders problems by line and column, keeping problems without a position
// (in their original order) at the end.
func sortErrors(list []FieldError) {
	slices.SortStableFunc(list, func(a, b FieldError) int {
		switch {
		case a.Line == 0 && b.Line == 0:
			return 0
		case a.Line == 0:
			return 1
		case b.Line == 0:
			return -1
		case a.Line != b.Line:
			return a.Line - b.Line
		default:
			return a.Col - b.Col
		}
	})
}

// Problem is a problem with the field at path that only the run could find (the
// database refused an invariant's SQL, say), placed where s's file writes the
// field, or its nearest section: its Error reads "file:line:col: path: msg". A
// scenario not read from a file, or whose file changed since, gives the problem
// without a line.
func (s *Scenario) Problem(path, msg string) FieldError {
	fe := FieldError{File: s.File, Field: path, Msg: msg}
	if s.File == "" {
		return fe
	}
	data, err := os.ReadFile(s.File)
	if sum := sha256.Sum256(data); err != nil || hex.EncodeToString(sum[:]) != s.SHA256 {
		return fe
	}
	d := newDecoder(s.File)
	if root, ok := d.document(data); ok {
		v := defaults()
		d.decode(root, reflect.ValueOf(&v).Elem(), "")
		fe.Line, fe.Col = d.locate(path)
	}
	return fe
}
