package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func (n *Node) initdb(ctx context.Context) error {
	fmt.Fprintf(n.cfg.Log, "initdb %s (PostgreSQL %s) in %s\n", n.cfg.Name, n.cfg.Bin.Version, n.dataDir)
	// The superuser's password is the run's, given as its SCRAM verifier, which
	// PostgreSQL stores as it is: the server never sees the password itself.
	pwfile := filepath.Join(n.workDir, n.cfg.Name+".pwfile")
	if err := writePrivate(pwfile, n.creds.Verifier()+"\n"); err != nil {
		return fmt.Errorf("local: initdb %s: %w", n.cfg.Name, err)
	}
	defer os.Remove(pwfile)
	args := []string{"-D", n.dataDir, "-U", Superuser, "--auth=scram-sha-256", "--pwfile=" + pwfile,
		"--data-checksums", "--encoding=UTF8", "--locale=C"}
	if !n.cfg.Fsync {
		args = append(args, "--no-sync")
	}
	if _, err := n.run(ctx, initdbTimeout, "initdb", args...); err != nil {
		ce := asCommandError(err)
		ce.Op = "initdb " + n.cfg.Name
		ce.Hint = fmt.Sprintf("check that %s is writable by the OS user running the server and that the disk has space", n.workDir)
		return ce
	}
	return nil
}

// run executes a server program as the node's OS user, in the work directory, with a
// small fixed environment (no PG* variables leak in), bounded by timeout.
func (n *Node) run(ctx context.Context, timeout time.Duration, program string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.cfg.Bin.Path(program), args...)
	cmd.Dir = n.workDir
	cmd.Env = []string{"PATH=" + n.cfg.Bin.Dir + ":" + serverUserEnvPath, "LC_ALL=C", "LANG=C"}
	if n.creds != nil {
		// pg_basebackup and pg_rewind read the password from the file, never
		// from their command line.
		cmd.Env = append(cmd.Env, n.creds.Env())
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if n.id != nil {
		cmd.Env = append(cmd.Env, "HOME="+n.id.home, "USER="+n.id.name, "LOGNAME="+n.id.name)
		cmd.SysProcAttr.Credential = n.id.credential()
	}
	if program != "pg_ctl" {
		// A cancelled command ends with the processes it started (pg_basebackup's WAL
		// streamer), so a cancelled step returns at once rather than after
		// WaitDelay. pg_ctl is left alone: the server it starts outlives it.
		cmd.SysProcAttr.Setpgid = true
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	}
	// pg_ctl start leaves a daemon behind; it redirects the daemon's output to the
	// log, but never let an inherited pipe hold Wait forever.
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	output := strings.TrimSpace(out.String())
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return output, &CommandError{Op: program, Args: cmd.Args, Output: output, Err: err}
	}
	return output, nil
}

func asCommandError(err error) *CommandError {
	var ce *CommandError
	if errors.As(err, &ce) {
		return ce
	}
	return &CommandError{Err: err}
}

// waitSeconds is the pg_ctl -t value: def, or less when ctx ends sooner; at least 1.
func waitSeconds(ctx context.Context, def time.Duration) int {
	d := def
	if dl, ok := ctx.Deadline(); ok {
		if r := time.Until(dl); r < d {
			d = r
		}
	}
	return max(1, int(math.Ceil(d.Seconds())))
}
