package local

import (
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// serverUser is the OS user PostgreSQL runs as when this process is root.
const serverUser = "postgres"

// identity is the OS user the server programs run as. A nil *identity means "this
// process's own user": no credential switch, no chown.
type identity struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32
	home   string
}

// runAsIdentity returns nil when not root, else the postgres OS user.
func runAsIdentity() (*identity, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(serverUser)
	if err != nil {
		return nil, fmt.Errorf("%w: this process runs as root, which PostgreSQL refuses, and looking up the %q OS user failed (%v); create it (e.g. `useradd --system --home /var/lib/postgresql %s`, or install the postgresql package) or run as a non-root user",
			ErrNoOSUser, serverUser, err, serverUser)
	}
	id := &identity{name: u.Username, home: u.HomeDir}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%w: user %q has non-numeric uid/gid %q/%q", ErrNoOSUser, u.Username, u.Uid, u.Gid)
	}
	id.uid, id.gid = uint32(uid), uint32(gid)
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				id.groups = append(id.groups, uint32(n))
			}
		}
	}
	return id, nil
}

// credential is the SysProcAttr credential for running as id (nil for the current user).
func (id *identity) credential() *syscall.Credential {
	if id == nil {
		return nil
	}
	return &syscall.Credential{Uid: id.uid, Gid: id.gid, Groups: id.groups}
}

// canTraverse reports whether id may search (x permission) a directory with the given
// owner, group and mode, by the classic owner/group/other bits (ACLs are not consulted).
func (id *identity) canTraverse(uid, gid uint32, mode os.FileMode) bool {
	if id == nil {
		return true
	}
	perm := mode.Perm()
	switch {
	case uid == id.uid:
		return perm&0o100 != 0
	case gid == id.gid || slices.Contains(id.groups, gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// blockedAncestor returns the first ancestor of dir (from the root down, dir itself
// excluded) that id cannot traverse, or "" when all can be.
func (id *identity) blockedAncestor(dir string) (string, error) {
	if id == nil {
		return "", nil
	}
	var chain []string
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		chain = append(chain, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	slices.Reverse(chain)
	for _, p := range chain {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return "", nil // not a Unix stat: assume reachable
		}
		if !id.canTraverse(st.Uid, st.Gid, fi.Mode()) {
			return p, nil
		}
	}
	return "", nil
}

// chown gives path to id (no-op for the current user).
func (id *identity) chown(path string) error {
	if id == nil {
		return nil
	}
	return os.Lchown(path, int(id.uid), int(id.gid))
}

// prepareWorkDir creates dir, makes it usable by id, and returns the directory to use:
// dir itself, or — when id cannot reach dir through its parents (a 0700 home, the
// per-test root of t.TempDir) — a new directory under os.TempDir(), reported on log.
// owned is true when the returned directory was created here as a fallback, so the
// caller removes it with the node.
func prepareWorkDir(dir string, id *identity, log io.Writer) (resolved string, owned bool, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false, fmt.Errorf("local: work dir %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", false, fmt.Errorf("local: create work dir: %w", err)
	}
	blocked, err := id.blockedAncestor(abs)
	if err != nil {
		return "", false, fmt.Errorf("local: check work dir %s: %w", abs, err)
	}
	if blocked == "" {
		if err := id.chown(abs); err != nil {
			return "", false, fmt.Errorf("local: chown work dir %s to %s: %w", abs, id.name, err)
		}
		return abs, false, nil
	}
	tmp, err := os.MkdirTemp("", "rehearse-local-")
	if err != nil {
		return "", false, fmt.Errorf("local: work dir %s is not reachable by OS user %s (%s is not traversable), and creating a fallback under %s failed: %w",
			abs, id.name, blocked, os.TempDir(), err)
	}
	if b, err := id.blockedAncestor(tmp); err != nil || b != "" {
		_ = os.RemoveAll(tmp)
		return "", false, fmt.Errorf("local: neither work dir %s nor fallback %s is reachable by OS user %s (blocked at %s and %s); choose a work dir whose parents are all world-searchable (chmod o+x)",
			abs, tmp, id.name, blocked, b)
	}
	if err := id.chown(tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return "", false, fmt.Errorf("local: chown fallback work dir %s to %s: %w", tmp, id.name, err)
	}
	fmt.Fprintf(log, "work dir %s is not reachable by OS user %s (%s is not traversable); using %s instead\n", abs, id.name, blocked, tmp)
	return tmp, true, nil
}
