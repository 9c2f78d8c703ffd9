package testutil

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// depsHint says how to install what the tests need.
const depsHint = "install the test dependencies with scripts/deps.sh test (as root; otherwise it prints the apt-get command)"

// extraDirs are searched after PATH: the Debian layout of the PostgreSQL server
// programs (newest version first; they are not on PATH there) and /usr/sbin, where
// pgbouncer lives. A variable so the package's own tests can point it elsewhere.
var extraDirs = func() []string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		return v
	}
	slices.SortStableFunc(dirs, func(a, b string) int { return cmp.Compare(version(b), version(a)) })
	return append(dirs, "/usr/sbin")
}

// RequireTool returns the path of the program name, found on PATH or else in
// /usr/lib/postgresql/*/bin or /usr/sbin. When it is missing the test cannot run:
// it is skipped on a developer's machine, but fails when the environment variable
// CI is set (to anything but "false"), so a CI run never passes by skipping. The
// message names the program, what was searched, hint (say, which package ships
// it; may be empty) and scripts/deps.sh.
func RequireTool(t testing.TB, name, hint string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	dirs := extraDirs()
	for _, d := range dirs {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found on PATH nor in %s", name, strings.Join(dirs, ", "))
	if hint != "" {
		msg += " (" + hint + ")"
	}
	unavailable(t, msg+"; "+depsHint)
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode().Perm()&0o111 != 0
}

// RequireDocker checks that the Docker engine answers at DOCKER_HOST (the default
// socket when it is unset). When it does not, the test is skipped on a
// developer's machine and fails under CI, as with RequireTool.
func RequireDocker(t testing.TB) {
	t.Helper()
	if err := pingDocker(); err != nil {
		unavailable(t, fmt.Sprintf("the Docker engine is not reachable: %v; install and start it (Debian package docker.io), or point DOCKER_HOST at a running one", err))
	}
}

func pingDocker() error {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		if !strings.Contains(err.Error(), cli.DaemonHost()) {
			return fmt.Errorf("%s: %w", cli.DaemonHost(), err)
		}
		return err
	}
	return nil
}

// underCI reports whether the tests run under CI: the environment variable CI is
// set to anything but "false".
func underCI() bool {
	v := os.Getenv("CI")
	return v != "" && !strings.EqualFold(v, "false")
}

// unavailable ends a test whose dependency is missing: a skip, or a failure under
// CI.
func unavailable(t testing.TB, msg string) {
	t.Helper()
	if underCI() {
		t.Fatal(msg + " (CI is set, so a missing test dependency is a failure)")
		return
	}
	t.Skip(msg)
}
