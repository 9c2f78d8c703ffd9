package netconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Supported reports whether loops run tasks on one thread here (Linux: epoll).
const Supported = true

// Conn is a client connection that a Loop's task can attach (see the package
// documentation). Before its first attachment it is the dialed connection, on Go's
// network poller. Once attached, its socket belongs to it: the owning task reads
// and writes without blocking and waits in its loop; any other goroutine (a
// driver's background reader, or the goroutine that closes it) waits with poll(2)
// on its own thread. After Detach it stays so until it is attached again.
//
// A deadline set by another goroutine than the owning task, or Close, ends the
// owner's wait at once.
type Conn struct {
	// nc is the dialed connection until the first Attach takes its socket over.
	nc atomic.Pointer[pollConn]
	// fd is the socket once taken over; state counts the calls using it (low bits)
	// and marks it closed (then released, once the last call is out).
	fd      int
	state   atomic.Int64
	laddr   net.Addr
	raddr   net.Addr
	network string

	// owner is the task the connection is attached to; nil when detached.
	owner atomic.Pointer[Task]
	// Deadlines as Unix nanoseconds, 0 for none, once taken over.
	rdeadline, wdeadline atomic.Int64

	// Used on the owner loop's thread only: the socket's slot in the loop and the
	// readiness epoll reported since the last read (write) that came back empty.
	slot               int32
	readable, writable bool

	mu sync.Mutex // serialises Attach, Detach and Close
}

// pollConn is the dialed connection, on Go's network poller.
type pollConn struct{ net.Conn }

const (
	stateClosed   = int64(1) << 62
	stateReleased = int64(1) << 61
	stateRefs     = stateReleased - 1
)

var _ net.Conn = (*Conn)(nil)

// Dial connects with d and returns a *Conn, or the dialer's own connection when it
// has no socket to take over.
func Dial(ctx context.Context, d *net.Dialer, network, address string) (net.Conn, error) {
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	if _, ok := nc.(syscall.Conn); !ok {
		return nc, nil
	}
	return newConn(nc), nil
}

func newConn(nc net.Conn) *Conn {
	c := &Conn{fd: -1, laddr: nc.LocalAddr(), raddr: nc.RemoteAddr(), network: "tcp"}
	if c.raddr != nil {
		c.network = c.raddr.Network()
	}
	c.nc.Store(&pollConn{nc})
	return c
}

// takeOver moves the socket off Go's network poller: a duplicate descriptor keeps
// it open when the dialed connection is closed. Called with c.mu held.
func (c *Conn) takeOver(pc *pollConn) error {
	sc, ok := pc.Conn.(syscall.Conn)
	if !ok {
		return fmt.Errorf("netconn: %T has no socket", pc.Conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("netconn: %w", err)
	}
	fd, derr := -1, error(nil)
	if err := raw.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return fmt.Errorf("netconn: %w", err)
	}
	if derr != nil {
		return fmt.Errorf("netconn: dup: %w", derr)
	}
	// Closing the dialed connection takes it out of the network poller; the
	// duplicate shares the open socket, O_NONBLOCK included.
	pc.Close()
	c.fd = fd
	c.nc.Store(nil)
	return nil
}

// acquire takes a reference on the socket for one call; false once it is closed.
func (c *Conn) acquire() bool {
	if c.state.Add(1)&stateClosed != 0 {
		c.release()
		return false
	}
	return true
}

// release drops a reference; the last one out after Close closes the socket.
func (c *Conn) release() {
	if c.state.Add(-1) == stateClosed {
		c.closeFD()
	}
}

func (c *Conn) closeFD() {
	if c.state.CompareAndSwap(stateClosed, stateClosed|stateReleased) {
		unix.Close(c.fd)
	}
}

func (c *Conn) closed() bool { return c.state.Load()&stateClosed != 0 }

// ownedBy reports whether the calling goroutine is t, the owner of c, running now.
func (c *Conn) ownedBy(t *Task) bool {
	return t != nil && t.loop.cur.Load() == t && goroutineKey() == t.key
}

// Read reads into p. The owning task waits in its loop; other callers wait on their
// own thread.
func (c *Conn) Read(p []byte) (int, error) {
	if pc := c.nc.Load(); pc != nil {
		return pc.Read(p)
	}
	if !c.acquire() {
		return 0, c.opError("read", net.ErrClosed)
	}
	defer c.release()
	if len(p) == 0 {
		return 0, nil
	}
	if t := c.owner.Load(); c.ownedBy(t) {
		return c.ownerRead(t, p)
	}
	for {
		if err := c.check(&c.rdeadline); err != nil {
			return 0, c.opError("read", err)
		}
		n, err := recv(c.fd, p)
		if err != unix.EAGAIN {
			return c.readResult(n, err)
		}
		if err := c.poll(unix.POLLIN, &c.rdeadline); err != nil {
			return 0, c.opError("read", err)
		}
	}
}

func (c *Conn) ownerRead(t *Task, p []byte) (int, error) {
	for {
		// Nothing arrived since the socket was found empty: epoll reports the
		// next arrival, so no read is tried before it.
		if c.readable {
			n, err := recv(c.fd, p)
			if err != unix.EAGAIN {
				if err == nil && n > 0 && n < len(p) {
					// A short read emptied the socket.
					c.readable = false
				}
				return c.readResult(n, err)
			}
			c.readable = false
		}
		// The deadline bounds the wait: what has arrived is read regardless.
		if err := c.checkAt(&c.rdeadline, t.loop.now); err != nil {
			return 0, c.opError("read", err)
		}
		t.wait(c, waitRead)
	}
}

func (c *Conn) readResult(n int, err error) (int, error) {
	switch {
	case err == nil && n > 0:
		return n, nil
	case c.closed():
		return 0, c.opError("read", net.ErrClosed)
	case err == nil:
		return 0, io.EOF
	}
	return 0, c.opError("read", os.NewSyscallError("recvfrom", err))
}

// Write writes all of p. The owning task waits in its loop while the socket's
// buffer is full; other callers wait on their own thread.
func (c *Conn) Write(p []byte) (int, error) {
	if pc := c.nc.Load(); pc != nil {
		return pc.Write(p)
	}
	if !c.acquire() {
		return 0, c.opError("write", net.ErrClosed)
	}
	defer c.release()
	t := c.owner.Load()
	if !c.ownedBy(t) {
		t = nil
	}
	written := 0
	for written < len(p) {
		if err := c.checkWrite(t); err != nil {
			return written, c.opError("write", err)
		}
		n, err := send(c.fd, p[written:])
		written += n
		switch {
		case err == nil:
			continue
		case err != unix.EAGAIN && c.closed():
			return written, c.opError("write", net.ErrClosed)
		case err != unix.EAGAIN:
			return written, c.opError("write", os.NewSyscallError("sendto", err))
		case t != nil:
			c.writable = false
			for !c.writable && c.checkWrite(t) == nil {
				t.wait(c, waitWrite)
			}
			continue
		}
		if err := c.poll(unix.POLLOUT, &c.wdeadline); err != nil {
			return written, c.opError("write", err)
		}
	}
	return written, nil
}

// checkWrite checks the write deadline, against the loop's clock for the owning
// task t (nil: anyone else).
func (c *Conn) checkWrite(t *Task) error {
	if t != nil {
		return c.checkAt(&c.wdeadline, t.loop.now)
	}
	return c.check(&c.wdeadline)
}

// check fails a call on a closed connection or past its deadline.
func (c *Conn) check(deadline *atomic.Int64) error {
	if c.closed() {
		return net.ErrClosed
	}
	if dl := deadline.Load(); dl != 0 && time.Now().UnixNano() >= dl {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// checkAt is check at time now (Unix nanoseconds): the owning task goes by the
// time its loop last woke up, which spares it a clock read per call; a deadline is
// then noticed at most one run of the loop's ready tasks late.
func (c *Conn) checkAt(deadline *atomic.Int64, now int64) error {
	if c.closed() {
		return net.ErrClosed
	}
	if dl := deadline.Load(); dl != 0 && now >= dl {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// pollSlice bounds each poll(2) of a caller that is not the owning task, so that a
// deadline moved earlier by yet another goroutine is noticed soon (Close wakes it
// at once: it shuts the socket down).
const pollSlice = 20 * time.Millisecond

// poll waits, on the calling thread, until the socket is ready for events, its
// deadline has passed or a slice of time has.
func (c *Conn) poll(events int16, deadline *atomic.Int64) error {
	wait := pollSlice
	if dl := deadline.Load(); dl != 0 {
		left := time.Duration(dl - time.Now().UnixNano())
		if left <= 0 {
			return os.ErrDeadlineExceeded
		}
		wait = min(wait, left)
	}
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: events}}
	_, err := unix.Poll(fds, int((wait+time.Millisecond-1)/time.Millisecond))
	if err != nil && err != unix.EINTR {
		return os.NewSyscallError("poll", err)
	}
	return nil
}

// recv and send never block: the socket is non-blocking. They are raw system
// calls, so Go's runtime neither hands the caller's P to another thread nor wakes
// its monitor thread for them.
func recv(fd int, p []byte) (int, error) {
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// send writes with MSG_NOSIGNAL: a peer that went away is an EPIPE, not a signal.
func send(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	if pc := c.nc.Load(); pc != nil {
		return pc.SetDeadline(t)
	}
	return c.setDeadlines(t, &c.rdeadline, &c.wdeadline)
}

// SetReadDeadline sets the deadline of reads (the zero time: none).
func (c *Conn) SetReadDeadline(t time.Time) error {
	if pc := c.nc.Load(); pc != nil {
		return pc.SetReadDeadline(t)
	}
	return c.setDeadlines(t, &c.rdeadline, nil)
}

// SetWriteDeadline sets the deadline of writes (the zero time: none).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if pc := c.nc.Load(); pc != nil {
		return pc.SetWriteDeadline(t)
	}
	return c.setDeadlines(t, &c.wdeadline, nil)
}

func (c *Conn) setDeadlines(t time.Time, a, b *atomic.Int64) error {
	if c.closed() {
		return c.opError("set deadline", net.ErrClosed)
	}
	var ns int64
	if !t.IsZero() {
		ns = max(t.UnixNano(), 1)
	}
	a.Store(ns)
	if b != nil {
		b.Store(ns)
	}
	// The owning task reads its deadline when it next reads or writes, and its
	// loop when the task waits: only a task already waiting must be told.
	if o := c.owner.Load(); o != nil && o.loop.cur.Load() != o {
		o.loop.wake()
	}
	return nil
}

// Close closes the connection. Calls waiting on it return net.ErrClosed; the socket
// is closed once the last of them is out.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pc := c.nc.Load(); pc != nil {
		return pc.Close()
	}
	old := c.state.Or(stateClosed)
	if old&stateClosed != 0 {
		return c.opError("close", net.ErrClosed)
	}
	if old&stateRefs != 0 {
		// Wake the calls polling on other threads; the last one out closes fd.
		unix.Shutdown(c.fd, unix.SHUT_RDWR)
		if o := c.owner.Load(); o != nil {
			o.loop.wake()
		}
		return nil
	}
	c.closeFD()
	return nil
}

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

// SyscallConn gives access to the socket, to read or set its options.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if pc := c.nc.Load(); pc != nil {
		if sc, ok := pc.Conn.(syscall.Conn); ok {
			return sc.SyscallConn()
		}
	}
	return rawConn{c}, nil
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.network, Source: c.laddr, Addr: c.raddr, Err: err}
}

// errRawClosed is the error of a raw call on a closed connection.
var errRawClosed = errors.New("netconn: use of closed connection")

// rawConn is the socket's syscall.RawConn once it is taken over. Read and Write
// call f until it reports done, polling between calls.
type rawConn struct{ c *Conn }

func (r rawConn) Control(f func(fd uintptr)) error {
	if !r.c.acquire() {
		return errRawClosed
	}
	defer r.c.release()
	f(uintptr(r.c.fd))
	return nil
}

func (r rawConn) Read(f func(fd uintptr) bool) error { return r.wait(unix.POLLIN, &r.c.rdeadline, f) }

func (r rawConn) Write(f func(fd uintptr) bool) error {
	return r.wait(unix.POLLOUT, &r.c.wdeadline, f)
}

func (r rawConn) wait(events int16, deadline *atomic.Int64, f func(fd uintptr) bool) error {
	if !r.c.acquire() {
		return errRawClosed
	}
	defer r.c.release()
	for !f(uintptr(r.c.fd)) {
		if err := r.c.check(deadline); err != nil {
			return err
		}
		if err := r.c.poll(events, deadline); err != nil {
			return err
		}
	}
	return nil
}
