package telemetry

import (
	"bytes"
	"io"
	"strings"
)

// CutoverLog returns a writer for the cutover engine's log: it passes every line on
// to next (which may be nil) and turns the engine's step lines ("cutover: step
// switchover ...", "cutover: step switchover ok (1.2 s)") into the current step,
// its status and the phase, on the same terms as the run's phases: "during" from
// the first step that changes the cluster, "after" once the redirect has ended
// (or a step failed).
func (m *Metrics) CutoverLog(next io.Writer) io.Writer {
	return &cutoverLog{m: m, next: next}
}

type cutoverLog struct {
	m    *Metrics
	next io.Writer
	buf  []byte
}

func (l *cutoverLog) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 {
		l.buf = l.buf[:0]
	}
	if l.next == nil {
		return len(p), nil
	}
	return l.next.Write(p)
}

func (l *cutoverLog) line(s string) {
	rest, ok := strings.CutPrefix(s, "cutover: step ")
	if !ok {
		return
	}
	f := strings.Fields(rest)
	if len(f) < 2 {
		return
	}
	step, status := f[0], f[1]
	if status == "..." {
		status = "started"
	}
	l.m.CutoverEvent(step, status, step != "preflight" && step != "validate")
}

// CutoverEvent records a cutover step's event: the step started ("started") or
// ended with status; mutating says whether it changes the cluster. The phase
// moves to "during" at the first mutating step's start and to "after" once the
// redirect has ended or a step failed, as the run's phases do.
func (m *Metrics) CutoverEvent(step, status string, mutating bool) {
	m.Step(step, status)
	m.mu.Lock()
	var phase string
	switch {
	case status == "started" && mutating && !m.during:
		m.during, phase = true, "during"
	case m.during && !m.after && status != "started" && (step == "redirect" || status == "failed"):
		m.after, phase = true, "after"
	}
	m.mu.Unlock()
	if phase != "" {
		m.Phase(phase)
	}
}
