package replay

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"
)

// synthCapture writes a synthetic csvlog of at least size bytes to w, as a busy
// application's server would log it with log_min_duration_statement = 0: a few
// hundred sessions open at a time, each connecting, running 20 to 60 statements
// (simple queries, extended-protocol statements with parameters, transaction
// blocks, a failure now and then) and disconnecting, one log line every 50 µs
// on average. It returns the statements written.
func synthCapture(w io.Writer, size int64) (int64, error) {
	cw := &countingWriter{w: bufio.NewWriterSize(w, 1<<20)}
	g := &synth{
		csv: csv.NewWriter(cw), rnd: rand.New(rand.NewPCG(1, 2)),
		now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC), rec: make([]string, maxColumns),
	}
	open := make([]*synthSession, 0, 300)
	for cw.n < size {
		if len(open) < cap(open) {
			open = append(open, g.connect())
			continue
		}
		i := g.rnd.IntN(len(open))
		if !g.step(open[i]) {
			g.disconnect(open[i])
			open[i] = g.connect()
		}
	}
	for _, s := range open {
		g.disconnect(s)
	}
	g.csv.Flush()
	if err := g.csv.Error(); err != nil {
		return 0, err
	}
	return g.stmts, cw.w.(*bufio.Writer).Flush()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type synth struct {
	csv      *csv.Writer
	rnd      *rand.Rand
	now      time.Time
	sessions int
	stmts    int64
	rec      []string
}

type synthSession struct {
	id      string
	pid     int
	line    int
	left    int
	inBlock bool
}

// Statement templates: tables vary so the capture holds a few hundred
// fingerprints, more than become operations.
var synthTemplates = []struct {
	sql    string
	params int
}{
	{"SELECT id, name, price FROM items_%d WHERE id = $1", 1},
	{"UPDATE accounts_%d SET balance = balance + $1, updated_at = now() WHERE id = $2", 2},
	{"INSERT INTO events_%d (account, kind, payload) VALUES ($1, $2, $3)", 3},
	{"SELECT o.id, o.total, c.email\nFROM orders_%d o\nJOIN customers c ON c.id = o.customer\nWHERE o.customer = $1\nORDER BY o.id DESC LIMIT 20", 1},
	{"SELECT count(*) FROM sessions_%d WHERE expires_at > now() AND user_id IN ($1, $2, $3)", 3},
}

func (g *synth) tick() {
	g.now = g.now.Add(time.Duration(g.rnd.IntN(100)) * time.Microsecond)
}

func (g *synth) write(s *synthSession, sev, state, msg, detail, query string) {
	r := g.rec
	for i := range r {
		r[i] = ""
	}
	s.line++
	r[colLogTime] = g.now.Format("2006-01-02 15:04:05.000 MST")
	r[colUserName], r[colDatabaseName] = "app", "shop"
	r[colProcessID] = strconv.Itoa(s.pid)
	r[colConnectionFrom] = "10.0.3.17:51234"
	r[colSessionID] = s.id
	r[colSessionLineNum] = strconv.Itoa(s.line)
	r[colCommandTag] = "SELECT"
	r[colSessionStartTime] = "2026-03-02 10:00:00 UTC"
	r[colVirtualTransactionID] = "7/1234"
	r[colTransactionID] = "0"
	r[colErrorSeverity] = sev
	r[colSQLStateCode] = state
	r[colMessage] = msg
	r[colDetail] = detail
	r[colQuery] = query
	r[colApplicationName] = "web"
	r[colBackendType] = "client backend"
	r[colLeaderPID] = ""
	r[colQueryID] = "0"
	_ = g.csv.Write(r)
}

func (g *synth) connect() *synthSession {
	g.sessions++
	s := &synthSession{id: fmt.Sprintf("%x.%x", 0x65e2f000+g.sessions/100, 1000+g.sessions), pid: 1000 + g.sessions, left: 20 + g.rnd.IntN(41)}
	g.tick()
	g.write(s, "LOG", "00000", "connection authorized: user=app database=shop application_name=web", "", "")
	return s
}

func (g *synth) disconnect(s *synthSession) {
	g.tick()
	g.write(s, "LOG", "00000", "disconnection: session time: 0:00:01.234 user=app database=shop host=10.0.3.17 port=51234", "", "")
}

// step writes the session's next statement; false when it has none left.
func (g *synth) step(s *synthSession) bool {
	if s.left == 0 {
		if !s.inBlock {
			return false
		}
		s.left = 1 // end the block first
	}
	s.left--
	g.tick()
	dur := func() string { return strconv.FormatFloat(0.01+g.rnd.Float64()*2, 'f', 3, 64) }
	switch n := g.rnd.IntN(20); {
	case s.inBlock && (n < 4 || s.left == 0):
		g.write(s, "LOG", "00000", "duration: "+dur()+" ms  statement: COMMIT", "", "")
		s.inBlock = false
	case !s.inBlock && n < 2:
		g.write(s, "LOG", "00000", "duration: "+dur()+" ms  statement: BEGIN", "", "")
		s.inBlock = true
	case n < 6:
		id := g.rnd.IntN(1_000_000)
		g.write(s, "LOG", "00000", fmt.Sprintf("duration: %s ms  statement: SELECT id, sku, price FROM items_%d WHERE id = %d", dur(), g.rnd.IntN(40), id), "", "")
	case n == 6 && !s.inBlock:
		// A failure, logged only as its ERROR.
		g.write(s, "ERROR", "23505", "duplicate key value violates unique constraint \"events_pkey\"", "Key (id)=(42) already exists.",
			fmt.Sprintf("INSERT INTO events_%d (id, account) VALUES (42, %d)", g.rnd.IntN(40), g.rnd.IntN(1000)))
	default:
		t := synthTemplates[g.rnd.IntN(len(synthTemplates))]
		sql := fmt.Sprintf(t.sql, g.rnd.IntN(40))
		params := ""
		for i := 1; i <= t.params; i++ {
			if i > 1 {
				params += ", "
			}
			switch g.rnd.IntN(10) {
			case 0:
				params += fmt.Sprintf("$%d = NULL", i)
			case 1:
				params += fmt.Sprintf("$%d = 'it''s a \"note\", with\nnewline'", i)
			default:
				params += fmt.Sprintf("$%d = '%d'", i, g.rnd.IntN(100000))
			}
		}
		name := "<unnamed>"
		if g.rnd.IntN(2) == 0 {
			name = "S_" + strconv.Itoa(1+g.rnd.IntN(5))
		}
		g.write(s, "LOG", "00000", "duration: "+dur()+" ms  parse "+name+": "+sql, "", "")
		g.write(s, "LOG", "00000", "duration: "+dur()+" ms  bind "+name+": "+sql, "parameters: "+params, "")
		g.write(s, "LOG", "00000", "duration: "+dur()+" ms  execute "+name+": "+sql, "parameters: "+params, "")
	}
	g.stmts++
	return true
}
