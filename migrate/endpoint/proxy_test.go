package endpoint

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
)

// echoServer is a TCP server on 127.0.0.1 that greets each connection with its name
// and a newline, then echoes lines back. Close waits for all its goroutines.
type echoServer struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func newEchoServer(t *testing.T, name string) *echoServer {
	t.Helper()
	return newEchoServerAt(t, name, "127.0.0.1:0")
}

// newEchoServerAt is newEchoServer on addr.
func newEchoServerAt(t *testing.T, name, addr string) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{name: name, ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Go(func() {
				defer c.Close()
				_, _ = io.WriteString(c, name+"\n")
				_, _ = io.Copy(c, c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			})
		}
	})
	t.Cleanup(s.Close)
	return s
}

func (s *echoServer) Addr() string { return s.ln.Addr().String() }

func (s *echoServer) Close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// client is a connection through a proxy with its greeting already read.
type client struct {
	c      net.Conn
	r      *bufio.Reader
	server string
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	greet, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read greeting through %s: %v", addr, err)
	}
	return &client{c: c, r: r, server: greet[:len(greet)-1]}
}

func (c *client) echo(msg string) (string, error) {
	if _, err := io.WriteString(c.c, msg+"\n"); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return line[:len(line)-1], nil
}

func newProxy(t *testing.T, name string, backends []string) *Proxy {
	t.Helper()
	p, err := NewProxy(name, backends, &testutil.SyncBuffer{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestProxyForwardsAndRoundRobins(t *testing.T) {
	a, b := newEchoServer(t, "a"), newEchoServer(t, "b")
	p := newProxy(t, "test", []string{a.Addr(), b.Addr()})
	if host, _, _ := net.SplitHostPort(p.Addr()); host != "127.0.0.1" {
		t.Fatalf("Addr %s: want 127.0.0.1", p.Addr())
	}

	var got []string
	for range 4 {
		c := dial(t, p.Addr())
		if r, err := c.echo("hello"); err != nil || r != "hello" {
			t.Fatalf("echo through proxy: %q, %v", r, err)
		}
		got = append(got, c.server)
	}
	if want := []string{"a", "b", "a", "b"}; !slices.Equal(got, want) {
		t.Errorf("servers reached: %v, want %v", got, want)
	}
	if n := p.Conns(); n != 4 {
		t.Errorf("Conns = %d, want 4", n)
	}
	if n := p.ConnsTo(a.Addr()); n != 2 {
		t.Errorf("ConnsTo(a) = %d, want 2", n)
	}
}

// A backend name is resolved through the DNS server for each new connection.
func TestProxyResolvesEachConnection(t *testing.T) {
	srv := startDNSServer(t, time.Second, &testutil.SyncBuffer{})
	a := newEchoServerAt(t, "a", "127.66.2.2:0")
	_, port, _ := net.SplitHostPort(a.Addr())
	newEchoServerAt(t, "b", net.JoinHostPort("127.66.2.3", port))
	name := srv.Names().Writer()
	if err := srv.SetHost(name, netip.MustParseAddr("127.66.2.2")); err != nil {
		t.Fatal(err)
	}
	p, err := NewProxy("writer", []string{net.JoinHostPort(name, port)}, &testutil.SyncBuffer{}, WithResolver(dnsserver.NewResolver(srv.Addr())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	first := dial(t, p.Addr())
	if err := srv.SetHost(name, netip.MustParseAddr("127.66.2.3")); err != nil {
		t.Fatal(err)
	}
	second := dial(t, p.Addr())
	if first.server != "a" || second.server != "b" {
		t.Errorf("connections reached %s then %s, want a, then b after the record changed", first.server, second.server)
	}
	if r, err := first.echo("still"); err != nil || r != "still" {
		t.Errorf("the first connection after the change: %q, %v", r, err)
	}
}

func TestProxySetBackendsAffectsNewConnectionsOnly(t *testing.T) {
	a, b := newEchoServer(t, "a"), newEchoServer(t, "b")
	p := newProxy(t, "test", []string{a.Addr()})
	old := dial(t, p.Addr())
	p.SetBackends([]string{b.Addr()})
	if got := p.Backends(); !slices.Equal(got, []string{b.Addr()}) {
		t.Errorf("Backends = %v", got)
	}
	if c := dial(t, p.Addr()); c.server != "b" {
		t.Errorf("new connection reached %s, want b", c.server)
	}
	if r, err := old.echo("still"); err != nil || r != "still" || old.server != "a" {
		t.Errorf("established connection: %q %v (server %s), want it kept on a", r, err, old.server)
	}
}

func TestProxyDrop(t *testing.T) {
	a, b := newEchoServer(t, "a"), newEchoServer(t, "b")
	p := newProxy(t, "test", []string{a.Addr(), b.Addr()})
	ca1, cb, ca2 := dial(t, p.Addr()), dial(t, p.Addr()), dial(t, p.Addr())
	if ca1.server != "a" || cb.server != "b" || ca2.server != "a" {
		t.Fatalf("servers %s %s %s", ca1.server, cb.server, ca2.server)
	}
	if n := p.Drop(a.Addr()); n != 2 {
		t.Errorf("Drop(a) = %d, want 2", n)
	}
	for _, c := range []*client{ca1, ca2} {
		if _, err := c.echo("x"); err == nil {
			t.Errorf("connection to a still works after Drop")
		}
	}
	if r, err := cb.echo("y"); err != nil || r != "y" {
		t.Errorf("connection to b: %q, %v; want it untouched", r, err)
	}
	if n := p.Drop(a.Addr()); n != 0 {
		t.Errorf("second Drop(a) = %d, want 0", n)
	}
	testutil.Eventually(t, 5*time.Second, "the dropped connections to be forgotten", func() bool { return p.Conns() == 1 })
}

func TestProxyUnreachableBackendResets(t *testing.T) {
	dead := testutil.FreeAddr(t, "127.0.0.1") // nothing listens there

	for _, backends := range [][]string{{dead}, nil} {
		p := newProxy(t, "test", backends)
		// The reset may even beat the end of the client's connect.
		c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("backends %v: read = %v, want the connection reset", backends, err)
		}
	}
}

func TestProxyCloseEndsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	a := newEchoServer(t, "a")
	p, err := NewProxy("test", []string{a.Addr()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	clients := []*client{dial(t, p.Addr()), dial(t, p.Addr()), dial(t, p.Addr())}
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung")
	}
	for _, c := range clients {
		if _, err := c.echo("x"); err == nil {
			t.Error("client connection survived Close")
		}
		c.c.Close()
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("proxy still accepts after Close")
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	a.Close()
	// Close waited for the proxy's goroutines; they may still be unwinding.
	testutil.Eventually(t, 5*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestProxyPostgres(t *testing.T) {
	n1, n2 := startNode(t, "node1"), startNode(t, "node2")
	p := newProxy(t, "writer", []string{nodeAddr(n1)})

	conn := connect(t, p.Addr(), pgx.QueryExecModeCacheStatement)
	if got := mustServerPort(t, conn); got != n1.Port() {
		t.Fatalf("through proxy reached port %d, want node1's %d", got, n1.Port())
	}
	if _, err := conn.Exec(t.Context(), "CREATE TABLE t (id int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	var sum int
	if err := conn.QueryRow(t.Context(), "SELECT sum(id) FROM t WHERE id = $1", 1).Scan(&sum); err != nil || sum != 1 {
		t.Fatalf("query through proxy: %d, %v", sum, err)
	}

	p.SetBackends([]string{nodeAddr(n2)})
	if got := portVia(t, p.Addr(), pgx.QueryExecModeCacheStatement); got != n2.Port() {
		t.Errorf("new connection after SetBackends reached %d, want node2's %d", got, n2.Port())
	}
	if got := mustServerPort(t, conn); got != n1.Port() {
		t.Errorf("established connection moved to %d", got)
	}

	if n := p.Drop(nodeAddr(n1)); n != 1 {
		t.Errorf("Drop(node1) = %d, want 1", n)
	}
	if _, err := serverPort(t.Context(), conn); err == nil {
		t.Error("query on a dropped connection succeeded")
	}
}
