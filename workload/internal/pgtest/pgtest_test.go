package pgtest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/testutil"
)

// The test server admits the superuser with its password (in DSN) and nobody
// without it.
func TestServerAdmitsOnlyItsPassword(t *testing.T) {
	srv := Start(t)
	conn, err := pgx.Connect(t.Context(), srv.DSN)
	if err != nil {
		t.Fatalf("the server's own DSN: %v", err)
	}
	conn.Close(context.Background())
	bin, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	testutil.RequireRefused(t, fmt.Sprintf("127.0.0.1:%d", srv.Port), filepath.Join(bin, "psql"))
}
