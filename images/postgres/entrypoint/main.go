// Command rehearse-pg is the entrypoint of the rehearse/postgres image: a shell-free
// PID 1 that behaves like the official postgres image's entrypoint for what rehearse
// needs, plus the commands a cutover provider runs with `docker exec`.
//
//	rehearse-pg [postgres] [-c name=value ...]   supervise the server (the default)
//	rehearse-pg stop                              fast shutdown; the container stays up
//	rehearse-pg start                             start the server again after stop
//	rehearse-pg rejoin HOST [PORT [SLOT]] [--no-rewind]  follow HOST as a standby (pg_rewind unless --no-rewind)
//	rehearse-pg checkpoint-lsn                    the control file's latest checkpoint
//
// Environment (as in the official image): PGDATA, POSTGRES_USER, POSTGRES_PASSWORD,
// POSTGRES_HOST_AUTH_METHOD, POSTGRES_INITDB_ARGS. Replica mode: when
// REHEARSE_PRIMARY_HOST is set and PGDATA is empty, the data directory is cloned from
// that primary with pg_basebackup -R (REHEARSE_PRIMARY_PORT, default 5432; with
// REHEARSE_SLOT, a physical replication slot of that name is created and used).
//
// As PID 1 it runs postgres as the postgres user, forwards SIGTERM, SIGINT, SIGQUIT
// and SIGHUP to it, reaps orphans, and exits with the server's status, unless the
// server was stopped with `rehearse-pg stop` (or the hold file exists when the
// container starts), in which case it stays up and waits for SIGUSR1 (`start`).
package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	pgBin       = "/usr/lib/postgresql/15/bin"
	defaultData = "/var/lib/postgresql/data"
	// holdFile, when present, keeps the supervisor from (re)starting the server.
	holdFile = "/var/lib/postgresql/rehearse.hold"
	// passFile is the postgres user's password file (0600), written from
	// REHEARSE_PASSWORD: pg_basebackup, pg_rewind, the WAL receiver and
	// subscriptions read the password there, never from a command line.
	passFile = "/var/lib/postgresql/.pgpass"
	stopWait = 2 * time.Minute
)

func main() {
	log := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "rehearse-pg: "+format+"\n", args...)
	}
	if err := setupPassword(); err != nil {
		log("password file: %v", err)
		os.Exit(1)
	}
	args := os.Args[1:]
	cmd := "postgres"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "postgres":
		os.Exit(supervise(args, log))
	case "stop":
		err = stopServer()
		if err == nil {
			var lsn string
			lsn, err = checkpointLSN()
			fmt.Println(lsn)
		}
	case "start":
		err = requestStart()
	case "rejoin":
		err = rejoin(args)
	case "checkpoint-lsn":
		var lsn string
		lsn, err = checkpointLSN()
		fmt.Println(lsn)
	default:
		// Anything else runs as is, like the official image (e.g. psql, bash).
		path, lerr := exec.LookPath(cmd)
		if lerr != nil {
			log("%v", lerr)
			os.Exit(127)
		}
		err = syscall.Exec(path, append([]string{cmd}, args...), os.Environ())
	}
	if err != nil {
		log("%s: %v", cmd, err)
		os.Exit(1)
	}
}

// initPassword is POSTGRES_PASSWORD, taken out of the environment at start so that
// no child (the server, its WAL receiver, a psql) inherits it.
var initPassword string

// setupPassword writes REHEARSE_PASSWORD into passFile (mode 0600, owned by the
// postgres user) and removes it and POSTGRES_PASSWORD from the environment.
func setupPassword() error {
	initPassword = os.Getenv("POSTGRES_PASSWORD")
	pw := os.Getenv("REHEARSE_PASSWORD")
	_ = os.Unsetenv("POSTGRES_PASSWORD")
	_ = os.Unsetenv("REHEARSE_PASSWORD")
	if pw == "" {
		return nil
	}
	esc := strings.NewReplacer(`\`, `\\`, ":", `\:`)
	line := "*:*:*:" + esc.Replace(superuser()) + ":" + esc.Replace(pw) + "\n"
	if err := os.MkdirAll(filepath.Dir(passFile), 0o755); err != nil {
		return err
	}
	tmp := passFile + ".tmp"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(line)
	if err := errors.Join(werr, f.Close()); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		uid, gid, err := pgUser()
		if err != nil {
			return err
		}
		if err := os.Chown(tmp, int(uid), int(gid)); err != nil {
			return err
		}
	}
	return os.Rename(tmp, passFile)
}

func pgdata() string {
	if d := os.Getenv("PGDATA"); d != "" {
		return d
	}
	return defaultData
}

func superuser() string {
	if u := os.Getenv("POSTGRES_USER"); u != "" {
		return u
	}
	return "postgres"
}

// pgUser returns the postgres OS user's uid and gid.
func pgUser() (uint32, uint32, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, fmt.Errorf("look up OS user postgres: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uint32(uid), uint32(gid), nil
}

// asPostgres returns cmd set up to run as the postgres OS user when we are root.
func asPostgres(cmd *exec.Cmd) (*exec.Cmd, error) {
	if os.Geteuid() != 0 {
		return cmd, nil
	}
	uid, gid, err := pgUser()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	return cmd, nil
}

// run runs a PostgreSQL program as the postgres user, output to stderr.
func run(env []string, name string, args ...string) error {
	cmd := exec.Command(filepath.Join(pgBin, name), args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = "/"
	cmd, err := asPostgres(cmd)
	if err != nil {
		return err
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// prepareDirs creates PGDATA and the socket directory, owned by postgres.
func prepareDirs() error {
	uid, gid, err := pgUser()
	if err != nil {
		return err
	}
	for _, d := range []string{filepath.Dir(pgdata()), pgdata(), "/var/run/postgresql"} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if os.Geteuid() == 0 {
			if err := os.Chown(d, int(uid), int(gid)); err != nil {
				return err
			}
		}
	}
	return os.Chmod(pgdata(), 0o700)
}

func authMethod() string {
	if m := os.Getenv("POSTGRES_HOST_AUTH_METHOD"); m != "" {
		return m
	}
	return "scram-sha-256"
}

// initPrimary runs initdb like the official image: superuser POSTGRES_USER with
// POSTGRES_PASSWORD, host connections from anywhere with POSTGRES_HOST_AUTH_METHOD;
// unlike it, replication connections are allowed from anywhere too and data
// checksums are on (pg_rewind needs them or wal_log_hints).
func initPrimary() error {
	pw := initPassword
	method := authMethod()
	if pw == "" && method != "trust" {
		return errors.New("POSTGRES_PASSWORD is not set; set it, or POSTGRES_HOST_AUTH_METHOD=trust")
	}
	args := []string{"-D", pgdata(), "--username=" + superuser(), "--encoding=UTF8", "--locale=C", "--auth-local=trust", "--auth-host=" + method}
	if pw != "" {
		f, err := os.CreateTemp("/tmp", "pw")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		if _, err := f.WriteString(pw + "\n"); err != nil {
			return err
		}
		f.Close()
		uid, gid, err := pgUser()
		if err != nil {
			return err
		}
		if err := os.Chown(f.Name(), int(uid), int(gid)); err != nil {
			return err
		}
		args = append(args, "--pwfile="+f.Name())
	}
	extra := strings.Fields(os.Getenv("POSTGRES_INITDB_ARGS"))
	args = append(args, extra...)
	if !contains(extra, "-k") && !contains(extra, "--data-checksums") {
		args = append(args, "--data-checksums")
	}
	if err := run(nil, "initdb", args...); err != nil {
		return err
	}
	hba := fmt.Sprintf("\n# rehearse-pg: any host, normal and replication connections\nhost all all all %s\nhost replication all all %s\n", method, method)
	if err := appendFile(filepath.Join(pgdata(), "pg_hba.conf"), hba); err != nil {
		return err
	}
	return appendFile(filepath.Join(pgdata(), "postgresql.conf"), "\n# rehearse-pg\nlisten_addresses = '*'\njit = off\n")
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// conninfo is a libpq connection string to host:port as the superuser.
func conninfo(host, port string) string {
	q := func(s string) string {
		return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
	}
	s := fmt.Sprintf("host=%s port=%s user=%s", q(host), q(port), q(superuser()))
	if exists(passFile) {
		s += " passfile=" + q(passFile)
	} else if initPassword != "" {
		s += " password=" + q(initPassword)
	}
	return s
}

// initReplica clones PGDATA from the primary and configures it as a standby.
func initReplica(host string) error {
	port := os.Getenv("REHEARSE_PRIMARY_PORT")
	if port == "" {
		port = "5432"
	}
	args := []string{"-D", pgdata(), "-d", conninfo(host, port), "-R", "-X", "stream", "--checkpoint=fast"}
	if slot := os.Getenv("REHEARSE_SLOT"); slot != "" {
		args = append(args, "-C", "-S", slot)
	}
	return run(nil, "pg_basebackup", args...)
}

// initData prepares the directories and, when PGDATA holds no cluster yet, clones
// it from REHEARSE_PRIMARY_HOST or initialises a primary.
func initData(log func(string, ...any)) error {
	if err := prepareDirs(); err != nil {
		return err
	}
	if exists(filepath.Join(pgdata(), "PG_VERSION")) {
		return nil
	}
	if host := os.Getenv("REHEARSE_PRIMARY_HOST"); host != "" {
		log("cloning %s from %s", pgdata(), host)
		return initReplica(host)
	}
	log("initialising %s", pgdata())
	return initPrimary()
}

// postmasterPID returns the running postmaster's pid, or 0.
func postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(pgdata(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0
	}
	if syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// stopServer holds the supervisor and shuts the server down fast, waiting for it.
func stopServer() error {
	if err := os.WriteFile(holdFile, []byte("stopped by rehearse-pg stop\n"), 0o644); err != nil {
		return err
	}
	pid := postmasterPID()
	if pid == 0 {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		return fmt.Errorf("signal postmaster %d: %w", pid, err)
	}
	deadline := time.Now().Add(stopWait)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("postmaster %d still running after %v", pid, stopWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// requestStart removes the hold file and asks the supervisor (PID 1) to start.
func requestStart() error {
	if err := os.Remove(holdFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syscall.Kill(1, syscall.SIGUSR1)
}

// rejoin makes this node a standby of HOST: stop, pg_rewind -R from it (pg_rewind
// runs crash recovery itself when the node was killed), the slot, start. With
// --no-rewind (a cleanly stopped writer whose final LSN the new writer replayed: no
// divergence) it only writes the standby settings, sparing the new writer the
// CHECKPOINT pg_rewind needs on a just-promoted source.
func rejoin(args []string) error {
	rewind := true
	var rest []string
	for _, a := range args {
		if a == "--no-rewind" {
			rewind = false
			continue
		}
		rest = append(rest, a)
	}
	if len(rest) < 1 {
		return errors.New("usage: rehearse-pg rejoin HOST [PORT [SLOT]] [--no-rewind]")
	}
	host, port, slot := rest[0], "5432", ""
	if len(rest) > 1 {
		port = rest[1]
	}
	if len(rest) > 2 {
		slot = rest[2]
	}
	if err := stopServer(); err != nil {
		return err
	}
	auto := filepath.Join(pgdata(), "postgresql.auto.conf")
	if rewind {
		if err := run(nil, "pg_rewind", "-D", pgdata(), "--source-server="+conninfo(host, port), "-R"); err != nil {
			return err
		}
	} else {
		if err := appendFile(auto, "primary_conninfo = '"+strings.ReplaceAll(conninfo(host, port), "'", "''")+"'\n"); err != nil {
			return err
		}
		if err := touchAsPostgres(filepath.Join(pgdata(), "standby.signal")); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "no rewind required: standby settings written")
	}
	if slot != "" {
		if err := appendFile(auto, fmt.Sprintf("primary_slot_name = '%s'\n", slot)); err != nil {
			return err
		}
	}
	return requestStart()
}

// touchAsPostgres creates an empty file owned by the postgres user.
func touchAsPostgres(path string) error {
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid, err := pgUser()
	if err != nil {
		return err
	}
	return os.Chown(path, int(uid), int(gid))
}

// checkpointLSN reads "Latest checkpoint location" from pg_controldata.
func checkpointLSN() (string, error) {
	out, err := exec.Command(filepath.Join(pgBin, "pg_controldata"), "-D", pgdata()).Output()
	if err != nil {
		return "", fmt.Errorf("pg_controldata: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "Latest checkpoint location" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errors.New("pg_controldata printed no latest checkpoint location")
}
