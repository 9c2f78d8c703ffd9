package engine

import (
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// The client's sockets carry TCP_USER_TIMEOUT and keepalives probing as often when
// tcp_user_timeout is set, and the OS defaults when it is not.
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
		d := dialer(scenarios.Client{ConnectTimeout: scenarios.Duration(time.Second), TCPUserTimeout: scenarios.Duration(tt.timeout)})
		c, err := d.DialContext(t.Context(), "tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		raw, err := c.(*net.TCPConn).SyscallConn()
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
		c.Close()
		if serr != nil {
			t.Fatal(serr)
		}
		if ut != tt.wantMs || (tt.idle > 0 && idle != tt.idle) {
			t.Errorf("tcp_user_timeout %v: TCP_USER_TIMEOUT %d ms, keepalive idle %d s; want %d ms, %d s", tt.timeout, ut, idle, tt.wantMs, tt.idle)
		}
	}
}
