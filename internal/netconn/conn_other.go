//go:build !linux

package netconn

import (
	"context"
	"errors"
	"net"
	"sync"
)

// Supported reports whether loops run tasks on one thread here: not on this
// platform, where Run runs each task as a goroutine.
const Supported = false

// Dial connects with d.
func Dial(ctx context.Context, d *net.Dialer, network, address string) (net.Conn, error) {
	return d.DialContext(ctx, network, address)
}

// Task is one body run by Run.
type Task struct{}

// Run runs each body on a goroutine of its own and returns when all have.
func Run(bodies []func(*Task)) error {
	var wg sync.WaitGroup
	for _, body := range bodies {
		wg.Go(func() { body(&Task{}) })
	}
	wg.Wait()
	return nil
}

// ErrNotAttachable is returned by Attach: connections are not attached here.
var ErrNotAttachable = errors.New("netconn: connections cannot be attached on this platform")

// Attachable reports false: connections are not attached here.
func Attachable(net.Conn) bool { return false }

// Attach returns ErrNotAttachable.
func (*Task) Attach(net.Conn) error { return ErrNotAttachable }

// Detach does nothing.
func (*Task) Detach(net.Conn) {}

// Block runs f.
func (*Task) Block(f func()) { f() }
