// Package dnsserver is the DNS server of a rehearsal's cluster: it answers for the
// cluster's names the way Aurora's DNS does, so what a client sees during a
// failover comes from the records' TTL, its own cache and its retries, not from a
// simulation.
//
// A Server is authoritative for one zone (DefaultZone) on a loopback address, over
// UDP and TCP. It holds two kinds of records, which its owner keeps current:
//
//   - hosts: a name with one IPv4 address (an instance's own name, a PgBouncer's);
//   - aliases: a name with a CNAME to one of its targets, chosen per query in turn
//     (round-robin), as Aurora's reader endpoint spreads connections; one target
//     makes a plain CNAME (the cluster endpoint to the writer instance).
//
// An A query for an alias answers the CNAME and the target's A record; an AAAA
// query answers the CNAME (for an alias) and no address (NODATA); an unknown name in
// the zone answers NXDOMAIN; a name outside it is REFUSED (the server does not
// recurse). Negative answers carry the zone's SOA, whose minimum is the TTL.
//
// Names (names.go) builds the Aurora-shaped names; migrate/endpoint keeps the
// endpoint records, the clusters (migrate/local, migrate/container) the instance
// records.
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// Defaults for zero Config fields.
const (
	// DefaultAddr is where the server listens when Config.Addr is empty: any free
	// port on 127.0.0.1.
	DefaultAddr = "127.0.0.1:0"
	// DefaultTTL is the records' TTL when Config.TTL is 0: Aurora's 5 s.
	DefaultTTL = 5 * time.Second
	// listenAttempts bounds the search for a port free for both UDP and TCP.
	listenAttempts = 8
	// startTimeout bounds the wait for the serving goroutines to start.
	startTimeout = 10 * time.Second
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrInvalidConfig means a Config field, a name or an address is unusable.
	ErrInvalidConfig = errors.New("dnsserver: invalid config")
	// ErrAddrInUse means the server's address is taken (UDP or TCP).
	ErrAddrInUse = errors.New("dnsserver: address already in use")
	// ErrClosed means the server was closed.
	ErrClosed = errors.New("dnsserver: closed")
)

// Config describes a Server for Start.
type Config struct {
	// Addr is the loopback host:port to listen on, for UDP and TCP; port 0 picks one
	// free for both. Empty means DefaultAddr.
	Addr string
	// Names are the cluster's names; their zone is the server's (Start fills in
	// empty fields, see Names).
	Names Names
	// TTL is every record's TTL (whole seconds, rounded up); 0 means DefaultTTL.
	TTL time.Duration
	// Log receives one line per record change; nil discards them.
	Log io.Writer
}

// Server is a running DNS server. Its methods are safe for concurrent use.
type Server struct {
	names  Names
	zone   string // fully qualified, lower case
	ttl    uint32
	log    io.Writer
	addr   string
	udp    *dns.Server
	tcp    *dns.Server
	served sync.WaitGroup

	mu      sync.RWMutex
	hosts   map[string]netip.Addr // fully qualified lower-case name -> IPv4
	aliases map[string]*alias
	serial  uint32
	closed  bool
	// answerAddr, when set, maps the address an A answer carries (MapAnswers).
	answerAddr func(netip.Addr) netip.Addr
}

// alias is a CNAME with its targets and the rotation's position.
type alias struct {
	targets []string // fully qualified, lower case
	next    atomic.Uint64
}

// Start listens on cfg.Addr (UDP and TCP) and serves until Close. An address that is
// taken is an error wrapping ErrAddrInUse that names it.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < 0 {
		return nil, fmt.Errorf("%w: TTL %v is negative", ErrInvalidConfig, cfg.TTL)
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	names := cfg.Names.withDefaults()
	if err := names.validate(); err != nil {
		return nil, err
	}
	host, port, err := splitLoopback(cfg.Addr)
	if err != nil {
		return nil, err
	}
	pc, ln, err := listen(ctx, host, port)
	if err != nil {
		return nil, err
	}
	s := &Server{
		names: names, zone: dns.Fqdn(names.Zone), log: cfg.Log,
		ttl:   uint32((cfg.TTL + time.Second - 1) / time.Second),
		addr:  ln.Addr().String(),
		hosts: map[string]netip.Addr{}, aliases: map[string]*alias{}, serial: 1,
	}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: s, NotifyStartedFunc: notify}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		s.served.Go(func() { _ = srv.ActivateAndServe() })
	}
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	for range 2 {
		select {
		case <-started:
		case <-timer.C:
			_ = s.Close()
			return nil, fmt.Errorf("dnsserver: %s did not start serving within %v", s.addr, startTimeout)
		}
	}
	fmt.Fprintf(s.log, "dns server on %s (udp and tcp), zone %s, ttl %ds\n", s.addr, names.Zone, s.ttl)
	return s, nil
}

// splitLoopback parses a loopback host:port: the server serves this machine only.
func splitLoopback(addr string) (netip.Addr, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%w: address %q: %w", ErrInvalidConfig, addr, err)
	}
	ip, err := netip.ParseAddr(h)
	if err != nil || !ip.IsLoopback() {
		return netip.Addr{}, 0, fmt.Errorf("%w: address %q: want a loopback IP address and port, e.g. 127.0.0.1:5353", ErrInvalidConfig, addr)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return netip.Addr{}, 0, fmt.Errorf("%w: address %q: port is not 0-65535", ErrInvalidConfig, addr)
	}
	return ip, port, nil
}

// listen binds UDP and TCP on the same port: port itself, or when it is 0 one that
// is free for both (UDP first, then TCP on its port, again when TCP's is taken).
func listen(ctx context.Context, host netip.Addr, port int) (net.PacketConn, net.Listener, error) {
	var lc net.ListenConfig
	var last error
	for range listenAttempts {
		addr := net.JoinHostPort(host.String(), strconv.Itoa(port))
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, listenError(addr, "udp", err)
		}
		taddr := net.JoinHostPort(host.String(), strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port))
		ln, err := lc.Listen(ctx, "tcp", taddr)
		if err == nil {
			return pc, ln, nil
		}
		_ = pc.Close()
		last = listenError(taddr, "tcp", err)
		if port != 0 || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, last
		}
	}
	return nil, nil, fmt.Errorf("dnsserver: no port on %s free for both udp and tcp after %d attempts: %w", host, listenAttempts, last)
}

func listenError(addr, network string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w: %s (%s): another process listens there; choose another target.dns_addr, or port 0 for any free one: %w", ErrAddrInUse, addr, network, err)
	}
	return fmt.Errorf("dnsserver: listen on %s (%s): %w", addr, network, err)
}

// Addr returns the host:port the server answers on (UDP and TCP).
func (s *Server) Addr() string { return s.addr }

// Names returns the cluster's names (with every field filled in).
func (s *Server) Names() Names { return s.names }

// TTL returns the records' TTL.
func (s *Server) TTL() time.Duration { return time.Duration(s.ttl) * time.Second }

// canonical returns name fully qualified and in lower case, or an error when it is
// not in the server's zone.
func (s *Server) canonical(name string) (string, error) {
	fq := strings.ToLower(dns.Fqdn(name))
	if _, ok := dns.IsDomainName(fq); !ok || !dns.IsSubDomain(s.zone, fq) || fq == s.zone {
		return "", fmt.Errorf("%w: name %q is not a name in zone %s", ErrInvalidConfig, name, s.names.Zone)
	}
	return fq, nil
}

// SetHost makes name answer ip (an IPv4 address) to A queries, replacing an alias of
// the same name.
func (s *Server) SetHost(name string, ip netip.Addr) error {
	fq, err := s.canonical(name)
	if err != nil {
		return err
	}
	if !ip.Is4() {
		return fmt.Errorf("%w: host %s: address %v is not IPv4", ErrInvalidConfig, name, ip)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if old, ok := s.hosts[fq]; ok && old == ip {
		return nil
	}
	delete(s.aliases, fq)
	s.hosts[fq] = ip
	s.serial++
	fmt.Fprintf(s.log, "dns: %s A %s\n", strings.TrimSuffix(fq, "."), ip)
	return nil
}

// SetAlias makes name a CNAME to targets (names in the zone): one per query, in
// turn, for A and CNAME queries. It replaces a host of the same name. Setting the
// same targets again keeps the rotation's position.
func (s *Server) SetAlias(name string, targets ...string) error {
	fq, err := s.canonical(name)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("%w: alias %s has no target", ErrInvalidConfig, name)
	}
	fts := make([]string, len(targets))
	for i, t := range targets {
		if fts[i], err = s.canonical(t); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if old, ok := s.aliases[fq]; ok && slices.Equal(old.targets, fts) {
		return nil
	}
	delete(s.hosts, fq)
	s.aliases[fq] = &alias{targets: fts}
	s.serial++
	shown := make([]string, len(fts))
	for i, t := range fts {
		shown[i] = strings.TrimSuffix(t, ".")
	}
	fmt.Fprintf(s.log, "dns: %s CNAME %s\n", strings.TrimSuffix(fq, "."), strings.Join(shown, " | "))
	return nil
}

// MapAnswers makes A answers carry f(ip) instead of a host's own address ip, and
// nil undoes it; the records themselves (Host, HostsAt) keep their addresses. A
// fault proxy in front of each node uses it: a client that resolves an instance
// name reaches the node through its proxy. f runs for every A answer, while the
// records are read-locked: it must be quick and must not call the server.
func (s *Server) MapAnswers(f func(ip netip.Addr) netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answerAddr = f
}

// Remove deletes name's record (host or alias); it then answers NXDOMAIN.
func (s *Server) Remove(name string) {
	fq, err := s.canonical(name)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, h := s.hosts[fq]
	_, a := s.aliases[fq]
	if !h && !a {
		return
	}
	delete(s.hosts, fq)
	delete(s.aliases, fq)
	s.serial++
	fmt.Fprintf(s.log, "dns: %s removed\n", strings.TrimSuffix(fq, "."))
}

// Host returns the address of host name.
func (s *Server) Host(name string) (netip.Addr, bool) {
	fq, err := s.canonical(name)
	if err != nil {
		return netip.Addr{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ip, ok := s.hosts[fq]
	return ip, ok
}

// HostsAt returns the host names that answer ip, sorted, without the trailing dot.
func (s *Server) HostsAt(ip netip.Addr) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for name, a := range s.hosts {
		if a == ip {
			out = append(out, strings.TrimSuffix(name, "."))
		}
	}
	slices.Sort(out)
	return out
}

// Alias returns the targets of alias name, without the trailing dot.
func (s *Server) Alias(name string) []string {
	fq, err := s.canonical(name)
	if err != nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.aliases[fq]
	if !ok {
		return nil
	}
	out := make([]string, len(a.targets))
	for i, t := range a.targets {
		out[i] = strings.TrimSuffix(t, ".")
	}
	return out
}

// Close stops serving and waits until the serving goroutines have returned. It is
// idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.served.Wait()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		if err := srv.ShutdownContext(ctx); err != nil && !strings.Contains(err.Error(), "not started") {
			errs = append(errs, err)
		}
	}
	s.served.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dnsserver: close %s: %w", s.addr, err)
	}
	return nil
}
