package faults

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/internal/testutil"
)

// echo starts a TCP server on 127.0.0.1 that echoes each line back, and returns
// its host:port.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends line over c and reads it back, within d.
func roundTrip(c net.Conn, r *bufio.Reader, line string, d time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := c.SetDeadline(start.Add(d)); err != nil {
		return 0, err
	}
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return 0, err
	}
	got, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if got != line+"\n" {
		return 0, errors.New("echo answered " + got)
	}
	return time.Since(start), nil
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// A proxy stands on the node's host number and port in a block of its own, and
// passes traffic through untouched until a fault acts on it.
func TestProxyFront(t *testing.T) {
	node := echo(t)
	px := NewProxies(&testutil.SyncBuffer{})
	defer px.Close()
	front, err := px.Front(node)
	if err != nil {
		t.Fatal(err)
	}
	n, f := netip.MustParseAddrPort(node), netip.MustParseAddrPort(front)
	if f.Port() != n.Port() || f.Addr().As4()[3] != n.Addr().As4()[3] || f.Addr() == n.Addr() {
		t.Errorf("proxy of %s listens on %s: want the node's host number and port on another address", node, front)
	}
	if again, _ := px.Front(node); again != front {
		t.Errorf("a second Front = %s, want the same proxy %s", again, front)
	}
	if via := px.Via("not an address"); via != "not an address" {
		t.Errorf("Via of an address no proxy can front = %q, want it unchanged", via)
	}
	c, r := dial(t, front)
	if _, err := roundTrip(c, r, "hello", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	answer := px.AnswerFor(netip.PrefixFrom(n.Addr(), 24).Masked(), int(n.Port()))
	if got := answer(n.Addr()); got != f.Addr() {
		t.Errorf("the DNS answer for %s = %s, want its proxy's %s", n.Addr(), got, f.Addr())
	}
	if other := netip.MustParseAddr("127.200.0.9"); answer(other) != other {
		t.Error("an address outside the nodes' block must answer itself")
	}
}

// A blackhole holds every byte both ways, on open and new connections, and loses
// none: when it ends, what was sent arrives. Latency delays each reply. A reset
// ends every open connection, and new ones work at once.
func TestProxyFaults(t *testing.T) {
	node := echo(t)
	px := NewProxies(&testutil.SyncBuffer{})
	defer px.Close()
	front, err := px.Front(node)
	if err != nil {
		t.Fatal(err)
	}
	open, r := dial(t, front)
	if _, err := roundTrip(open, r, "before", 5*time.Second); err != nil {
		t.Fatal(err)
	}

	undo, err := px.Hold(node)
	if err != nil {
		t.Fatal(err)
	}
	if st := px.State(); len(st.Toxics) != 2 {
		t.Errorf("toxics during a blackhole: %v, want one each way", st.Toxics)
	}
	if _, err := roundTrip(open, r, "held", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("an open connection during a blackhole: %v, want a hang", err)
	}
	late, lr := dial(t, front) // TCP connects to the proxy; nothing gets through
	if _, err := roundTrip(late, lr, "new", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a new connection during a blackhole: %v, want a hang", err)
	}
	if err := undo(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		c    net.Conn
		r    *bufio.Reader
		line string
	}{{open, r, "held"}, {late, lr, "new"}} {
		_ = c.c.SetDeadline(time.Now().Add(5 * time.Second))
		if got, err := c.r.ReadString('\n'); err != nil || got != c.line+"\n" {
			t.Errorf("after the blackhole: read %q, %v; want the held %q", got, err, c.line)
		}
	}

	undo, err = px.Delay(node, 150*time.Millisecond, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := roundTrip(open, r, "slow", 5*time.Second); err != nil || d < 150*time.Millisecond {
		t.Errorf("a round trip with 150ms of latency took %v (%v)", d, err)
	}
	if err := undo(t.Context()); err != nil {
		t.Fatal(err)
	}

	if err := px.Reset(node); err != nil {
		t.Fatal(err)
	}
	_ = open.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Error("an open connection survived a reset")
	}
	again, ar := dial(t, front)
	if _, err := roundTrip(again, ar, "after", 5*time.Second); err != nil {
		t.Errorf("a new connection after a reset: %v", err)
	}
	if st := px.State(); len(st.Toxics) != 0 || len(st.Listening) != 1 {
		t.Errorf("after the faults: %+v, want one proxy listening and no toxic", st)
	}
}

// Close removes the toxics (held bytes flow on), closes the proxies and their
// connections; nothing listens afterwards.
func TestProxiesClose(t *testing.T) {
	node := echo(t)
	px := NewProxies(nil)
	front, err := px.Front(node)
	if err != nil {
		t.Fatal(err)
	}
	c, r := dial(t, front)
	if _, err := px.Hold(node); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "held\n"); err != nil {
		t.Fatal(err)
	}
	px.Close()
	px.Close()
	if st := px.State(); len(st.Listening)+len(st.Toxics) != 0 {
		t.Errorf("after Close: %+v", st)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := r.ReadString('\n'); err != nil {
			break // the connection ended (after the held line, if it made it)
		}
	}
	if _, err := net.DialTimeout("tcp", front, time.Second); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("dialing a closed proxy: %v, want refused", err)
	}
	if _, err := px.Front(node); !errors.Is(err, ErrNoProxy) {
		t.Errorf("Front after Close: %v, want ErrNoProxy", err)
	}
	var nilProxies *Proxies
	nilProxies.Close()
}
