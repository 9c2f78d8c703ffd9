package local

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// switchPoll paces the waits inside a switchover's stall (the old writer's exit,
// the promotion): every millisecond polled away is a millisecond of write stall.
const switchPoll = 2 * time.Millisecond

// Checkpoint runs a CHECKPOINT: before a switchover holds the endpoints, so that
// the old writer's shutdown checkpoint, inside the stall, has little left to write.
func (n *Node) Checkpoint(ctx context.Context) error {
	if err := n.exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("local: checkpoint %s: %w", n.cfg.Name, err)
	}
	return nil
}

// StopFast shuts the server down in fast mode and returns once its postmaster has
// exited, watching for that every switchPoll rather than at pg_ctl's 100 ms: the
// signal pg_ctl stop -m fast sends (SIGINT), sent directly. When the signal cannot
// be sent it falls back to Stop.
func (n *Node) StopFast(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	pid := n.PID()
	if pid == 0 {
		return nil
	}
	fmt.Fprintf(n.cfg.Log, "stop %s (fast, signalled)\n", n.cfg.Name)
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return n.stop(ctx, Fast)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(waitSeconds(ctx, defaultStopWait))*time.Second)
	defer cancel()
	tick := time.NewTicker(switchPoll)
	defer tick.Stop()
	for alive(pid) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("local: stop %s (fast): postmaster pid %d still running: %w; see %s", n.cfg.Name, pid, ctx.Err(), n.logFile)
		case <-tick.C:
		}
	}
	return nil
}

// PromoteFast promotes a standby with pg_promote(wait => false) and polls
// pg_is_in_recovery() every switchPoll until it is a primary (pg_promote's own wait
// checks only every 100 ms). It returns how long the promotion took.
func (n *Node) PromoteFast(ctx context.Context) (time.Duration, error) {
	c, err := n.Connect(ctx, "postgres")
	if err != nil {
		return 0, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	start := time.Now()
	var ok bool
	if err := c.QueryRow(ctx, "SELECT pg_promote(false)").Scan(&ok); err != nil {
		return time.Since(start), fmt.Errorf("local: promote %s: %w", n.cfg.Name, err)
	}
	if !ok {
		return time.Since(start), fmt.Errorf("local: promote %s: pg_promote refused; see %s", n.cfg.Name, n.logFile)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(switchPoll)
	defer tick.Stop()
	for {
		var rec bool
		if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil {
			return time.Since(start), fmt.Errorf("local: promote %s: %w", n.cfg.Name, err)
		}
		if !rec {
			took := time.Since(start)
			fmt.Fprintf(n.cfg.Log, "promoted %s in %s\n", n.cfg.Name, took.Round(time.Millisecond))
			return took, nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("local: promote %s: still in recovery: %w; see %s", n.cfg.Name, ctx.Err(), n.logFile)
		case <-tick.C:
		}
	}
}
