//go:build linux && (amd64 || arm64)

package netconn

// goroutineKey identifies the calling goroutine: the address of the runtime's
// descriptor of it, which Go keeps in thread-local storage (amd64) or a register
// (arm64) while the goroutine runs. It is compared, never dereferenced. A Loop's
// task uses it to tell its own calls on a connection from a driver's background
// goroutines' without a system call.
func goroutineKey() uintptr
