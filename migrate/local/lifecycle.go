package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Start starts the stopped (or crashed) server on its port and waits until it accepts
// connections, for at most ctx's deadline (60 s without one). It does not move to
// another port: clients know this one. On failure the error includes the server log
// tail, and no server process is left behind.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return fmt.Errorf("local: start %s: node was removed", n.cfg.Name)
	}
	return n.start(ctx)
}

// startOnPort writes the managed settings for port and starts the server.
func (n *Node) startOnPort(ctx context.Context, port int) error {
	if err := n.writeConf(port); err != nil {
		return err
	}
	n.port = port
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.start(ctx)
}

// writeConf (re)writes the managed block of postgresql.conf.
func (n *Node) writeConf(port int) error {
	path := filepath.Join(n.dataDir, "postgresql.conf")
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("local: read %s: %w", path, err)
	}
	conf, err := replaceManagedBlock(string(old), renderConf(n.cfg.settings(port)))
	if err != nil {
		return fmt.Errorf("%w (%s)", err, path)
	}
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("local: write %s: %w", path, err)
	}
	return nil
}

// start runs pg_ctl start -w; n.mu must be held.
func (n *Node) start(ctx context.Context) error {
	if pid := n.PID(); pid != 0 {
		return fmt.Errorf("%w: %s (pid %d, %s)", ErrAlreadyRunning, n.cfg.Name, pid, n.Addr())
	}
	// A postmaster.pid left by a crash names a dead (or zombie) process; the server
	// would refuse to start while a zombie holds that pid, so drop the stale lock.
	if pid := readPostmasterPID(n.dataDir); pid != 0 {
		if err := os.Remove(filepath.Join(n.dataDir, "postmaster.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("local: start %s: remove stale postmaster.pid: %w", n.cfg.Name, err)
		}
	}
	wait := waitSeconds(ctx, defaultStartWait)
	fmt.Fprintf(n.cfg.Log, "start %s on %s\n", n.cfg.Name, n.Addr())
	offset := fileSize(n.logFile)
	_, err := n.run(ctx, time.Duration(wait)*time.Second+commandGrace, "pg_ctl",
		"start", "-D", n.dataDir, "-l", n.logFile, "-w", "-t", strconv.Itoa(wait))
	if err == nil {
		return nil
	}
	n.stopStray(ctx)
	ce := asCommandError(err)
	ce.Op = fmt.Sprintf("start %s on %s", n.cfg.Name, n.Addr())
	ce.LogFile = n.logFile
	ce.LogTail = tailFile(n.logFile, offset, logTailLines, logTailBytes)
	switch {
	case portConflict(ce.LogTail):
		ce.Kind = ErrPortInUse
		ce.Hint = fmt.Sprintf("%s is taken by another process; free it, or use Port 0 to pick a free one", n.Addr())
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || strings.Contains(ce.Output, "server did not start in time"):
		ce.Hint = fmt.Sprintf("the server was not ready within %d s (crash recovery can take long); allow more time via the context deadline, and check the server log", wait)
	default:
		ce.Hint = "read the server log above; a damaged data directory can be removed with Remove and created again"
	}
	return ce
}

func portConflict(log string) bool {
	return strings.Contains(log, "Address already in use") || strings.Contains(log, "could not bind")
}

// stopStray makes sure no postmaster from a failed start survives.
func (n *Node) stopStray(ctx context.Context) {
	if n.PID() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if _, err := n.run(ctx, 15*time.Second, "pg_ctl", "stop", "-D", n.dataDir, "-m", string(Immediate), "-w", "-t", "10"); err != nil || n.PID() != 0 {
		_ = n.kill(ctx)
	}
}

// Stop shuts the server down in the given mode and waits until the postmaster has
// exited, for at most ctx's deadline (60 s without one). Stopping a stopped node is a
// no-op.
func (n *Node) Stop(ctx context.Context, mode StopMode) error {
	switch mode {
	case Smart, Fast, Immediate:
	default:
		return fmt.Errorf("%w: stop mode %q: want smart, fast or immediate", ErrInvalidConfig, mode)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stop(ctx, mode)
}

func (n *Node) stop(ctx context.Context, mode StopMode) error {
	pid := n.PID()
	if pid == 0 {
		return nil
	}
	wait := waitSeconds(ctx, defaultStopWait)
	fmt.Fprintf(n.cfg.Log, "stop %s (%s)\n", n.cfg.Name, mode)
	offset := fileSize(n.logFile)
	_, err := n.run(ctx, time.Duration(wait)*time.Second+commandGrace, "pg_ctl",
		"stop", "-D", n.dataDir, "-m", string(mode), "-w", "-t", strconv.Itoa(wait))
	if err == nil {
		// pg_ctl returns once postmaster.pid is gone, a moment before the process
		// itself exits; callers may rely on the process being gone.
		if _, err := n.waitGone(ctx, []int{pid}); err != nil {
			return fmt.Errorf("local: stop %s (%s): postmaster pid %d still alive after pg_ctl stop: %w", n.cfg.Name, mode, pid, err)
		}
		return nil
	}
	ce := asCommandError(err)
	ce.Op = fmt.Sprintf("stop %s (%s)", n.cfg.Name, mode)
	ce.LogFile = n.logFile
	ce.LogTail = tailFile(n.logFile, offset, logTailLines, logTailBytes)
	ce.Hint = "the server may still be running; retry with the Immediate mode, or Kill it"
	return ce
}

// Kill crashes the node: SIGKILL to the postmaster and every child process at once,
// like a power loss of the machine (the next Start runs crash recovery). It waits
// until the processes are gone, for at most ctx's deadline (10 s without one). Killing
// a stopped node is a no-op.
func (n *Node) Kill(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.kill(ctx)
}

func (n *Node) kill(ctx context.Context) error {
	pid := n.PID()
	if pid == 0 {
		return nil
	}
	fmt.Fprintf(n.cfg.Log, "kill %s (postmaster pid %d)\n", n.cfg.Name, pid)
	// Freeze the postmaster first so it cannot fork a new child (or react to its
	// children's deaths) while they are listed, then kill it and all of them. Listing
	// must happen before it dies: orphans are reparented and no longer findable.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("local: kill %s: SIGSTOP pid %d: %w", n.cfg.Name, pid, err)
	}
	victims := append([]int{pid}, childrenOf(pid)...)
	for _, p := range victims {
		if err := syscall.Kill(p, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("local: kill %s: SIGKILL pid %d: %w", n.cfg.Name, p, err)
		}
	}
	if left, err := n.waitGone(ctx, victims); err != nil {
		return fmt.Errorf("local: kill %s: %d of its processes still alive after SIGKILL: %w", n.cfg.Name, left, err)
	}
	return nil
}

// waitGone polls until none of pids is alive, for at most killWait; it returns how
// many are left when ctx ends first.
func (n *Node) waitGone(ctx context.Context, pids []int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, killWait)
	defer cancel()
	tick := time.NewTicker(n.cfg.PollInterval)
	defer tick.Stop()
	for {
		left := 0
		for _, p := range pids {
			if alive(p) {
				left++
			}
		}
		if left == 0 {
			return 0, nil
		}
		select {
		case <-ctx.Done():
			return left, ctx.Err()
		case <-tick.C:
		}
	}
}

// Remove stops the server if it runs (fast, then immediate, then SIGKILL) and deletes
// its data directory (and the fallback work directory, if one was created for it).
// The server log in a caller-chosen Dir is kept.
func (n *Node) Remove(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.remove(ctx, Fast)
}

func (n *Node) remove(ctx context.Context, mode StopMode) error {
	if n.closed {
		return nil
	}
	var errs []error
	// Escalate: the requested mode, then immediate, then SIGKILL. Errors only matter
	// if the server survives all three.
	if n.PID() != 0 {
		errs = append(errs, n.stop(ctx, mode))
	}
	if n.PID() != 0 && mode != Immediate {
		errs = append(errs, n.stop(ctx, Immediate))
	}
	if n.PID() != 0 {
		errs = append(errs, n.kill(ctx))
	}
	if pid := n.PID(); pid != 0 {
		errs = append(errs, fmt.Errorf("local: remove %s: server still running (pid %d); data directory kept", n.cfg.Name, pid))
		return errors.Join(errs...)
	}
	errs = errs[:0]
	fmt.Fprintf(n.cfg.Log, "remove %s (%s)\n", n.cfg.Name, n.dataDir)
	if err := os.RemoveAll(n.dataDir); err != nil {
		errs = append(errs, fmt.Errorf("local: remove %s: %w", n.dataDir, err))
	}
	if n.ownCreds {
		errs = append(errs, n.creds.Remove())
	}
	if n.ownedDir {
		if err := os.RemoveAll(n.workDir); err != nil {
			errs = append(errs, fmt.Errorf("local: remove %s: %w", n.workDir, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	n.closed = true
	return nil
}

// Close is the idempotent cleanup for tests and deferred calls: an immediate stop
// (the data is discarded anyway) and Remove. It keeps going when ctx is already
// cancelled (as t.Context() is during t.Cleanup), bounded by 30 s.
func (n *Node) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
	defer cancel()
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.remove(ctx, Immediate)
}

// discard undoes a failed InitPrimary.
func (n *Node) discard(ctx context.Context) {
	_ = n.Close(ctx)
}
