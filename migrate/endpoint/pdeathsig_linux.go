package endpoint

import (
	"os/exec"
	"syscall"
)

// dieWithParent asks the kernel to send SIGTERM to the child when this process
// ends, so a crashed or killed rehearse (or a test binary that timed out) leaves no
// PgBouncer behind. Strictly, the signal follows the OS thread that started the
// child; the Go runtime only ends threads that a goroutine locked and never unlocked,
// which this program does not do.
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
}
