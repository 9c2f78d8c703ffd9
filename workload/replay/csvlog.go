package replay

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Columns of a PostgreSQL csvlog record. PostgreSQL 9.0 to 12 write the first 23,
// 13 adds backend_type, 14 adds leader_pid and query_id (26 in all, as 15 does).
const (
	colLogTime = iota
	colUserName
	colDatabaseName
	colProcessID
	colConnectionFrom
	colSessionID
	colSessionLineNum
	colCommandTag
	colSessionStartTime
	colVirtualTransactionID
	colTransactionID
	colErrorSeverity
	colSQLStateCode
	colMessage
	colDetail
	colHint
	colInternalQuery
	colInternalQueryPos
	colContext
	colQuery
	colQueryPos
	colLocation
	colApplicationName
	colBackendType // PostgreSQL 13 and later
	colLeaderPID   // 14 and later
	colQueryID     // 14 and later

	minColumns = colApplicationName + 1
	maxColumns = colQueryID + 1
)

// record is one csvlog record, the fields the replay reads.
type record struct {
	line        int   // the line the record starts on
	logTime     int64 // Unix nanoseconds
	user, db    string
	app         string
	session     string
	tag         string
	severity    string
	sqlState    string
	message     string
	detail      string
	context     string
	query       string
	backendType string // "" before PostgreSQL 13
}

// csvlog reads a csvlog record by record: memory does not grow with the file.
type csvlog struct {
	path    string
	r       *csv.Reader
	records int64 // records read
	offset  int64 // where the last record read starts
	tz      tzCache
}

func newCSVLog(path string, r io.Reader) *csvlog { return newCSVLogSize(path, r, 64<<10) }

// newCSVLogSize reads r through a buffer of size bytes.
func newCSVLogSize(path string, r io.Reader, size int) *csvlog {
	cr := csv.NewReader(bufio.NewReaderSize(r, size))
	// Records of 23 to 26 fields are accepted, each checked; quotes must be
	// well formed, as PostgreSQL writes them.
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = false
	cr.ReuseRecord = true
	return &csvlog{path: path, r: cr}
}

// next reads the next record into rec. It returns io.EOF at the end, and an error
// wrapping ErrInvalid when the input is not a csvlog.
func (c *csvlog) next(rec *record) error {
	start := c.r.InputOffset()
	fields, err := c.r.Read()
	if err == io.EOF {
		return io.EOF
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return invalidf("%s:%d: %s: %v; %s", c.path, pe.Line, c.notCSVLog(c.records == 0), pe.Err, captureHowTo)
		}
		return fmt.Errorf("replay: reading %s: %w", c.path, err)
	}
	line, _ := c.r.FieldPos(0)
	c.records++
	c.offset = start
	if len(fields) < minColumns || len(fields) > maxColumns {
		return invalidf("%s:%d: %s: this line has %d comma-separated fields, a csvlog record has %d to %d; %s",
			c.path, line, c.notCSVLog(c.records == 1), len(fields), minColumns, maxColumns, captureHowTo)
	}
	if c.records == 1 && fields[colLogTime] == "log_time" {
		return invalidf("%s:%d: the file starts with a header row, which PostgreSQL never writes: it was exported or edited by another tool; give the csvlog file PostgreSQL wrote (or delete the header line)",
			c.path, line)
	}
	t, ok := c.tz.parse(fields[colLogTime])
	if !ok {
		return invalidf("%s:%d: log_time %q is not a PostgreSQL timestamp (2006-01-02 15:04:05.000 UTC): %s; %s",
			c.path, line, clip(fields[colLogTime], 40), c.notCSVLog(c.records == 1), captureHowTo)
	}
	*rec = record{
		line:     line,
		logTime:  t,
		user:     fields[colUserName],
		db:       fields[colDatabaseName],
		app:      fields[colApplicationName],
		session:  fields[colSessionID],
		tag:      fields[colCommandTag],
		severity: fields[colErrorSeverity],
		sqlState: fields[colSQLStateCode],
		message:  fields[colMessage],
		detail:   fields[colDetail],
		context:  fields[colContext],
		query:    fields[colQuery],
	}
	if len(fields) > colBackendType {
		rec.backendType = fields[colBackendType]
	}
	return nil
}

// notCSVLog says what the file is, as far as the records read tell: first is
// true when the bad record is the file's first.
func (c *csvlog) notCSVLog(first bool) string {
	if first {
		return "this is not a PostgreSQL csvlog"
	}
	return "this record is not a csvlog record (the file was cut, edited or concatenated with another kind of log)"
}

// tzCache parses csvlog timestamps, "2006-01-02 15:04:05.000 UTC", remembering the
// offset of the last zone seen (a capture has one or two).
type tzCache struct {
	name   string
	offset int64
}

// parse returns the Unix time in nanoseconds of a csvlog timestamp. The zone is
// UTC, GMT, a numeric offset (+03, -0530, +05:30) or an abbreviation: those in
// zoneOffsets are exact, others count as UTC, which only matters when the capture
// spans a change of offset (set log_timezone = 'UTC' when capturing).
func (z *tzCache) parse(s string) (int64, bool) {
	// 0123456789012345678
	// 2006-01-02 15:04:05[.000] ZONE
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	year, ok1 := atoi(s[0:4])
	month, ok2 := atoi(s[5:7])
	day, ok3 := atoi(s[8:10])
	hour, ok4 := atoi(s[11:13])
	minute, ok5 := atoi(s[14:16])
	sec, ok6 := atoi(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > 31 ||
		hour > 23 || minute > 59 || sec > 60 {
		return 0, false
	}
	i := 19
	var nanos int64
	if i < len(s) && s[i] == '.' {
		i++
		digits := 0
		for i < len(s) && isDigit(s[i]) {
			if digits < 9 {
				nanos = nanos*10 + int64(s[i]-'0')
				digits++
			}
			i++
		}
		if digits == 0 {
			return 0, false
		}
		for ; digits < 9; digits++ {
			nanos *= 10
		}
	}
	var offset int64
	if i < len(s) {
		if s[i] != ' ' || i+1 >= len(s) {
			return 0, false
		}
		zone := s[i+1:]
		if zone == z.name {
			offset = z.offset
		} else {
			o, ok := zoneOffset(zone)
			if !ok {
				return 0, false
			}
			z.name, z.offset = zone, o
			offset = o
		}
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC).UnixNano() + nanos
	return t - offset, true
}

// zoneOffsets are common zone abbreviations, in seconds east of UTC.
var zoneOffsets = map[string]int64{
	"UTC": 0, "GMT": 0, "Z": 0, "UCT": 0,
	"EST": -5 * 3600, "EDT": -4 * 3600, "CST": -6 * 3600, "CDT": -5 * 3600,
	"MST": -7 * 3600, "MDT": -6 * 3600, "PST": -8 * 3600, "PDT": -7 * 3600,
	"AKST": -9 * 3600, "AKDT": -8 * 3600, "HST": -10 * 3600,
	"WET": 0, "WEST": 3600, "BST": 3600, "CET": 3600, "CEST": 2 * 3600,
	"EET": 2 * 3600, "EEST": 3 * 3600, "MSK": 3 * 3600,
	"JST": 9 * 3600, "KST": 9 * 3600, "AEST": 10 * 3600, "AEDT": 11 * 3600,
	"NZST": 12 * 3600, "NZDT": 13 * 3600,
}

// zoneOffset returns the offset of a zone in nanoseconds east of UTC.
func zoneOffset(zone string) (int64, bool) {
	if o, ok := zoneOffsets[zone]; ok {
		return o * int64(time.Second), true
	}
	if zone[0] == '+' || zone[0] == '-' {
		// +03, -05, +0530, +05:30
		digits := make([]byte, 0, 4)
		for i := 1; i < len(zone); i++ {
			switch {
			case isDigit(zone[i]):
				digits = append(digits, zone[i])
			case zone[i] == ':' && i == 3:
			default:
				return 0, false
			}
		}
		var h, m int
		switch len(digits) {
		case 2:
			h, _ = strconv.Atoi(string(digits))
		case 4:
			h, _ = strconv.Atoi(string(digits[:2]))
			m, _ = strconv.Atoi(string(digits[2:]))
		default:
			return 0, false
		}
		o := int64(h*3600+m*60) * int64(time.Second)
		if zone[0] == '-' {
			o = -o
		}
		return o, true
	}
	for i := 0; i < len(zone); i++ {
		if c := zone[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return 0, false
		}
	}
	// An abbreviation not in the table: its offset is unknown but constant.
	return 0, true
}

func atoi(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
