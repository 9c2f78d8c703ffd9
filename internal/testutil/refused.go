package testutil

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// RequireRefused checks that the PostgreSQL server or PgBouncer at addr
// (host:port) admits nobody without the run's password: the superuser without a
// password, with a wrong one, and a replication session without one are each
// refused by the server's authentication (not by a closed port); and psql, run as
// another OS user (nobody, when this process is root) without a password file, is
// refused too. psql is the psql program's path.
func RequireRefused(t testing.TB, addr, psql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct{ what, password, extra string }{
		{"no password", "", ""},
		{"a wrong password", "not-the-password", ""},
		{"a replication session without a password", "", "&replication=database"},
	} {
		cfg, err := pgconn.ParseConfig("postgres://postgres@" + addr + "/postgres?sslmode=disable&connect_timeout=10&passfile=" + os.DevNull + c.extra)
		if err != nil {
			t.Errorf("%s: %v", addr, err)
			return
		}
		cfg.Password = c.password
		cfg.Fallbacks = nil
		conn, err := pgconn.ConnectConfig(ctx, cfg)
		if err == nil {
			conn.Close(ctx)
			t.Errorf("%s admitted the superuser with %s; want it refused", addr, c.what)
			continue
		}
		if !authRefusal(err) {
			t.Errorf("%s with %s: %v; want an authentication failure from the server", addr, c.what, err)
		}
	}

	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.CommandContext(ctx, psql, "-X", "-w", "-c", "SELECT 1",
		"host="+host+" port="+port+" user=postgres dbname=postgres sslmode=disable connect_timeout=10")
	cmd.Env = []string{"PGPASSFILE=" + os.DevNull, "HOME=" + os.DevNull, "LC_ALL=C", "PATH=/usr/bin:/bin"}
	who := "this OS user"
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Errorf("no OS user nobody to try psql as: %v", err)
			return
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Dir = os.TempDir()
		who = "OS user nobody"
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Errorf("psql as %s: %v\n%s", who, err, out.String())
		return
	}
	if msg := out.String(); !strings.Contains(msg, "password") {
		t.Errorf("psql as %s to %s exited %d: %s; want a refusal for want of the password", who, addr, exit.ExitCode(), msg)
	}
}

// authRefusal reports whether err is the server refusing a login: an invalid
// password (28P01) or authorization (28000), PgBouncer's failed SASL exchange
// (08P01), PgBouncer refusing replication sessions altogether, or the client
// giving up because the server asked for a password it has none of.
func authRefusal(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "28P01" || pe.Code == "28000" || strings.Contains(pe.Message, "password") ||
			strings.Contains(pe.Message, "authentication failed") || strings.Contains(pe.Message, "unsupported startup parameter: replication")
	}
	msg := err.Error()
	return strings.Contains(msg, "password") || strings.Contains(msg, "SASL") || strings.Contains(msg, "SCRAM")
}
