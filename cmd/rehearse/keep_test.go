package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/testutil"
)

// --keep leaves the embedded server running and says, even with --quiet, where it
// is and where its password file is: the printed DSN connects.
func TestKeepSaysWhatItKept(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
	sc := writeFile(t, "keep.yaml", "name: keep\nworkload:\n  customers: 200\ntarget:\n  fsync: false\nload:\n  sessions: 10\n  rate: 10\n  duration: 1s\n  pool_size: 2\n")
	out := filepath.Join(t.TempDir(), "out")
	r := cli(t, t.Context(), "run", sc, "--keep", "--quiet", "--out", out)
	m := regexp.MustCompile(`kept PostgreSQL running \(pid (\d+), data ([^)]*)\): (\S+)`).FindStringSubmatch(r.err)
	if m != nil {
		pid, _ := strconv.Atoi(m[1])
		t.Cleanup(func() { // the kept server is this test's to stop, and its files to remove
			if syscall.Kill(pid, syscall.SIGINT) == nil {
				testutil.Eventually(t, time.Minute, "the kept server to stop", func() bool { return syscall.Kill(pid, 0) != nil })
			}
			_ = os.RemoveAll(filepath.Dir(m[2]))
		})
	}
	if r.code != 0 || m == nil {
		t.Fatalf("exit %d; stderr %q: want the kept server and its DSN", r.code, r.err)
	}
	pw := regexp.MustCompile(`the kept servers' password is in (\S+) \(PGPASSFILE=`).FindStringSubmatch(r.err)
	if pw == nil {
		t.Fatalf("stderr does not say where the password is: %q", r.err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(pw[1])) })
	if fi, err := os.Stat(pw[1]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the password file %s: %v, %v; want a 0600 file", pw[1], fi, err)
	}
	conn, err := pgx.Connect(t.Context(), m[3])
	if err != nil {
		t.Fatalf("the printed DSN %s: %v", m[3], err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM accounts").Scan(&n); err != nil || n == 0 {
		t.Errorf("the kept database: %d accounts, %v", n, err)
	}
}
