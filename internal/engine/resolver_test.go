package engine

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeZone is a small real DNS server on loopback: the writer endpoint is a CNAME to
// an instance name whose A record the test can change.
type fakeZone struct {
	mu      sync.Mutex
	writer  string // the instance's address
	queries atomic.Int64
	addr    string
}

func startZone(t *testing.T, ttl uint32) *fakeZone {
	t.Helper()
	z := &fakeZone{writer: "127.0.0.2"}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z.addr = pc.LocalAddr().String()
	mux := dns.NewServeMux()
	mux.HandleFunc("rehearse.test.", func(w dns.ResponseWriter, q *dns.Msg) {
		z.queries.Add(1)
		m := new(dns.Msg)
		m.SetReply(q)
		name := q.Question[0].Name
		z.mu.Lock()
		ip := z.writer
		z.mu.Unlock()
		switch name {
		case "app.cluster-x.rehearse.test.":
			m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl}, Target: "node.x.rehearse.test."},
				&dns.A{Hdr: dns.RR_Header{Name: "node.x.rehearse.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.ParseIP(ip)})
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return z
}

func (z *fakeZone) flip(ip string) {
	z.mu.Lock()
	z.writer = ip
	z.mu.Unlock()
}

// The resolver caches as the client's dns_cache_ttl says: the record's TTL, a
// fixed duration, never (0s), or forever.
func TestResolverCachePolicies(t *testing.T) {
	tests := []struct {
		policy string
		// after the record flips: what the resolver answers 3 s later and 10 s later
		at3, at10 string
		queries   int64 // queries made for the three lookups
	}{
		{"record", "127.0.0.2", "127.0.0.3", 2},
		{"0s", "127.0.0.3", "127.0.0.3", 3},
		{"2s", "127.0.0.3", "127.0.0.3", 3},
		{"30s", "127.0.0.2", "127.0.0.2", 1},
		{"forever", "127.0.0.2", "127.0.0.2", 1},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			z := startZone(t, 5)
			r, err := newResolver(z.addr, tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Unix(1000, 0)
			r.now = func() time.Time { return now }
			lookup := func() string {
				t.Helper()
				addrs, err := r.LookupHost(t.Context(), "app.cluster-x.rehearse.test")
				if err != nil || len(addrs) != 1 {
					t.Fatalf("lookup: %v %v", addrs, err)
				}
				return addrs[0]
			}
			if got := lookup(); got != "127.0.0.2" {
				t.Fatalf("first answer %s", got)
			}
			z.flip("127.0.0.3")
			now = now.Add(3 * time.Second)
			if got := lookup(); got != tt.at3 {
				t.Errorf("3 s after: %s, want %s", got, tt.at3)
			}
			now = now.Add(7 * time.Second)
			if got := lookup(); got != tt.at10 {
				t.Errorf("10 s after: %s, want %s", got, tt.at10)
			}
			if q := z.queries.Load(); q != tt.queries {
				t.Errorf("%d queries, want %d", q, tt.queries)
			}
		})
	}
}

func TestResolverErrors(t *testing.T) {
	z := startZone(t, 5)
	r, err := newResolver(z.addr, "record")
	if err != nil {
		t.Fatal(err)
	}
	if addrs, err := r.LookupHost(t.Context(), "127.0.0.9"); err != nil || addrs[0] != "127.0.0.9" {
		t.Errorf("an IP address: %v %v", addrs, err)
	}
	var dnsErr *net.DNSError
	if _, err := r.LookupHost(t.Context(), "nosuch.rehearse.test"); err == nil || !asDNSError(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("an unknown name: %v", err)
	}
	if _, err := newResolver(z.addr, "sometimes"); err == nil {
		t.Error("a bad policy was accepted")
	}
}

func asDNSError(err error, target **net.DNSError) bool {
	e, ok := err.(*net.DNSError)
	if ok {
		*target = e
	}
	return ok
}
