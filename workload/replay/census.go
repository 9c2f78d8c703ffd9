package replay

import "math"

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

// maxWindow bounds how long the schedule holds statements back to put them in
// start order (see schedule): a statement that started longer before the log's
// current time than this is scheduled late rather than holding every later one.
const maxWindow = int64(2e9)

// census is the first pass's sink: it counts statements, fingerprints and
// captured errors, and measures the capture's span and disorder.
type census struct {
	p          *parser
	fps        map[string]*fpStat
	distinct   int // distinct fingerprints seen, including forgotten ones
	prune      int64
	statements int64
	ends       int64
	first      int64
	last       int64
	maxLag     int64 // how far before the latest log_time a statement started
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
	c.maxLag = max(c.maxLag, c.p.maxLog-st.start)
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
