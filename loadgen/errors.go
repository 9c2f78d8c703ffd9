package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Class is an error class from DESIGN.md's measurement definitions.
type Class uint8

// Error classes. OK is the absence of an error.
const (
	OK Class = iota
	ConnectionRefused
	ConnectionReset
	AdminShutdown
	ReadOnly
	Serialization
	Deadlock
	Timeout
	PoolExhausted
	Other
	numClasses
)

var classNames = [numClasses]string{
	OK:                "ok",
	ConnectionRefused: "connection_refused",
	ConnectionReset:   "connection_reset",
	AdminShutdown:     "admin_shutdown",
	ReadOnly:          "read_only",
	Serialization:     "serialization",
	Deadlock:          "deadlock",
	Timeout:           "timeout",
	PoolExhausted:     "pool_exhausted",
	Other:             "other",
}

// String returns the class name used in results.
func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "other"
}

// Retryable reports whether the class is retried by the load generator (40001, 40P01).
func (c Class) Retryable() bool { return c == Serialization || c == Deadlock }

// ErrPoolExhausted marks a failure to get a connection from the pool before the
// operation's deadline.
var ErrPoolExhausted = errors.New("no pooled connection available before the deadline")

// Classify maps an error to its class and SQLSTATE ("" for transport errors).
func Classify(err error) (Class, string) {
	if err == nil {
		return OK, ""
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return classifySQLState(pgErr.Code), pgErr.Code
	}
	var connErr *pgconn.ConnectError
	switch {
	case errors.Is(err, ErrPoolExhausted):
		return PoolExhausted, ""
	case errors.Is(err, syscall.ECONNREFUSED):
		return ConnectionRefused, ""
	case errors.As(err, &connErr) && !errors.Is(err, context.DeadlineExceeded):
		// A connection attempt that failed (refused, or reset by an endpoint whose
		// backend is down): the client could not get in.
		return ConnectionRefused, ""
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return Timeout, ""
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, net.ErrClosed):
		return ConnectionReset, ""
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return ConnectionReset, ""
	}
	// pgx reports a connection it already knows to be dead with plain text.
	if msg := err.Error(); strings.Contains(msg, "conn closed") || strings.Contains(msg, "conn busy") {
		return ConnectionReset, ""
	}
	return Other, ""
}

func classifySQLState(code string) Class {
	switch {
	case code == "40001":
		return Serialization
	case code == "40P01":
		return Deadlock
	case code == "25006":
		return ReadOnly
	case code == "57014":
		return Timeout
	case code == "57P01", code == "57P02", code == "57P03":
		return AdminShutdown
	case strings.HasPrefix(code, "08"):
		return ConnectionReset
	case code == "53300": // too_many_connections: the server refused a connection
		return ConnectionRefused
	}
	return Other
}
