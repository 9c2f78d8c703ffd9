package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCanTraverse(t *testing.T) {
	id := &identity{name: "postgres", uid: 101, gid: 104, groups: []uint32{104, 103}}
	tests := []struct {
		name     string
		uid, gid uint32
		mode     os.FileMode
		want     bool
	}{
		{"owner x", 101, 0, 0o700, true},
		{"owner no x", 101, 0, 0o600, false},
		{"owner bits win over other", 101, 0, 0o071, false},
		{"primary group x", 0, 104, 0o710, true},
		{"supplementary group x", 0, 103, 0o710, true},
		{"group no x", 0, 104, 0o701, false},
		{"other x", 0, 0, 0o711, true},
		{"root home", 0, 0, 0o700, false},
		{"sticky tmp", 0, 0, os.ModeSticky | 0o777, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := id.canTraverse(tt.uid, tt.gid, tt.mode); got != tt.want {
				t.Errorf("canTraverse(%d, %d, %v) = %v, want %v", tt.uid, tt.gid, tt.mode, got, tt.want)
			}
		})
	}
	if !(*identity)(nil).canTraverse(0, 0, 0) {
		t.Error("the current user (nil identity) must always pass")
	}
}

// TestPrepareWorkDir checks the root-only logic: chown of a reachable dir, and the
// fallback under os.TempDir() for a dir behind a 0700 parent.
func TestPrepareWorkDir(t *testing.T) {
	id, err := runAsIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if id == nil {
		t.Skip("not root: the server runs as the current user, no chown or fallback applies")
	}
	base := t.TempDir()
	if err := os.Chmod(filepath.Dir(base), 0o711); err != nil {
		t.Fatal(err)
	}

	reachable := filepath.Join(base, "open", "work")
	if err := os.MkdirAll(filepath.Dir(reachable), 0o755); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	got, owned, err := prepareWorkDir(reachable, id, &log)
	if err != nil || got != reachable || owned {
		t.Fatalf("prepareWorkDir(reachable) = %q, %v, %v; want %q, false, nil", got, owned, err, reachable)
	}
	if st := stat(t, got); st.Uid != id.uid {
		t.Errorf("work dir owner = %d, want %d", st.Uid, id.uid)
	}

	closed := filepath.Join(base, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	got, owned, err = prepareWorkDir(filepath.Join(closed, "work"), id, &log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(got) })
	if !owned || !strings.HasPrefix(got, os.TempDir()) {
		t.Errorf("prepareWorkDir(closed) = %q, owned %v; want a fallback under %s", got, owned, os.TempDir())
	}
	if st := stat(t, got); st.Uid != id.uid {
		t.Errorf("fallback owner = %d, want %d", st.Uid, id.uid)
	}
	if !strings.Contains(log.String(), closed+" is not traversable") || !strings.Contains(log.String(), got) {
		t.Errorf("log %q does not explain the fallback", log.String())
	}
}

func stat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

func TestRetryPorts(t *testing.T) {
	taken := fmt.Errorf("taken: %w", ErrPortInUse)
	other := errors.New("initdb exploded")
	tests := []struct {
		name      string
		results   map[int]error // per port; missing = success
		pickErr   error
		wantPort  int
		wantTries int
		wantIs    error
	}{
		{name: "first works", wantPort: 1, wantTries: 1},
		{name: "retry after conflict", results: map[int]error{1: taken, 2: taken}, wantPort: 3, wantTries: 3},
		{name: "other error stops", results: map[int]error{1: taken, 2: other}, wantTries: 2, wantIs: other},
		{name: "always taken", results: map[int]error{1: taken, 2: taken, 3: taken, 4: taken, 5: taken}, wantTries: 5, wantIs: ErrNoFreePort},
		{name: "cannot pick", pickErr: ErrNoFreePort, wantTries: 0, wantIs: ErrNoFreePort},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, tries := 0, 0
			pick := func() (int, error) {
				next++
				return next, tt.pickErr
			}
			try := func(port int) error {
				tries++
				return tt.results[port]
			}
			port, err := retryPorts(5, pick, try)
			if port != tt.wantPort || tries != tt.wantTries || !errors.Is(err, tt.wantIs) || (tt.wantIs == nil) != (err == nil) {
				t.Errorf("retryPorts = %d, %v after %d tries; want %d, %v after %d", port, err, tries, tt.wantPort, tt.wantIs, tt.wantTries)
			}
			if errors.Is(tt.wantIs, ErrNoFreePort) && errors.Is(err, ErrPortInUse) {
				t.Errorf("ErrNoFreePort must not also match ErrPortInUse: %v", err)
			}
		})
	}
}
