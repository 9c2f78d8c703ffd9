package local

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate/pgsql"
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
	return n.promoteOn(ctx, c)
}

// promoteOn is PromoteFast on a connection to n the caller opened.
func (n *Node) promoteOn(ctx context.Context, c *pgx.Conn) (time.Duration, error) {
	took, err := pgsql.Promote(ctx, pgsql.ConnQuery(c), switchPoll, 60*time.Second)
	if err != nil {
		return took, fmt.Errorf("local: promote %s: %w; see %s", n.cfg.Name, err, n.logFile)
	}
	fmt.Fprintf(n.cfg.Log, "promoted %s in %s\n", n.cfg.Name, took.Round(time.Millisecond))
	return took, nil
}
