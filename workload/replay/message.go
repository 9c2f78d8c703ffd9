package replay

import (
	"errors"
	"strings"
)

// msgKind is what a LOG message says about a statement.
type msgKind uint8

const (
	msgOther      msgKind = iota
	msgDuration           // "duration: 1.2 ms" alone: the end of a statement logged at its start
	msgStatement          // "statement: …": a simple query
	msgExecute            // "execute <unnamed>: …", "execute S_1: …": an extended-protocol statement
	msgFetch              // "execute fetch from S_1/C_2: …": more rows of a portal already run
	msgParseBind          // "parse …: …", "bind …: …" with a duration: an extended statement begins
	msgDisconnect         // "disconnection: …"
)

// logMsg is a parsed LOG message.
type logMsg struct {
	kind     msgKind
	duration int64 // nanoseconds; -1 when the message has none (logged at the start)
	named    bool  // an extended statement prepared under a name (not <unnamed>)
	bind     bool  // msgParseBind: a bind (its parameters are in the detail)
	text     string
}

// parseLogMessage reads the message of a LOG record. With
// log_min_duration_statement the message is "duration: 0.123 ms  statement: …" (or
// execute, parse, bind), written when the statement ends; with log_statement it is
// "statement: …" or "execute …: …", written when it starts.
func parseLogMessage(m string) logMsg {
	out := logMsg{duration: -1}
	if rest, ok := strings.CutPrefix(m, "duration: "); ok {
		i := strings.Index(rest, " ms")
		if i < 0 {
			return logMsg{kind: msgOther, duration: -1}
		}
		d, ok := parseMillis(rest[:i])
		if !ok {
			return logMsg{kind: msgOther, duration: -1}
		}
		out.duration = d
		rest = rest[i+len(" ms"):]
		if rest == "" {
			out.kind = msgDuration
			return out
		}
		m, ok = strings.CutPrefix(rest, "  ")
		if !ok {
			return logMsg{kind: msgOther, duration: -1}
		}
		var verb string
		switch {
		case strings.HasPrefix(m, "parse "):
			verb = "parse "
		case strings.HasPrefix(m, "bind "):
			verb = "bind "
			out.bind = true
		}
		if verb != "" {
			rest := m[len(verb):]
			if i := strings.Index(rest, ": "); i >= 0 {
				name := rest[:i]
				if j := strings.IndexByte(name, '/'); j >= 0 {
					name = name[:j]
				}
				out.named = name != "<unnamed>"
				out.text = rest[i+2:]
			}
			out.kind = msgParseBind
			return out
		}
	} else if strings.HasPrefix(m, "disconnection: ") {
		out.kind = msgDisconnect
		return out
	}
	switch {
	case strings.HasPrefix(m, "statement: "):
		out.kind = msgStatement
		out.text = m[len("statement: "):]
	case strings.HasPrefix(m, "execute fetch from "):
		out.kind = msgFetch
	case strings.HasPrefix(m, "execute "):
		rest := m[len("execute "):]
		i := strings.Index(rest, ": ")
		if i < 0 {
			return logMsg{kind: msgOther, duration: -1}
		}
		name := rest[:i]
		if j := strings.IndexByte(name, '/'); j >= 0 {
			name = name[:j] // statement/portal
		}
		out.kind = msgExecute
		out.named = name != "<unnamed>"
		out.text = rest[i+2:]
	default:
		out.kind = msgOther
	}
	return out
}

// parseMillis parses a duration in milliseconds with up to 6 decimals ("0.123")
// into nanoseconds.
func parseMillis(s string) (int64, bool) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(whole) > 12 {
		return 0, false
	}
	ms, ok := atoi(whole)
	if !ok {
		return 0, false
	}
	ns := int64(ms) * 1e6
	scale := int64(1e5)
	for i := 0; i < len(frac); i++ {
		if !isDigit(frac[i]) {
			return 0, false
		}
		ns += int64(frac[i]-'0') * scale
		scale /= 10
	}
	return ns, true
}

// errParams is returned for a parameter list that is not as PostgreSQL writes it.
var errParams = errors.New(`not a parameter list like $1 = '…', $2 = NULL`)

// parseParams reads a parameter list as PostgreSQL logs it, "$1 = '42', $2 = NULL"
// (a quote in a value doubled), into text values in parameter order (nil for
// NULL). It stops at the end of the list and returns how much of s it read, so
// that a list followed by other text (an error context's next line) is read as
// well. The values share one allocation.
func parseParams(s string) ([][]byte, int, error) {
	return parseParamsInto(make([][]byte, 0, strings.Count(s, ", $")+1), make([]byte, 0, len(s)), s)
}

// parseParamsInto is parseParams appending to vals, with the values' bytes in buf,
// which must have room for len(s) bytes so that it is never reallocated.
func parseParamsInto(vals [][]byte, buf []byte, s string) ([][]byte, int, error) {
	if cap(buf)-len(buf) < len(s) {
		buf = make([]byte, 0, len(s))
	}
	vals = vals[:0]
	i := 0
	for n := 1; ; n++ {
		if i >= len(s) || s[i] != '$' {
			return nil, 0, errParams
		}
		j := i + 1
		num := 0
		for j < len(s) && isDigit(s[j]) && num < 1<<20 {
			num = num*10 + int(s[j]-'0')
			j++
		}
		if j == i+1 || num != n {
			return nil, 0, errParams
		}
		if !strings.HasPrefix(s[j:], " = ") {
			return nil, 0, errParams
		}
		j += len(" = ")
		switch {
		case strings.HasPrefix(s[j:], "NULL"):
			vals = append(vals, nil)
			j += len("NULL")
		case j < len(s) && s[j] == '\'':
			j++
			start := len(buf)
			closed := false
			for j < len(s) {
				k := strings.IndexByte(s[j:], '\'')
				if k < 0 {
					break
				}
				buf = append(buf, s[j:j+k]...)
				j += k
				if j+1 < len(s) && s[j+1] == '\'' {
					buf = append(buf, '\'')
					j += 2
					continue
				}
				j++
				closed = true
				break
			}
			if !closed {
				return nil, 0, errParams
			}
			// Each value is its own slice of buf; an empty string is not NULL.
			vals = append(vals, buf[start:len(buf):len(buf)])
		default:
			return nil, 0, errParams
		}
		i = j
		if !strings.HasPrefix(s[i:], ", $") {
			break
		}
		i += len(", ")
	}
	return vals, i, nil
}

// errorParams finds the parameters PostgreSQL 13 and later log in an error's
// context when log_parameter_max_length_on_error is set: "unnamed portal with
// parameters: $1 = '0'" or `portal "C_1" with parameters: …`.
func errorParams(context string) ([][]byte, bool) {
	const marker = "with parameters: "
	i := strings.Index(context, marker)
	if i < 0 {
		return nil, false
	}
	vals, _, err := parseParams(context[i+len(marker):])
	if err != nil {
		return nil, false
	}
	return vals, true
}
