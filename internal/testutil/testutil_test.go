package testutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// fakeTB records what a helper reports instead of ending the test. Unlike
// testing.T, its Fatal and Skip return, so the helpers must return after them.
// Methods it does not define panic (the embedded TB is nil).
type fakeTB struct {
	testing.TB
	fatals, errs, skips, logs []string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Fatal(args ...any) { f.fatals = append(f.fatals, fmt.Sprint(args...)) }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatals = append(f.fatals, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Skip(args ...any) { f.skips = append(f.skips, fmt.Sprint(args...)) }
func (f *fakeTB) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}

func (f *fakeTB) outcome() string {
	switch {
	case len(f.fatals) > 0:
		return "fatal"
	case len(f.errs) > 0:
		return "error"
	case len(f.skips) > 0:
		return "skip"
	}
	return "ok"
}

func (f *fakeTB) messages() string {
	return strings.Join(append(append(append([]string(nil), f.fatals...), f.errs...), f.skips...), "\n")
}

func TestEventually(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tests := []struct {
		name      string
		timeout   time.Duration
		trueFrom  int             // the call (1-based) from which cond holds; 0 = never
		wantCalls []time.Duration // when cond was called, from the start
		wantFatal string
	}{
		{name: "at once", timeout: time.Second, trueFrom: 1, wantCalls: []time.Duration{0}},
		{name: "after backing off", timeout: time.Second, trueFrom: 4,
			wantCalls: []time.Duration{0, ms(20), ms(60), ms(140)}},
		{name: "interval stops growing at 200ms", timeout: time.Second, trueFrom: 7,
			wantCalls: []time.Duration{0, ms(20), ms(60), ms(140), ms(300), ms(500), ms(700)}},
		{name: "never: a last call at the deadline, then Fatalf", timeout: time.Second,
			wantCalls: []time.Duration{0, ms(20), ms(60), ms(140), ms(300), ms(500), ms(700), ms(900), ms(1000)},
			wantFatal: "timed out after 1s waiting for the flag to be set"},
		{name: "zero timeout: one call", timeout: 0, wantCalls: []time.Duration{0},
			wantFatal: "timed out after 0s waiting for the flag to be set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				var calls []time.Duration
				fake := &fakeTB{}
				Eventually(fake, tt.timeout, "the flag to be set", func() bool {
					calls = append(calls, time.Since(start))
					return tt.trueFrom > 0 && len(calls) >= tt.trueFrom
				})
				if fmt.Sprint(calls) != fmt.Sprint(tt.wantCalls) {
					t.Errorf("cond called at %v, want %v", calls, tt.wantCalls)
				}
				if got := strings.Join(fake.fatals, "\n"); got != tt.wantFatal {
					t.Errorf("Fatalf %q, want %q", got, tt.wantFatal)
				}
			})
		})
	}
}

// A real test that waits through Eventually ends at the deadline, not at the end
// of the test's context.
func TestEventuallyFailsTheTestAtItsDeadline(t *testing.T) {
	if os.Getenv("TESTUTIL_EVENTUALLY_CHILD") == "1" {
		Eventually(t, 50*time.Millisecond, "something that never happens", func() bool { return false })
		t.Log("not reached")
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestEventuallyFailsTheTestAtItsDeadline$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "TESTUTIL_EVENTUALLY_CHILD=1")
	out, runErr := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the child test did not end within a minute:\n%s", out)
	}
	if runErr == nil {
		t.Fatalf("the child test passed:\n%s", out)
	}
	for _, want := range []string{"--- FAIL", "timed out after 50ms waiting for something that never happens"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "not reached") {
		t.Errorf("the test went on after Eventually failed:\n%s", out)
	}
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	const writers, lines = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(&b, "writer %d line %d\n", w, i)
				_ = b.String() // reads race with the writes
			}
		})
	}
	wg.Wait()
	got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	seen := map[string]bool{}
	for _, l := range got {
		seen[l] = true
	}
	if len(seen) != writers*lines {
		t.Errorf("%d distinct lines, want %d: writes interleaved", len(seen), writers*lines)
	}
}

func TestFreePort(t *testing.T) {
	port := FreePort(t)
	if port <= 0 || port > 65535 {
		t.Fatalf("FreePort = %d", port)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("listen on the free port: %v", err)
	}
	l.Close()
}

func TestFreeAddr(t *testing.T) {
	tests := []struct {
		host      string
		wantFatal bool
	}{
		{host: "127.0.0.1"},
		{host: "::1"},
		{host: "192.0.2.1", wantFatal: true}, // TEST-NET-1: never a local address
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if tt.host == "::1" {
				l, err := net.Listen("tcp", "[::1]:0")
				if err != nil {
					t.Skipf("no IPv6 loopback here: %v", err)
				}
				l.Close()
			}
			fake := &fakeTB{}
			addr := FreeAddr(fake, tt.host)
			if tt.wantFatal {
				if len(fake.fatals) != 1 || !strings.Contains(fake.fatals[0], tt.host) {
					t.Errorf("FreeAddr(%s) reported %q, want one Fatal naming the host", tt.host, fake.fatals)
				}
				return
			}
			if fake.outcome() != "ok" {
				t.Fatalf("FreeAddr(%s): %s", tt.host, fake.messages())
			}
			host, port, err := net.SplitHostPort(addr)
			if err != nil || host != tt.host || port == "0" {
				t.Fatalf("FreeAddr(%s) = %q (%v)", tt.host, addr, err)
			}
			// Nothing listens there: a connection is refused.
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err == nil {
				c.Close()
				t.Fatalf("a connection to %s succeeded", addr)
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dial %s: %v, want connection refused", addr, err)
			}
		})
	}
}

// writeProgram creates an executable (or, with mode 0o644, a plain) file.
func writeProgram(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRequireTool(t *testing.T) {
	pathDir, extraDir := t.TempDir(), t.TempDir()
	onPath := writeProgram(t, pathDir, "tool-on-path", 0o755)
	inExtra := writeProgram(t, extraDir, "tool-in-extra", 0o755)
	writeProgram(t, pathDir, "tool-not-executable", 0o644)
	writeProgram(t, extraDir, "tool-not-executable", 0o644)
	shadowed := writeProgram(t, pathDir, "tool-in-both", 0o755)
	writeProgram(t, extraDir, "tool-in-both", 0o755)
	saved := extraDirs
	extraDirs = func() []string { return []string{extraDir} }
	t.Cleanup(func() { extraDirs = saved })
	t.Setenv("PATH", pathDir)

	tests := []struct {
		name, tool, ci string
		wantPath       string
		want           string // outcome: ok, skip or fatal
	}{
		{name: "on PATH", tool: "tool-on-path", ci: "true", wantPath: onPath, want: "ok"},
		{name: "in an extra directory", tool: "tool-in-extra", ci: "true", wantPath: inExtra, want: "ok"},
		{name: "PATH first", tool: "tool-in-both", wantPath: shadowed, want: "ok"},
		{name: "missing, locally", tool: "tool-missing", ci: "", want: "skip"},
		{name: "missing, CI=false", tool: "tool-missing", ci: "false", want: "skip"},
		{name: "missing, CI=FALSE", tool: "tool-missing", ci: "FALSE", want: "skip"},
		{name: "missing, CI=true", tool: "tool-missing", ci: "true", want: "fatal"},
		{name: "missing, CI=1", tool: "tool-missing", ci: "1", want: "fatal"},
		{name: "not executable, CI=true", tool: "tool-not-executable", ci: "true", want: "fatal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			fake := &fakeTB{}
			got := RequireTool(fake, tt.tool, "Debian package rehearse-tools")
			if fake.outcome() != tt.want {
				t.Fatalf("outcome %s (%s), want %s", fake.outcome(), fake.messages(), tt.want)
			}
			if got != tt.wantPath {
				t.Errorf("RequireTool = %q, want %q", got, tt.wantPath)
			}
			if tt.want == "ok" {
				return
			}
			msg := fake.messages()
			for _, want := range []string{tt.tool + " not found", extraDir, "Debian package rehearse-tools", "scripts/deps.sh test"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
		})
	}
}

func TestExtraDirsNewestPostgreSQLFirst(t *testing.T) {
	dirs := extraDirs()
	if len(dirs) == 0 || dirs[len(dirs)-1] != "/usr/sbin" {
		t.Fatalf("extraDirs = %v, want /usr/sbin last", dirs)
	}
	last := 1e9
	for _, d := range dirs[:len(dirs)-1] {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		if err != nil || v > last {
			t.Errorf("extraDirs = %v: not ordered newest version first", dirs)
		}
		last = v
	}
}

func TestRequireDockerUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "no-docker.sock")
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	for _, tt := range []struct{ ci, want string }{{"", "skip"}, {"false", "skip"}, {"true", "fatal"}} {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			fake := &fakeTB{}
			RequireDocker(fake)
			if fake.outcome() != tt.want {
				t.Fatalf("outcome %s (%s), want %s", fake.outcome(), fake.messages(), tt.want)
			}
			for _, want := range []string{"Docker engine is not reachable", sock, "DOCKER_HOST"} {
				if !strings.Contains(fake.messages(), want) {
					t.Errorf("message %q lacks %q", fake.messages(), want)
				}
			}
		})
	}
}

// With the engine this machine has (the test itself requires one), RequireDocker
// lets the test go on.
func TestRequireDockerReachable(t *testing.T) {
	if testing.Short() {
		t.Skip("talks to the Docker engine")
	}
	RequireDocker(t)
	fake := &fakeTB{}
	RequireDocker(fake)
	if fake.outcome() != "ok" {
		t.Errorf("RequireDocker with a reachable engine: %s", fake.messages())
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name     string
		file     *string // nil: no golden file
		got      string
		update   bool
		want     string   // outcome
		wantMsg  []string // substrings of the error
		wantFile string   // the file's content afterwards
	}{
		{name: "equal", file: ptr("a\nb\n"), got: "a\nb\n", want: "ok", wantFile: "a\nb\n"},
		{name: "differs", file: ptr("a\nb\nc\n"), got: "a\nB\nc\n", want: "error",
			wantMsg:  []string{"golden file", "at line 2", "-update", "git diff"},
			wantFile: "a\nb\nc\n"},
		{name: "missing", got: "x\n", want: "error", wantMsg: []string{"does not exist", "-update"}},
		{name: "update rewrites", file: ptr("old\n"), got: "new\n", update: true, want: "ok", wantFile: "new\n"},
		{name: "update creates", got: "new\n", update: true, want: "ok", wantFile: "new\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "testdata", "sub", "out.golden")
			if tt.file != nil {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(*tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			saved := *update
			*update = tt.update
			t.Cleanup(func() { *update = saved })
			fake := &fakeTB{}
			Golden(fake, path, []byte(tt.got))
			if fake.outcome() != tt.want {
				t.Fatalf("outcome %s (%s), want %s", fake.outcome(), fake.messages(), tt.want)
			}
			for _, want := range append(tt.wantMsg, path) {
				if tt.want != "ok" && !strings.Contains(fake.messages(), want) {
					t.Errorf("message lacks %q:\n%s", want, fake.messages())
				}
			}
			b, err := os.ReadFile(path)
			if tt.wantFile == "" {
				if !errors.Is(err, os.ErrNotExist) {
					t.Errorf("golden file created without -update: %v", err)
				}
				return
			}
			if string(b) != tt.wantFile {
				t.Errorf("golden file afterwards %q, want %q", b, tt.wantFile)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestDiff(t *testing.T) {
	long := strings.Repeat("x", 500)
	tests := []struct {
		name      string
		got, want string
		wantLines []string // lines the report must contain, in order
		notWant   []string
	}{
		{name: "a middle line, with context", got: "1\n2\n3\nfour\n5\n6\n7\n", want: "1\n2\n3\n4\n5\n6\n7\n", wantLines: []string{
			"at line 4 (want 7 lines, got 7):",
			"want:", "      2 | 2", "      3 | 3", ">     4 | 4", "      5 | 5", "      6 | 6",
			"got:", "      2 | 2", "      3 | 3", ">     4 | four", "      5 | 5", "      6 | 6",
		}, notWant: []string{"| 1\n", "| 7\n"}},
		{name: "the first line", got: "b\nx\n", want: "a\nx\n", wantLines: []string{
			"at line 1 (want 2 lines, got 2):", "want:", ">     1 | a", "      2 | x", "got:", ">     1 | b",
		}},
		{name: "got is shorter", got: "1\n2\n", want: "1\n2\n3\n", wantLines: []string{
			"at line 3 (want 3 lines, got 2):", "want:", ">     3 | 3", "got:", "      2 | 2", ">       | (end of file)",
		}},
		{name: "got is longer", got: "1\n2\n3\n", want: "1\n2\n", wantLines: []string{
			"at line 3 (want 2 lines, got 3):", "want:", ">       | (end of file)", "got:", ">     3 | 3",
		}},
		{name: "missing final newline", got: "1\n2", want: "1\n2\n", wantLines: []string{
			"at line 2", `(line 2 differs only in its line end: want "2\n", got "2")`,
		}},
		{name: "trailing space", got: "1 \n", want: "1\n", wantLines: []string{
			"at line 1", `(line 1 differs only in white space: want "1\n", got "1 \n")`,
		}},
		{name: "a long line shows where it differs", got: long + "Y" + long + "\n", want: long + "Z" + long + "\n", wantLines: []string{
			"want:", ">     1 | …" + strings.Repeat("x", 53) + "Z" + strings.Repeat("x", 106) + "…",
			"got:", ">     1 | …" + strings.Repeat("x", 53) + "Y" + strings.Repeat("x", 106) + "…",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := diff([]byte(tt.got), []byte(tt.want))
			rest := d
			for _, l := range tt.wantLines {
				i := strings.Index(rest, l)
				if i < 0 {
					t.Fatalf("report lacks %q after the lines before it:\n%s", l, d)
				}
				rest = rest[i+len(l):]
			}
			for _, l := range tt.notWant {
				if strings.Contains(d+"\n", l) {
					t.Errorf("report has %q:\n%s", l, d)
				}
			}
		})
	}
}
