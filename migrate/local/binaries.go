package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// requiredPrograms are the programs a bin directory must hold to run a node.
var requiredPrograms = []string{"postgres", "initdb", "pg_ctl"}

// distroGlob is the documented last-resort search location (Debian/Ubuntu layout).
const distroGlob = "/usr/lib/postgresql/*/bin"

// Binaries are the PostgreSQL server programs a node runs.
type Binaries struct {
	// Dir is the directory holding postgres, initdb, pg_ctl (and, when installed,
	// pg_basebackup, pg_rewind, ...).
	Dir string
	// Version is the server version reported by `postgres --version`, e.g. "15.18".
	Version string
}

// Path returns the full path of the named program in b.Dir.
func (b Binaries) Path(program string) string { return filepath.Join(b.Dir, program) }

// Major returns the major version (15 for "15.18", 9 for "9.6.24"); 0 when unknown.
func (b Binaries) Major() int {
	head, _, _ := strings.Cut(b.Version, ".")
	n, err := strconv.Atoi(head)
	if err != nil {
		return 0
	}
	return n
}

// FindBinaries locates the PostgreSQL server programs. It uses dir when it is not
// empty (and nothing else); otherwise it tries, in order, `pg_config --bindir`, the
// directory of `postgres` found on PATH (symlinks resolved; it must also hold initdb and
// pg_ctl), and the highest-versioned /usr/lib/postgresql/*/bin. The error wraps
// ErrNoBinaries and says what was searched and how to fix it.
func FindBinaries(ctx context.Context, dir string) (Binaries, error) {
	var searched []string
	try := func(d string) (Binaries, bool) {
		if d == "" || slices.Contains(searched, d) {
			return Binaries{}, false
		}
		searched = append(searched, d)
		if missing := missingPrograms(d); len(missing) > 0 {
			return Binaries{}, false
		}
		v, err := serverVersion(ctx, filepath.Join(d, "postgres"))
		if err != nil {
			return Binaries{}, false
		}
		return Binaries{Dir: d, Version: v}, true
	}

	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			abs = dir
		}
		if b, ok := try(abs); ok {
			return b, nil
		}
		return Binaries{}, fmt.Errorf("%w: %s does not contain a working %s; point it at the bin directory of a PostgreSQL server installation (e.g. /usr/lib/postgresql/15/bin), or leave it empty to search automatically",
			ErrNoBinaries, abs, strings.Join(requiredPrograms, ", "))
	}

	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		if d, err := pgConfigBindir(ctx, pgConfig); err == nil {
			if b, ok := try(d); ok {
				return b, nil
			}
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if b, ok := try(filepath.Dir(real)); ok {
				return b, nil
			}
		}
		if b, ok := try(filepath.Dir(p)); ok {
			return b, nil
		}
	}
	for _, d := range distroBinDirs() {
		if b, ok := try(d); ok {
			return b, nil
		}
	}
	where := "nothing found"
	if len(searched) > 0 {
		where = strings.Join(searched, ", ")
	}
	return Binaries{}, fmt.Errorf("%w: searched `pg_config --bindir`, PATH and %s (%s); install the PostgreSQL server (e.g. `apt-get install postgresql`) or put its bin directory (holding %s) on PATH",
		ErrNoBinaries, distroGlob, where, strings.Join(requiredPrograms, ", "))
}

func missingPrograms(dir string) []string {
	var missing []string
	for _, p := range requiredPrograms {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			missing = append(missing, p)
		}
	}
	return missing
}

func pgConfigBindir(ctx context.Context, pgConfig string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// distroBinDirs returns the /usr/lib/postgresql/*/bin directories, highest version first.
func distroBinDirs() []string {
	dirs, _ := filepath.Glob(distroGlob)
	ver := func(d string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return n
	}
	slices.SortFunc(dirs, func(a, b string) int { return ver(b) - ver(a) })
	return dirs
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\)\s+(\d+(?:\.\d+)*)`)

// parseVersion extracts "15.18" from "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)".
func parseVersion(out string) (string, error) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("local: unrecognised version output %q", strings.TrimSpace(out))
	}
	return m[1], nil
}

func serverVersion(ctx context.Context, postgres string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, postgres, "--version")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", errors.Join(err, errors.New(strings.TrimSpace(out.String())))
	}
	return parseVersion(out.String())
}
