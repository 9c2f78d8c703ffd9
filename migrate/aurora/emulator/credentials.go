package emulator

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The emulator's databases admit only their cluster's password (see
// local.Credentials), which lives in a 0600 file in the emulator's work directory.
// A run against the emulator is another process, which knows only the RDS API's
// address (--aws-endpoint-url): the emulator names its file there, in a directory
// private to the OS user (the temp directory's rehearse-UID, mode 0700, as tmux
// and ssh-agent keep their sockets), as a symbolic link named after the address.
// Only the same OS user finds it (root finds every user's, as it can read their
// files anyway). Nothing is published over the network: the Query API accepts any
// signature, so anyone on the machine could call it.

// PublishCredentials names file (the cluster's password file) for runs pointed
// at endpointURL, the emulator's RDS API URL. remove undoes it.
func PublishCredentials(endpointURL, file string) (remove func(), err error) {
	link, err := credentialsLink(endpointURL)
	if err != nil {
		return nil, err
	}
	if err := privateDir(filepath.Dir(link), true); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("emulator: replace %s: %w", link, err)
	}
	if err := os.Symlink(abs, link); err != nil {
		return nil, fmt.Errorf("emulator: name the credentials file: %w", err)
	}
	return func() {
		// Only our own link: another emulator may have taken the address since.
		if t, err := os.Readlink(link); err == nil && t == abs {
			_ = os.Remove(link)
		}
	}, nil
}

// FindCredentials returns the password file of the emulator serving endpointURL
// on this machine for this OS user, if one published it (PublishCredentials).
func FindCredentials(endpointURL string) (string, bool) {
	link, err := credentialsLink(endpointURL)
	if err != nil || privateDir(filepath.Dir(link), false) != nil {
		return "", false
	}
	file, err := filepath.EvalSymlinks(link)
	if err != nil {
		return "", false
	}
	if fi, err := os.Stat(file); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return "", false
	}
	return file, true
}

// credentialsLink is where the emulator at endpointURL names its password file.
func credentialsLink(endpointURL string) (string, error) {
	u, err := url.Parse(endpointURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("emulator: %q is not an http://HOST:PORT URL", endpointURL)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Host, map[string]string{"https": "443"}[u.Scheme]
		if port == "" {
			port = "80"
		}
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("emulator: %s is not a loopback address", host)
	}
	name := "aurora-emulator-" + strings.NewReplacer(":", "_", "[", "", "]", "").Replace(host) + "-" + port + ".pgpass"
	return filepath.Join(os.TempDir(), "rehearse-"+strconv.Itoa(os.Geteuid()), name), nil
}

// privateDir checks that dir is a directory of this OS user that nobody else can
// enter (creating it when create is set): not a link another user planted.
func privateDir(dir string, create bool) error {
	if create {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("emulator: %w", err)
		}
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("emulator: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("emulator: %s is not a private directory of this user (want mode 0700, owned by uid %d); remove it", dir, os.Geteuid())
	}
	return nil
}
