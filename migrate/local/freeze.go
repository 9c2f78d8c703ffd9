package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// stopWait bounds how long Freeze waits for the stopped processes to show state T.
const stopWait = 5 * time.Second

// Frozen is a node whose processes Freeze stopped; Thaw lets them run again.
type Frozen struct {
	n    *Node
	pids []int // postmaster first
}

// PIDs returns the processes Freeze stopped, the postmaster first.
func (f *Frozen) PIDs() []int { return append([]int(nil), f.pids...) }

// Freeze stops every process of the node: SIGSTOP to the postmaster first (so it
// cannot fork or react to its children while they are listed), then to each of its
// children, as a hung machine would: connections stay open, nothing answers. It
// returns once every one of them is stopped (state T), for at most ctx's deadline
// (5 s without one). On failure it lets them run again. A node that is not running
// is an error.
func (n *Node) Freeze(ctx context.Context) (*Frozen, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	pid := n.PID()
	if pid == 0 {
		return nil, fmt.Errorf("local: freeze %s: not running", n.cfg.Name)
	}
	f := &Frozen{n: n, pids: []int{pid}}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return nil, fmt.Errorf("local: freeze %s: SIGSTOP postmaster %d: %w", n.cfg.Name, pid, err)
	}
	f.pids = append(f.pids, childrenOf(pid)...)
	var errs []error
	for _, p := range f.pids[1:] {
		if err := syscall.Kill(p, syscall.SIGSTOP); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("SIGSTOP pid %d: %w", p, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(fmt.Errorf("local: freeze %s: %w", n.cfg.Name, err), f.thaw())
	}
	if err := waitStopped(ctx, f.pids, n.cfg.PollInterval); err != nil {
		return nil, errors.Join(fmt.Errorf("local: freeze %s: %w", n.cfg.Name, err), f.thaw())
	}
	fmt.Fprintf(n.cfg.Log, "froze %s (postmaster %d and %d children)\n", n.cfg.Name, pid, len(f.pids)-1)
	return f, nil
}

// Thaw lets the frozen processes run again (SIGCONT, the children first, then the
// postmaster, and any child the postmaster has that was missed). A process that
// has gone meanwhile is not an error. It is idempotent.
func (f *Frozen) Thaw() error {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	err := f.thaw()
	if err == nil {
		fmt.Fprintf(f.n.cfg.Log, "thawed %s\n", f.n.cfg.Name)
	}
	return err
}

func (f *Frozen) thaw() error {
	var errs []error
	cont := func(p int) {
		if err := syscall.Kill(p, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("SIGCONT pid %d: %w", p, err))
		}
	}
	for _, p := range f.pids[1:] {
		cont(p)
	}
	for _, p := range childrenOf(f.pids[0]) {
		cont(p)
	}
	cont(f.pids[0])
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("local: thaw %s: %w", f.n.cfg.Name, err)
	}
	return nil
}

// waitStopped polls until every live process of pids is in state T (stopped).
func waitStopped(ctx context.Context, pids []int, poll time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, stopWait)
	defer cancel()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		running := 0
		for _, p := range pids {
			if s, ok := ProcState(p); ok && s != 'T' && s != 't' && s != 'Z' && s != 'X' {
				running++
			}
		}
		if running == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d processes not stopped: %w", running, len(pids), ctx.Err())
		case <-tick.C:
		}
	}
}

// ProcState returns the state letter of process pid in /proc/PID/stat (R, S, T,
// ...) and whether it could be read (Linux; false elsewhere or when it is gone).
func ProcState(pid int) (byte, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s, _, ok := procStat(b)
	return s, ok
}

// Processes returns the node's processes, the postmaster first (none when it is not
// running).
func (n *Node) Processes() []int {
	pid := n.PID()
	if pid == 0 {
		return nil
	}
	return append([]int{pid}, childrenOf(pid)...)
}
