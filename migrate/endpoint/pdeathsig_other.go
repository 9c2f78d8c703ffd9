//go:build !linux

package endpoint

import "os/exec"

// dieWithParent does nothing where the kernel has no parent-death signal: Stop (or
// Close) must end PgBouncer.
func dieWithParent(cmd *exec.Cmd) {}
