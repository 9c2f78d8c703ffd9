package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/local"
)

// A wet run through PgBouncer admits only its generated password, and the
// password appears nowhere but in its 0600 file: not on stdout or stderr, in any
// file of the output directory, or on any process's command line while it runs;
// and a client without it is refused by the node and by PgBouncer mid-run.
func TestWetRunKeepsItsPasswordSecret(t *testing.T) {
	testutil.RequireTool(t, "pgbouncer", "Debian package pgbouncer")
	base := t.TempDir()
	if err := os.Chmod(filepath.Dir(base), 0o711); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(base, "x")
	pass := filepath.Join(out, "pg", local.PassFileName)
	bin, err := local.FindBinaries(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	psql := bin.Path("psql")

	var (
		mu       sync.Mutex
		password string
		mode     os.FileMode
		cmdlines = map[string]bool{}
		probed   bool
	)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			// Every process's command line, while the run lasts.
			procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
			for _, p := range procs {
				if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
					mu.Lock()
					cmdlines[string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))] = true
					mu.Unlock()
				}
			}
			mu.Lock()
			if password != "" && !probed {
				// The writer and its PgBouncer, during the warm-up: refused without
				// the password while the run goes on.
				if n, b, ok := runningAddrs(filepath.Join(out, "pg", "node1"), filepath.Join(out, "pg", "pgbouncer", "writer.ini")); ok {
					probed = true
					mu.Unlock()
					testutil.RequireRefused(t, n, psql)
					testutil.RequireRefused(t, b, psql)
					mu.Lock()
				}
			}
			if password == "" {
				if b, err := os.ReadFile(pass); err == nil {
					if fi, err := os.Stat(pass); err == nil {
						mode = fi.Mode().Perm()
					}
					line := strings.TrimSpace(string(b))
					password = line[strings.LastIndex(line, ":")+1:]
				}
			}
			mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	r := cli(t, t.Context(), "run", "../../scenarios/smoke.yaml", "--mode", "wet", "--endpoint", "proxy",
		"--duration", "12s", "--out", out)
	cancel()
	<-done
	// Exit 3 is a latency SLO on a busy machine; what the password must not change
	// is below: every operation served, nothing lost.
	if r.code != 0 && r.code != 3 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.err)
	}
	res := readResult(t, out)
	if res.Totals.Failed != 0 || res.Integrity.LostAcknowledgedWrites != 0 || !res.Integrity.Checked {
		t.Errorf("failed %d, integrity %+v; want a run unchanged by the password (0 failed, 0 lost)", res.Totals.Failed, res.Integrity)
	}
	mu.Lock()
	defer mu.Unlock()
	if password == "" || len(password) < 20 {
		t.Fatalf("never read a password from %s during the run (%q)", pass, password)
	}
	if mode != 0o600 {
		t.Errorf("%s had mode %v; want 0600", pass, mode)
	}
	if !probed {
		t.Error("never found the writer and its PgBouncer running to try them without the password")
	}
	for what, s := range map[string]string{"stdout": r.out, "stderr": r.err} {
		if strings.Contains(s, password) {
			t.Errorf("%s shows the password", what)
		}
	}
	for c := range cmdlines {
		if strings.Contains(c, password) {
			t.Errorf("a command line shows the password: %q", c)
		}
	}
	files := 0
	_ = filepath.Walk(out, func(path string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		files++
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(password)) {
			t.Errorf("%s holds the password", path)
		}
		return nil
	})
	if files < 4 {
		t.Errorf("only %d files in %s", files, out)
	}
	if _, err := os.Stat(pass); !os.IsNotExist(err) {
		t.Errorf("the password file outlived the run: %v", err)
	}
}

// runningAddrs are the host:port of the node whose data directory is dataDir (from
// its postmaster.pid) and of the PgBouncer whose config is ini, once both run.
func runningAddrs(dataDir, ini string) (node, bouncer string, ok bool) {
	pid, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return "", "", false
	}
	lines := strings.Split(string(pid), "\n")
	if len(lines) < 8 || !strings.Contains(lines[7], "ready") {
		return "", "", false
	}
	node = strings.TrimSpace(lines[5]) + ":" + strings.TrimSpace(lines[3])
	conf, err := os.ReadFile(ini)
	if err != nil {
		return "", "", false
	}
	var host, port string
	for _, l := range strings.Split(string(conf), "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch strings.TrimSpace(k) {
		case "listen_addr":
			host = strings.TrimSpace(v)
		case "listen_port":
			port = strings.TrimSpace(v)
		}
	}
	if host == "" || port == "" {
		return "", "", false
	}
	return node, host + ":" + port, true
}
