package local

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/testutil"
)

// serverDir is a fresh directory the server OS user can reach.
func serverDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCredentialsFile(t *testing.T) {
	dir := serverDir(t)
	c, err := NewCredentials(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.File() != filepath.Join(dir, PassFileName) {
		t.Errorf("File = %q, want %s", c.File(), filepath.Join(dir, PassFileName))
	}
	fi, err := os.Stat(c.File())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", c.File(), fi.Mode().Perm())
	}
	data, _ := os.ReadFile(c.File())
	if want := "*:*:*:postgres:" + c.Password() + "\n"; string(data) != want || len(c.Password()) < 20 {
		t.Errorf("file holds %q; want one .pgpass line with a generated password of 20+ characters", data)
	}
	other, err := NewCredentials(serverDir(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if other.Password() == c.Password() {
		t.Error("two runs got the same password")
	}
	// Nothing that prints the credentials shows the password.
	for _, s := range []string{c.String(), fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s %q", c, c, c, c, c),
		fmt.Sprintf("%+v", struct{ C *Credentials }{c}), c.DSN("127.0.0.1:5432", "rehearse"),
		c.Conninfo("127.0.0.1", 5432, "dbname=postgres"), c.Env(), c.Verifier()} {
		if strings.Contains(s, c.Password()) {
			t.Errorf("%q shows the password", s)
		}
	}
	if err := c.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.File()); !os.IsNotExist(err) {
		t.Errorf("after Remove: %v; want the file gone", err)
	}
	if err := c.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

func TestCredentialsRefuseAPlantedLink(t *testing.T) {
	dir := serverDir(t)
	target := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(target, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, PassFileName)); err != nil {
		t.Fatal(err)
	}
	c, err := NewCredentials(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Remove()
	if data, _ := os.ReadFile(target); string(data) != "keep\n" {
		t.Errorf("the link's target was written: %q", data)
	}
	if fi, err := os.Lstat(c.File()); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("%s: %v, %v; want a regular file in place of the link", c.File(), fi, err)
	}
}

func TestScramVerifier(t *testing.T) {
	salt := []byte("0123456789abcdef")
	for _, tc := range []struct{ password string }{{"pencil"}, {"ABCdef0123456789xyz"}} {
		v, err := scramVerifier(tc.password, salt, 4096)
		if err != nil {
			t.Fatal(err)
		}
		// SCRAM-SHA-256$4096:SALT$STOREDKEY:SERVERKEY, each key 32 bytes in base64.
		head, keys, ok := strings.Cut(strings.TrimPrefix(v, "SCRAM-SHA-256$"), "$")
		stored, server, ok2 := strings.Cut(keys, ":")
		if !ok || !ok2 || head != "4096:"+base64.StdEncoding.EncodeToString(salt) {
			t.Fatalf("verifier %q: want SCRAM-SHA-256$4096:SALT$STORED:SERVER", v)
		}
		for _, k := range []string{stored, server} {
			if b, err := base64.StdEncoding.DecodeString(k); err != nil || len(b) != 32 {
				t.Errorf("key %q: %v, %d bytes; want 32", k, err, len(b))
			}
		}
		if again, _ := scramVerifier(tc.password, salt, 4096); again != v {
			t.Error("the verifier is not deterministic for one salt")
		}
	}
}

// TestNodesRefuseWithoutThePassword: the primary and a streaming replica admit the
// run's password (the cluster's own connections, the replica's WAL receiver) and
// nobody without it, another OS user's psql included.
func TestNodesRefuseWithoutThePassword(t *testing.T) {
	c := startCluster(t, false)
	if _, err := c.CreateReplica(t.Context()); err != nil {
		t.Fatalf("CreateReplica: %v", err)
	}
	psql := c.Writer().Bin().Path("psql")
	for _, n := range c.Nodes() {
		conn, err := pgx.Connect(t.Context(), n.DSN(Database))
		if err != nil {
			t.Fatalf("%s with the password file: %v", n.Name(), err)
		}
		var streaming int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_replication").Scan(&streaming); err != nil {
			t.Fatal(err)
		}
		conn.Close(context.Background())
		if n == c.Writer() && streaming != 1 {
			t.Errorf("the writer streams to %d replicas; want 1 (the replica logs in with the password file)", streaming)
		}
		testutil.RequireRefused(t, n.Addr(), psql)
	}
	// The password is in the 0600 file only: not in the servers' logs or configs.
	pw := c.Credentials().Password()
	_ = filepath.Walk(c.LogDir(), func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || path == c.Credentials().File() || fi.Size() > 64<<20 {
			return nil
		}
		if data, err := os.ReadFile(path); err == nil && strings.Contains(string(data), pw) {
			t.Errorf("%s holds the password", path)
		}
		return nil
	})
}
