package engine

import (
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rehearse-dev/rehearse/internal/netconn"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// The client's sockets carry TCP_USER_TIMEOUT and keepalives probing as often when
// tcp_user_timeout is set, and the OS defaults when it is not; the closed loop's
// too, once a loop has taken their socket over.
func TestDialerSetsUserTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	tests := []struct {
		timeout time.Duration
		wantMs  int
		idle    int // keepalive idle seconds; 0: not checked
	}{
		{0, 0, 0},
		{2 * time.Second, 2000, 1},
		{9 * time.Second, 9000, 3},
	}
	for _, tt := range tests {
		for _, closed := range []bool{false, true} {
			cl := scenarios.Client{ConnectTimeout: scenarios.Duration(time.Second), TCPUserTimeout: scenarios.Duration(tt.timeout)}
			c, err := dialFunc(cl, closed)(t.Context(), "tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			if closed {
				// The closed loop's connections are attachable, and keep the
				// settings once attached (their socket is taken over).
				if !netconn.Attachable(c) {
					t.Fatalf("closed-loop dial returned %T", c)
				}
				if err := netconn.Run([]func(*netconn.Task){func(task *netconn.Task) {
					if err := task.Attach(c); err != nil {
						t.Error(err)
					}
					task.Detach(c)
				}}); err != nil {
					t.Fatal(err)
				}
			}
			checkSocket(t, c, closed, tt.timeout, tt.wantMs, tt.idle)
		}
	}
}

// checkSocket checks c's TCP_USER_TIMEOUT and keepalive idle time, and closes it.
func checkSocket(t *testing.T, c net.Conn, closed bool, timeout time.Duration, wantMs, wantIdle int) {
	t.Helper()
	defer c.Close()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ut, idle int
	var serr error
	_ = raw.Control(func(fd uintptr) {
		ut, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		if serr == nil {
			idle, serr = unix.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, unix.TCP_KEEPIDLE)
		}
	})
	if serr != nil {
		t.Fatal(serr)
	}
	if ut != wantMs || (wantIdle > 0 && idle != wantIdle) {
		t.Errorf("tcp_user_timeout %v (closed loop %v): TCP_USER_TIMEOUT %d ms, keepalive idle %d s; want %d ms, %d s", timeout, closed, ut, idle, wantMs, wantIdle)
	}
}
