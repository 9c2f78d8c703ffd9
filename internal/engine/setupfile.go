package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// runSetupFile runs a workload's setup file on the writer, unless check (a query)
// returns a row: for a replay, whose target must hold the captured schema. The file
// goes in one simple-protocol round trip, as psql -1 would send it; a failure names
// the file, the line and the error, as invalid input.
func runSetupFile(ctx context.Context, pool *pgxpool.Pool, file, check string, log io.Writer) error {
	if file == "" {
		return nil
	}
	text, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%w: workload.setup: %w", ErrInvalidInput, err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	pc := conn.Conn().PgConn()
	if check != "" {
		res, err := pc.Exec(ctx, check).ReadAll()
		if err != nil {
			return fmt.Errorf("%w: workload.setup_check: %w", ErrInvalidInput, err)
		}
		if len(res) > 0 && len(res[len(res)-1].Rows) > 0 {
			fmt.Fprintf(log, "setup: %s already done (setup_check returned a row)\n", file)
			return nil
		}
	}
	fmt.Fprintf(log, "setup: running %s\n", file)
	if _, err := pc.Exec(ctx, string(text)).ReadAll(); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Position > 0 && int(pgErr.Position) <= len(text) {
			line := 1 + strings.Count(string(text[:pgErr.Position-1]), "\n")
			return fmt.Errorf("%w: %s:%d: %s (SQLSTATE %s): fix the setup file", ErrInvalidInput, file, line, pgErr.Message, pgErr.Code)
		}
		return fmt.Errorf("%w: %s: %w", ErrInvalidInput, file, err)
	}
	return nil
}
