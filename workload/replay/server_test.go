package replay

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/workload/internal/pgtest"
)

// capturingServer is a PostgreSQL server that writes a csvlog of every statement,
// as a production server being captured does. pgtest.Start cannot set logging, so
// this starts its own, the same way.
type capturingServer struct {
	DSN     string // to the postgres database as postgres
	CSVLog  string // the csvlog it writes
	bin     string
	data    string
	cred    *syscall.Credential
	stopped bool
}

// startCapturing initialises and starts a capturing server; it is stopped and
// removed when the test ends.
func startCapturing(t *testing.T) *capturingServer {
	t.Helper()
	bin, err := pgtest.BinDir()
	if err != nil {
		testutil.RequireTool(t, "initdb", "the PostgreSQL server, Debian package postgresql")
		t.Fatal(err)
	}
	cred, uid, gid := serverUser(t)
	root, err := os.MkdirTemp("", "replay-capture-")
	if err != nil {
		t.Fatal(err)
	}
	s := &capturingServer{bin: bin, data: filepath.Join(root, "data"), cred: cred}
	t.Cleanup(func() {
		s.stop(t)
		_ = os.RemoveAll(root)
	})
	logDir := filepath.Join(root, "log")
	for _, d := range []string{root, s.data, logDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if cred != nil {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := s.run("initdb", "-D", s.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--locale=C"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := testutil.FreePort(t)
	// The capture settings a production server would have (see captureHowTo),
	// the log in one file, and no Unix socket: the capture names no local path.
	opts := fmt.Sprintf("-c port=%d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off "+
		"-c logging_collector=on -c log_destination=csvlog -c log_directory=%s -c log_filename=capture "+
		"-c log_rotation_age=0 -c log_rotation_size=0 -c log_timezone=UTC "+
		"-c log_min_duration_statement=0 -c log_connections=on -c log_disconnections=on", port, logDir)
	if out, err := s.run("pg_ctl", "start", "-D", s.data, "-l", filepath.Join(root, "server.log"), "-w", "-t", "60", "-o", opts); err != nil {
		serverLog, _ := os.ReadFile(filepath.Join(root, "server.log"))
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, serverLog)
	}
	s.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	s.CSVLog = filepath.Join(logDir, "capture.csv")
	return s
}

// stop stops the server, which flushes its log.
func (s *capturingServer) stop(t *testing.T) {
	if s.stopped {
		return
	}
	s.stopped = true
	if out, err := s.run("pg_ctl", "stop", "-D", s.data, "-m", "fast", "-w"); err != nil {
		t.Errorf("pg_ctl stop: %v\n%s", err, out)
	}
}

func (s *capturingServer) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	cmd.Dir = os.TempDir()
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.Bytes(), err
}

// serverUser is who runs the server: PostgreSQL refuses root, so as root the
// postgres user.
func serverUser(t *testing.T) (*syscall.Credential, int, int) {
	if os.Geteuid() != 0 {
		return nil, -1, -1
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("running as root needs a postgres user: %v", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		t.Fatalf("postgres user: uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid
}
