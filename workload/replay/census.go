package replay

import (
	"math"
	"time"
)

// fpStat is what the first pass learns of one fingerprint.
type fpStat struct {
	count int64
	errs  int64 // statements the capture shows failing
	write bool  // some statement of it is a write
}

// maxTracked bounds the fingerprint table: past it, the rarest fingerprints are
// forgotten (a capture of generated SQL can hold millions), so memory does not
// grow with the capture; the most frequent, which become operations, stay.
const maxTracked = 100_000

// lagLimit bounds how long the schedule holds statements back to put them in
// start order (see schedule): a statement logged more than this after it started
// (a long query logged at its end) is read again, out of log order, when the
// schedule reaches its start.
const lagLimit = int64(time.Second)

// maxLong bounds the statements read out of log order; past it a long statement
// is scheduled when its log line is read, late.
const maxLong = 100_000

// longStmt is a statement the second pass reads out of log order.
type longStmt struct {
	rec     int64 // its record's number, from 1
	off     int64 // where its record starts
	start   int64
	session int32
	first   bool // the first statement of its session: it numbered the session
	done    bool // read (out of order, or in order if its start came first)
}

// census is the first pass's sink: it counts statements, fingerprints and
// captured errors, and measures the capture's span and disorder.
type census struct {
	p          *parser
	log        *csvlog
	fps        map[string]*fpStat
	distinct   int // distinct fingerprints seen, including forgotten ones
	prune      int64
	statements int64
	ends       int64
	first      int64
	last       int64
	maxLag     int64 // how far before the latest log_time a statement started, up to lagLimit
	long       []longStmt
	summary    Summary
}

func newCensus() *census {
	return &census{fps: map[string]*fpStat{}, first: math.MaxInt64, last: math.MinInt64, prune: 1}
}

func (c *census) statement(st *stmt, fp []byte, s *session) {
	c.last = max(c.last, st.start)
	if st.proto == protoEnd {
		c.ends++
		return
	}
	c.statements++
	c.first = min(c.first, st.start)
	if lag := c.p.maxLog - st.start; lag <= lagLimit || len(c.long) == maxLong {
		c.maxLag = max(c.maxLag, min(lag, lagLimit))
	} else {
		c.long = append(c.long, longStmt{rec: c.log.records, off: c.log.offset, start: st.start, session: st.session, first: st.first})
	}
	e := c.fps[string(fp)]
	if e == nil {
		if len(c.fps) >= maxTracked {
			c.forget()
		}
		e = &fpStat{}
		c.fps[string(fp)] = e
		c.distinct++
	}
	e.count++
	e.write = e.write || st.a.write
	s.fp = e
	switch st.proto {
	case protoSimple, protoCopyOut:
		c.summary.Simple++
	case protoCopyIn:
		c.summary.Simple++
		c.summary.CopyIn++
	case protoUnnamed, protoNamed:
		c.summary.Extended++
	case protoStandIn:
		c.summary.Extended++
		c.summary.StandIns++
	}
	if st.sqlState != "" {
		c.summary.FromErrors++
	}
}

func (c *census) capturedError(s *session, _ string) {
	c.summary.CapturedErrors++
	if s.fp != nil {
		s.fp.errs++
	}
}

// forget drops the rarest fingerprints until the table is at most nine tenths
// full, raising the bar each time it has to.
func (c *census) forget() {
	for len(c.fps) >= maxTracked*9/10 {
		for k, e := range c.fps {
			if e.count <= c.prune {
				delete(c.fps, k)
			}
		}
		c.prune *= 2
	}
}
