package local

import (
	"context"
	"io"
	"os/exec"
	"syscall"
)

// ServerDir is a directory that server programs (PostgreSQL, PgBouncer) can own and
// write: Path itself, or a fallback under the temp directory when the server user
// cannot reach Path (see prepareWorkDir). Owned is true for a fallback, which the
// caller removes when done.
type ServerDir struct {
	Path  string
	Owned bool
}

// PrepareServerDir creates dir for server programs and hands it to the OS user they
// run as (the postgres user when this process is root).
func PrepareServerDir(dir string, log io.Writer) (ServerDir, error) {
	id, err := runAsIdentity()
	if err != nil {
		return ServerDir{}, err
	}
	if log == nil {
		log = io.Discard
	}
	p, owned, err := prepareWorkDir(dir, id, log)
	return ServerDir{Path: p, Owned: owned}, err
}

// ServerCommand returns a command that runs program as the server OS user (the
// postgres user when this process is root, else the current user), with a small
// fixed environment and its own process group, so it does not share the caller's
// terminal signals.
func ServerCommand(ctx context.Context, program string, args ...string) (*exec.Cmd, error) {
	id, err := runAsIdentity()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Env = []string{"PATH=" + serverUserEnvPath, "LC_ALL=C"}
	if id != nil && id.home != "" {
		cmd.Env = append(cmd.Env, "HOME="+id.home)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: id.credential(), Setpgid: true}
	return cmd, nil
}
