package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/rehearse-dev/rehearse/internal/testutil"
)

var (
	ip1 = netip.MustParseAddr("127.9.8.2")
	ip2 = netip.MustParseAddr("127.9.8.3")
	ip3 = netip.MustParseAddr("127.9.8.4")
)

// startServer starts a server with three instances, the cluster endpoint on node1
// and the reader endpoint over node2 and node3, and closes it at cleanup.
func startServer(t testing.TB, ttl time.Duration) (*Server, *testutil.SyncBuffer) {
	t.Helper()
	log := &testutil.SyncBuffer{}
	s, err := Start(context.Background(), Config{Names: Names{Cluster: "Demo_Cluster", ID: "abc123def456"}, TTL: ttl, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	n := s.Names()
	for _, err := range []error{
		s.SetHost(n.Instance("node1"), ip1),
		s.SetHost(n.Instance("node2"), ip2),
		s.SetHost(n.Instance("node3"), ip3),
		s.SetAlias(n.Writer(), n.Instance("node1")),
		s.SetAlias(n.Reader(), n.Instance("node2"), n.Instance("node3")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return s, log
}

func exchange(t testing.TB, s *Server, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := (&dns.Client{Net: network, Timeout: 5 * time.Second}).Exchange(q, s.Addr())
	if err != nil {
		t.Fatalf("%s query %s %s: %v", network, dns.TypeToString[qtype], name, err)
	}
	return r
}

func TestNames(t *testing.T) {
	n := Names{Zone: "rehearse.internal", Cluster: "smoke", ID: "k3j9x0aa1b2c"}
	for got, want := range map[string]string{
		n.Writer():           "smoke.cluster-k3j9x0aa1b2c.rehearse.internal",
		n.Reader():           "smoke.cluster-ro-k3j9x0aa1b2c.rehearse.internal",
		n.Instance("node2"):  "node2.k3j9x0aa1b2c.rehearse.internal",
		n.Proxy("writer"):    "smoke.proxy-k3j9x0aa1b2c.rehearse.internal",
		n.Proxy("reader"):    "smoke-ro.endpoint.proxy-k3j9x0aa1b2c.rehearse.internal",
		Label("Cut over_1!"): "cut-over-1",
		Label("__"):          DefaultCluster,
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	a, b := NewNames("x"), NewNames("x")
	if a.ID == b.ID || len(a.ID) != idLength || a.withDefaults().validate() != nil {
		t.Errorf("NewNames IDs %q and %q: want two different valid %d-character IDs", a.ID, b.ID, idLength)
	}
}

// The writer endpoint answers a CNAME to the writer instance and its A record, with
// the configured TTL, over UDP and TCP, whatever the case of the question.
func TestWriterEndpoint(t *testing.T) {
	s, _ := startServer(t, 7*time.Second)
	n := s.Names()
	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, s, network, strings.ToUpper(n.Writer()), dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 2 {
			t.Fatalf("%s: %v", network, r)
		}
		cname, ok := r.Answer[0].(*dns.CNAME)
		if !ok || cname.Target != n.Instance("node1")+"." || cname.Hdr.Ttl != 7 {
			t.Errorf("%s: first answer %v, want a CNAME to node1 with TTL 7", network, r.Answer[0])
		}
		a, ok := r.Answer[1].(*dns.A)
		if !ok || a.Hdr.Name != n.Instance("node1")+"." || !a.A.Equal(ip1.AsSlice()) || a.Hdr.Ttl != 7 {
			t.Errorf("%s: second answer %v, want node1's A %s with TTL 7", network, r.Answer[1], ip1)
		}
	}
	// An instance name answers its own A record.
	r := exchange(t, s, "udp", n.Instance("node3"), dns.TypeA)
	if len(r.Answer) != 1 || !r.Answer[0].(*dns.A).A.Equal(ip3.AsSlice()) {
		t.Errorf("instance node3: %v", r.Answer)
	}
	// EDNS is answered with EDNS.
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(n.Writer()), dns.TypeA)
	q.SetEdns0(1232, false)
	if r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(q, s.Addr()); err != nil || r.IsEdns0() == nil || len(r.Answer) != 2 {
		t.Errorf("an EDNS query: %v, %v; want the answer with an OPT record", r, err)
	}
	// A CNAME query answers the CNAME alone.
	if r := exchange(t, s, "udp", n.Writer(), dns.TypeCNAME); len(r.Answer) != 1 {
		t.Errorf("CNAME query: %v", r.Answer)
	}
}

// The reader endpoint's CNAME rotates over its targets with each A query; AAAA
// queries, which resolvers send alongside, do not move it on.
func TestReaderRoundRobin(t *testing.T) {
	s, _ := startServer(t, 0)
	n := s.Names()
	var got []string
	for range 4 {
		exchange(t, s, "udp", n.Reader(), dns.TypeAAAA)
		a, err := Lookup(t.Context(), s.Addr(), n.Reader(), "udp")
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Addrs) != 1 || a.TTL != DefaultTTL {
			t.Fatalf("answer %+v: want one address with the default TTL", a)
		}
		got = append(got, a.CNAME)
	}
	n2, n3 := n.Instance("node2"), n.Instance("node3")
	if want := []string{n2, n3, n2, n3}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("reader endpoint answered %v, want %v", got, want)
	}
}

func TestNegativeAnswers(t *testing.T) {
	s, _ := startServer(t, 0)
	n := s.Names()
	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, s, network, "nosuch."+n.Zone, dns.TypeA)
		if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].(*dns.SOA).Minttl != 5 {
			t.Errorf("%s: unknown name: %v; want NXDOMAIN with the SOA (minimum 5)", network, r)
		}
		// AAAA: NODATA, for a host and after an alias's CNAME.
		r = exchange(t, s, network, n.Instance("node1"), dns.TypeAAAA)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
			t.Errorf("%s: AAAA of an instance: %v; want NODATA", network, r)
		}
		r = exchange(t, s, network, n.Writer(), dns.TypeAAAA)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeCNAME || len(r.Ns) != 1 {
			t.Errorf("%s: AAAA of the writer endpoint: %v; want its CNAME and no address", network, r)
		}
	}
	if r := exchange(t, s, "udp", "example.com", dns.TypeA); r.Rcode != dns.RcodeRefused {
		t.Errorf("a name outside the zone: %v; want REFUSED (no recursion)", r)
	}
	s.Remove(n.Instance("node1"))
	if r := exchange(t, s, "udp", n.Writer(), dns.TypeA); r.Rcode != dns.RcodeNameError || len(r.Answer) != 1 {
		t.Errorf("an alias to a removed host: %v; want its CNAME and NXDOMAIN", r)
	}
	if r := exchange(t, s, "udp", n.Zone, dns.TypeSOA); len(r.Answer) != 1 {
		t.Errorf("the zone's SOA: %v", r)
	}
}

// Changed records are answered at once; NewResolver resolves through the server.
func TestChangesAndResolver(t *testing.T) {
	s, log := startServer(t, 0)
	n := s.Names()
	r := NewResolver(s.Addr())
	addrs, err := r.LookupHost(t.Context(), n.Writer())
	if err != nil || len(addrs) != 1 || addrs[0] != ip1.String() {
		t.Fatalf("LookupHost(writer) = %v, %v; want [%s]", addrs, err, ip1)
	}
	if err := s.SetAlias(n.Writer(), n.Instance("node2")); err != nil {
		t.Fatal(err)
	}
	if addrs, err = r.LookupHost(t.Context(), n.Writer()); err != nil || addrs[0] != ip2.String() {
		t.Errorf("after the change LookupHost(writer) = %v, %v; want [%s]", addrs, err, ip2)
	}
	if _, err := r.LookupHost(t.Context(), "nosuch."+n.Zone); err == nil {
		t.Error("an unknown name resolved")
	}
	if got := s.HostsAt(ip2); len(got) != 1 || got[0] != n.Instance("node2") {
		t.Errorf("HostsAt(%s) = %v", ip2, got)
	}
	if err := s.SetHost("outside.example.com", ip1); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("SetHost outside the zone = %v, want ErrInvalidConfig", err)
	}
	if !strings.Contains(log.String(), "CNAME "+n.Instance("node2")) {
		t.Errorf("the log does not show the change:\n%s", log)
	}
}

func TestAddrInUse(t *testing.T) {
	s, _ := startServer(t, 0)
	_, err := Start(t.Context(), Config{Addr: s.Addr()})
	if !errors.Is(err, ErrAddrInUse) || !strings.Contains(err.Error(), s.Addr()) {
		t.Errorf("Start on a taken address = %v; want ErrAddrInUse naming %s", err, s.Addr())
	}
	for _, addr := range []string{"192.0.2.1:53", "localhost:53", "127.0.0.1"} {
		if _, err := Start(t.Context(), Config{Addr: addr}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Start(%q) = %v; want ErrInvalidConfig (loopback IP and port only)", addr, err)
		}
	}
}

func TestClose(t *testing.T) {
	s, err := Start(t.Context(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.SetHost(s.Names().Instance("x"), ip1); !errors.Is(err, ErrClosed) {
		t.Errorf("SetHost after Close = %v, want ErrClosed", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := Lookup(ctx, s.Addr(), s.Names().Writer(), "tcp"); err == nil {
		t.Error("a closed server answered")
	}
}

// BenchmarkQueryUDP measures the server's throughput for the writer endpoint's A
// query (CNAME and A) from parallel miekg clients over UDP on loopback, each with
// its own socket and one query in flight; it reports queries/s. A query that times
// out (UDP may drop) is counted in timeouts/op, a wrong answer fails.
func BenchmarkQueryUDP(b *testing.B) {
	s, _ := startServer(b, 0)
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(s.Names().Writer()), dns.TypeA)
	b.SetParallelism(8)
	var mu sync.Mutex
	var failed error
	var timeouts int
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		conn, err := c.Dial(s.Addr())
		if err != nil {
			mu.Lock()
			failed = err
			mu.Unlock()
			return
		}
		defer conn.Close()
		for pb.Next() {
			m := q.Copy()
			m.Id = dns.Id()
			r, _, err := c.ExchangeWithConn(m, conn)
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				mu.Lock()
				timeouts++
				mu.Unlock()
			case err != nil:
				mu.Lock()
				failed = err
				mu.Unlock()
				return
			case len(r.Answer) != 2:
				mu.Lock()
				failed = fmt.Errorf("answer %v: want a CNAME and an A", r.Answer)
				mu.Unlock()
				return
			}
		}
	})
	if failed != nil {
		b.Fatal(failed)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "queries/s")
	b.ReportMetric(float64(timeouts)/float64(b.N), "timeouts/op")
}
