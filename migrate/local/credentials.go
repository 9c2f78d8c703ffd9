package local

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// PassFileName is the name of the password file NewCredentials writes.
const PassFileName = ".pgpass"

// scramIterations is the SCRAM-SHA-256 iteration count of the verifier
// (PostgreSQL's default, scram_iterations).
const scramIterations = 4096

// Credentials are what admits a client to the servers of one run: the superuser's
// password, generated per run, and the password file that holds it. The password
// itself is only ever in memory and in 0600 files (this one, in libpq's .pgpass
// format; PgBouncer's auth file; a container's own copy), never on a command line,
// in a DSN, a log or an error: DSNs name the file (passfile=, which pgx and libpq
// read), server programs get it through PGPASSFILE, and PostgreSQL only ever sees
// its SCRAM-SHA-256 verifier (initdb's password), which does not reveal it.
//
// Its String and Format print the file's path only.
type Credentials struct {
	file     string
	password string
	verifier string
	// dir is a directory created for the file (the fallback for a server user that
	// cannot reach the requested one), removed with it; "" when none.
	dir string

	mu      sync.Mutex
	removed bool
}

// NewCredentials generates a password and writes dir/.pgpass (0600), readable by
// the server OS user the programs run as (the postgres user when this process is
// root): pg_basebackup, pg_rewind and the replicas' WAL receivers read it. When
// that user cannot reach dir, the file goes to a private directory under the temp
// directory instead (said on log). Remove deletes it.
func NewCredentials(dir string, log io.Writer) (*Credentials, error) {
	if log == nil {
		log = io.Discard
	}
	sd, err := PrepareServerDir(dir, log)
	if err != nil {
		return nil, fmt.Errorf("local: credentials: %w", err)
	}
	c := &Credentials{file: filepath.Join(sd.Path, PassFileName), password: rand.Text()}
	if sd.Owned {
		c.dir = sd.Path
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	if c.verifier, err = scramVerifier(c.password, salt, scramIterations); err != nil {
		c.Remove()
		return nil, fmt.Errorf("local: credentials: %w", err)
	}
	// Any host, port and database: the file only ever goes with this run's
	// servers' DSNs (nodes on loopback addresses of their own, endpoint names,
	// PgBouncers, fault proxies, published container ports).
	if err := writePrivate(c.file, "*:*:*:"+Superuser+":"+c.password+"\n"); err != nil {
		c.Remove()
		return nil, fmt.Errorf("local: credentials: %w", err)
	}
	return c, nil
}

// WritePrivateFile writes path (mode 0600) for the server OS user: owned by it
// when this process is root, so server programs (PgBouncer's auth file) read it and
// other users do not. A file already at path is replaced, never followed.
func WritePrivateFile(path, content string) error { return writePrivate(path, content) }

// writePrivate writes a 0600 file owned by the server OS user, refusing to follow a
// file that is already there (a link planted in a shared directory).
func writePrivate(path, content string) error {
	id, err := runAsIdentity()
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, werr := f.WriteString(content)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(path, 0o600), id.chown(path)); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// File is the password file's path: for PGPASSFILE, or psql's passfile=.
func (c *Credentials) File() string { return c.file }

// User is the user the password belongs to (the superuser).
func (c *Credentials) User() string { return Superuser }

// Verifier is the password's SCRAM-SHA-256 verifier (PostgreSQL's stored form):
// what initdb stores as the superuser's password.
func (c *Credentials) Verifier() string { return c.verifier }

// Password returns the password itself, for a server that keeps its own 0600
// copy (PgBouncer's auth file, a container's password file). Never log, print or
// put it on a command line.
func (c *Credentials) Password() string { return c.password }

// DSN is a connection URL for database db at addr (host:port) as the superuser,
// without TLS, whose password pgx and libpq read from the file:
// postgres://postgres@ADDR/DB?sslmode=disable&passfile=FILE. It holds no secret.
func (c *Credentials) DSN(addr, db string) string {
	return "postgres://" + Superuser + "@" + addr + "/" + url.PathEscape(db) + "?sslmode=disable&passfile=" + url.QueryEscape(c.file)
}

// Conninfo is a libpq key/value connection string to host:port as the superuser,
// with the password file, and extra key/value pairs appended as given (e.g.
// "dbname=postgres"): for primary_conninfo, pg_rewind and subscriptions.
func (c *Credentials) Conninfo(host string, port int, extra ...string) string {
	parts := []string{"host=" + conninfoValue(host), "port=" + strconv.Itoa(port), "user=" + Superuser, "passfile=" + conninfoValue(c.file)}
	return strings.Join(append(parts, extra...), " ")
}

// conninfoValue quotes a conninfo value when it needs it.
func conninfoValue(v string) string {
	if v != "" && !strings.ContainsAny(v, ` '\`) {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// Env is the environment entry that gives a libpq program the password.
func (c *Credentials) Env() string { return "PGPASSFILE=" + c.file }

// String names the file, never the password.
func (c *Credentials) String() string { return "credentials in " + c.file }

// Format prints what String does, for every verb: %v, %+v, %#v and %s of the
// credentials (or of a struct holding them) never show the password.
func (c *Credentials) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// Remove deletes the password file (and the directory created for it); once the
// servers are gone the password admits nobody. It is idempotent.
func (c *Credentials) Remove() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return nil
	}
	err := os.Remove(c.file)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if c.dir != "" {
		err = errors.Join(err, os.RemoveAll(c.dir))
	}
	if err != nil {
		return fmt.Errorf("local: remove %s: %w", c.file, err)
	}
	c.removed = true
	return nil
}

// scramVerifier is PostgreSQL's stored form of a SCRAM-SHA-256 password (RFC 7677,
// src/common/scram-common.c): SCRAM-SHA-256$ITER:SALT$STOREDKEY:SERVERKEY, base64.
// The password is ASCII letters and digits, which SASLprep leaves as they are.
func scramVerifier(password string, salt []byte, iter int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	server := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iter, b64(salt), b64(stored[:]), b64(server)), nil
}
