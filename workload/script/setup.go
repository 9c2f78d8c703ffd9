package script

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// setupStmt is one statement of the setup file.
type setupStmt struct {
	line int
	sql  string
}

// splitSetup cuts a setup file into statements at semicolons outside quotes,
// comments, parentheses and routine bodies, as psql does. Colons are plain text
// here: a setup file has no variables.
func splitSetup(file, text string) ([]setupStmt, []problem) {
	p := &scriptParser{src: newSource(file, text)}
	var out []setupStmt
	for p.pos < len(text) {
		t, start, backslash := p.scanSQL()
		if t != nil {
			var b strings.Builder
			for i, piece := range t.pieces {
				b.WriteString(piece)
				if i < len(t.vars) {
					b.WriteString(":" + t.vars[i])
				}
			}
			out = append(out, setupStmt{line: p.src.line(start), sql: b.String()})
		}
		if backslash {
			at := p.pos - 1
			end := metaLineEnd(text, p.pos)
			ws, _ := words(text, p.pos, end)
			name := ""
			if len(ws) > 0 {
				name = ws[0]
			}
			p.problemf(at, `\%s: a setup file is plain SQL; psql meta-commands are not supported (use COPY ... FROM STDIN in a script, or INSERT ... SELECT generate_series(...))`, name)
			p.pos = min(end+1, len(text))
		}
	}
	return out, p.problems
}

// Setup prepares the database on the writer: it runs the setup file, one statement
// at a time in autocommit as psql runs a file, unless the setup check returns a
// row. A statement or setup check that fails is an error wrapping ErrInvalid that
// names the statement and its line. Progress lines, and the output of the
// scripts' debug() calls during the load, go to log.
func (w *Workload) Setup(ctx context.Context, pool *pgxpool.Pool, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	w.debugMu.Lock()
	w.debugOut = log
	w.debugMu.Unlock()
	if len(w.setup) == 0 {
		return nil
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("script: setup: %w", err)
	}
	defer conn.Release()
	pc := conn.Conn().PgConn()
	if w.setupCheck != "" {
		results, err := pc.Exec(ctx, w.setupCheck).ReadAll()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return invalidAt([]string{"setup_check"}, []string{fmt.Sprintf("setup check %s: %s: fix the query (it should return a row when the setup has been done)", firstLine(w.setupCheck), describePgError(pgErr))})
		}
		if err != nil {
			return fmt.Errorf("script: setup check: %w", err)
		}
		for _, r := range results {
			if len(r.Rows) > 0 {
				fmt.Fprintf(log, "script: the setup check returned a row; skipping %s\n", w.setupFile)
				return nil
			}
		}
	}
	fmt.Fprintf(log, "script: running %s (%d statements)\n", w.setupFile, len(w.setup))
	for _, s := range w.setup {
		_, err := pc.Exec(ctx, s.sql).ReadAll()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return invalid([]string{fmt.Sprintf("%s:%d: %s: %s: fix the statement (statements before it ran and were committed)",
				w.setupFile, s.line, firstLine(s.sql), describePgError(pgErr))})
		}
		if err != nil {
			return fmt.Errorf("script: setup %s:%d: %w", w.setupFile, s.line, err)
		}
	}
	return nil
}

// describePgError renders a server error for a message about the user's SQL.
func describePgError(e *pgconn.PgError) string {
	s := fmt.Sprintf("%s: %s (SQLSTATE %s", e.Severity, e.Message, e.Code)
	if e.Detail != "" {
		s += "; " + strings.TrimSuffix(e.Detail, ".")
	}
	if e.Hint != "" {
		s += "; hint: " + strings.TrimSuffix(e.Hint, ".")
	}
	return s + ")"
}
