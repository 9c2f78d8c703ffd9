package endpoint

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/local"
)

// workDir returns a fresh directory the postgres OS user can reach: t.TempDir's
// per-test parent is 0700, so open it to traversal.
func workDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

// testCreds are the credentials every node, PgBouncer and client of the package's
// tests use (a cluster's nodes share one set; PgBouncer admits their password).
var testCreds *local.Credentials

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rehearse-endpoint-test-")
	if err == nil {
		err = os.Chmod(dir, 0o711)
	}
	if err == nil {
		testCreds, err = local.NewCredentials(dir, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "test credentials:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = testCreds.Remove()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// startNode starts a real PostgreSQL primary (fsync off) and registers its cleanup,
// which runs even when the test fails.
func startNode(t *testing.T, name string) *local.Node {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
	bin, err := local.FindBinaries(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	log := &testutil.SyncBuffer{}
	n, err := local.InitPrimary(t.Context(), local.Config{
		Dir: workDir(t), Name: name, Bin: bin, MaxConnections: 30, SharedBuffers: "16MB", Log: log,
		Credentials: testCreds,
	})
	if err != nil {
		t.Fatalf("InitPrimary %s: %v\nlog:\n%s", name, err, log)
	}
	t.Cleanup(func() {
		if err := n.Close(context.Background()); err != nil {
			t.Errorf("close %s: %v", name, err)
		}
	})
	return n
}

func nodeAddr(n *local.Node) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.Port()))
}

// dsn is a connection URL for the rehearse database at addr.
func dsn(addr string) string {
	return testCreds.DSN(addr, local.Database) + "&connect_timeout=5"
}

// connect opens a pgx connection to addr with the given exec mode and closes it at
// cleanup.
func connect(t *testing.T, addr string, mode pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	conn, err := tryConnect(t.Context(), addr, mode)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func tryConnect(ctx context.Context, addr string, mode pgx.QueryExecMode) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn(addr))
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = mode
	return pgx.ConnectConfig(ctx, cfg)
}

// serverPort returns the port of the PostgreSQL server conn reaches.
func serverPort(ctx context.Context, conn *pgx.Conn) (int, error) {
	var port int
	err := conn.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port)
	return port, err
}

func mustServerPort(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	p, err := serverPort(t.Context(), conn)
	if err != nil {
		t.Fatalf("inet_server_port: %v", err)
	}
	return p
}

// portVia connects to addr, asks which server answers, and disconnects.
func portVia(t *testing.T, addr string, mode pgx.QueryExecMode) int {
	t.Helper()
	conn, err := tryConnect(t.Context(), addr, mode)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	defer conn.Close(context.Background())
	return mustServerPort(t, conn)
}
