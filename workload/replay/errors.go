package replay

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by every error about the replay's input: a capture that is
// missing, empty or not a PostgreSQL csvlog, a configuration out of range, a filter
// that leaves nothing to replay. Each message reads file:line: what is wrong and
// how to fix it. Nothing has been started when Open returns one.
var ErrInvalid = errors.New("invalid replay capture")

// invalidError is an input problem; it wraps ErrInvalid.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// captureHowTo tells how to take a capture the replay reads.
const captureHowTo = "capture with logging_collector = on, log_destination = 'csvlog', " +
	"log_min_duration_statement = 0 (or log_statement = 'all'), log_connections = on and " +
	"log_disconnections = on, and give the .csv file the server writes next to its log " +
	"(on Aurora set them in the DB cluster parameter group, on RDS in the DB parameter group, " +
	"and download the csvlog with aws rds download-db-log-file-portion --db-instance-identifier INSTANCE " +
	"--log-file-name error/postgresql.log.YYYY-MM-DD-HHMM.csv --starting-token 0 --output text > capture.csv; " +
	"RDS names it error/postgresql.log.YYYY-MM-DD-HH.csv)"
