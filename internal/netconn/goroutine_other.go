//go:build linux && !amd64 && !arm64

package netconn

import "golang.org/x/sys/unix"

// goroutineKey identifies the calling thread (see the amd64 version, which
// identifies the goroutine): a loop's tasks run only on the loop's locked thread,
// so the thread and the loop's current task identify the task's goroutine.
func goroutineKey() uintptr { return uintptr(gettid()) }

func gettid() int {
	tid, _, _ := unix.RawSyscall(unix.SYS_GETTID, 0, 0, 0)
	return int(tid)
}
