package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// dialTimeout bounds a Proxy's connection attempt to a backend.
const dialTimeout = 5 * time.Second

// Proxy is a TCP forwarder listening on 127.0.0.1: the building block of the dns
// mode's endpoints. Each accepted client connection is paired with a new connection
// to one backend, chosen round-robin among the current backends, and bytes are copied
// both ways until either side ends, which closes both. Changing the backends affects
// new connections only, as a DNS change does; Drop ends established ones.
//
// A client whose backend cannot be reached (the node is down) has its connection
// reset (TCP RST) right after it was accepted, the closest a listening proxy can come
// to a refused connection; clients see ECONNRESET or EOF while connecting.
//
// A backend may be a name: it is resolved for each new connection (see
// WithResolver), as a client that caches nothing resolves it.
type Proxy struct {
	name     string
	ln       net.Listener
	log      io.Writer
	resolver *net.Resolver   // nil: the default resolver
	ctx      context.Context // cancelled by Close: ends pending dials
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the accept loop and every connection's goroutines

	mu       sync.Mutex
	backends []string
	next     int
	conns    map[*link]struct{}
	closed   bool
}

// link is one client connection and its backend connection.
type link struct {
	client, server net.Conn
	backend        string
	once           sync.Once
}

func (l *link) close() {
	l.once.Do(func() {
		_ = l.client.Close()
		_ = l.server.Close()
	})
}

// ProxyOption tunes a Proxy.
type ProxyOption func(*Proxy)

// WithResolver makes the proxy resolve its backends' names with r, for each new
// connection (dnsserver.NewResolver asks the cluster's DNS server only).
func WithResolver(r *net.Resolver) ProxyOption {
	return func(p *Proxy) { p.resolver = r }
}

// NewProxy starts a Proxy named name (for log lines) on a free 127.0.0.1 port,
// forwarding new connections to backends (host:port). No backends is allowed: new
// connections are then reset until SetBackends gives some. log receives one line per
// backend change, drop and failed dial; nil discards them.
func NewProxy(name string, backends []string, log io.Writer, opts ...ProxyOption) (*Proxy, error) {
	if log == nil {
		log = io.Discard
	}
	for _, b := range backends {
		if err := checkHostPort(b); err != nil {
			return nil, fmt.Errorf("endpoint: proxy %s: %w", name, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("endpoint: proxy %s: listen on 127.0.0.1: %w", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		name: name, ln: ln, log: log, ctx: ctx, cancel: cancel,
		backends: slices.Clone(backends),
		conns:    make(map[*link]struct{}),
	}
	for _, o := range opts {
		o(p)
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Name returns the proxy's name.
func (p *Proxy) Name() string { return p.name }

// Addr returns the 127.0.0.1:port clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetBackends replaces the backends new connections go to (round-robin). Established
// connections are left alone.
func (p *Proxy) SetBackends(addrs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if slices.Equal(p.backends, addrs) {
		return
	}
	fmt.Fprintf(p.log, "endpoint %s: backends %v -> %v\n", p.name, p.backends, addrs)
	p.backends = slices.Clone(addrs)
	p.next = 0
}

// Backends returns the backends new connections go to.
func (p *Proxy) Backends() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.backends)
}

// Drop closes every established connection to backend addr, both the client's and
// the backend's side, and returns how many there were. It does not wait for their
// goroutines; it never blocks on the network.
func (p *Proxy) Drop(addr string) int {
	p.mu.Lock()
	var victims []*link
	for l := range p.conns {
		if l.backend == addr {
			victims = append(victims, l)
			delete(p.conns, l)
		}
	}
	p.mu.Unlock()
	for _, l := range victims {
		l.close()
	}
	if len(victims) > 0 {
		fmt.Fprintf(p.log, "endpoint %s: dropped %d connection(s) to %s\n", p.name, len(victims), addr)
	}
	return len(victims)
}

// Conns returns the number of established connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// ConnsTo returns the number of established connections to backend addr.
func (p *Proxy) ConnsTo(addr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for l := range p.conns {
		if l.backend == addr {
			n++
		}
	}
	return n
}

// Close stops listening, closes every connection and waits until all of the proxy's
// goroutines have returned. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	victims := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		victims = append(victims, l)
	}
	clear(p.conns)
	p.mu.Unlock()

	p.cancel()
	err := p.ln.Close()
	for _, l := range victims {
		l.close()
	}
	p.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("endpoint: proxy %s: close listener: %w", p.name, err)
	}
	return nil
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// A persistent accept error (e.g. out of file descriptors): report it and
			// back off briefly rather than spin.
			fmt.Fprintf(p.log, "endpoint %s: accept: %v\n", p.name, err)
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// pick returns the next backend round-robin, or "" when there is none or the proxy
// is closed.
func (p *Proxy) pick() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.backends) == 0 {
		return ""
	}
	b := p.backends[p.next%len(p.backends)]
	p.next = (p.next + 1) % len(p.backends)
	return b
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	backend := p.pick()
	if backend == "" {
		reset(client)
		return
	}
	d := net.Dialer{Timeout: dialTimeout, Resolver: p.resolver}
	server, err := d.DialContext(p.ctx, "tcp", backend)
	if err != nil {
		if p.ctx.Err() == nil {
			fmt.Fprintf(p.log, "endpoint %s: %s unreachable: %v\n", p.name, backend, err)
		}
		reset(client)
		return
	}
	l := &link{client: client, server: server, backend: backend}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.close()
		return
	}
	p.conns[l] = struct{}{}
	p.mu.Unlock()

	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		l.close() // either direction ending ends both
	}
	upstream := make(chan struct{})
	go func() {
		defer close(upstream)
		pipe(server, client)
	}()
	pipe(client, server)
	<-upstream // the handler counts as done only when both directions are

	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
}

// reset closes c with an RST instead of a FIN, so the client sees its connection
// refused-like rather than an orderly end.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// checkHostPort validates a host:port backend address.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: backend %q: %w", ErrInvalidConfig, addr, err)
	}
	if host == "" || port == "" {
		return fmt.Errorf("%w: backend %q: want host:port", ErrInvalidConfig, addr)
	}
	return nil
}
