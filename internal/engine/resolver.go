package engine

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// resolver is one application instance's DNS client, as its runtime would resolve
// the endpoint names: through the cluster's DNS server, caching each answer as the
// client's dns_cache_ttl says (the record's TTL, a fixed duration, or forever).
// Names it cannot resolve through the server (plain IP addresses, other hosts) go
// to the system resolver.
type resolver struct {
	server string
	policy string        // scenarios.DNSCacheRecord, scenarios.DNSCacheForever or "duration"
	fixed  time.Duration // the cache duration of the "duration" policy
	now    func() time.Time
	client *dns.Client

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	addrs   []string
	expires time.Time // zero: never
}

// answer is a name's resolution: its addresses, the name the CNAME chain ended at,
// and the shortest TTL along the chain.
type answer struct {
	addrs []string
	canon string
	ttl   time.Duration
}

// newResolver returns a resolver through server (host:port) with cache policy ttl (a
// client.dns_cache_ttl value).
func newResolver(server, ttl string) (*resolver, error) {
	d, policy, err := scenarios.ParseDNSCacheTTL(ttl)
	if err != nil {
		return nil, err
	}
	return &resolver{server: server, policy: policy, fixed: d, now: time.Now,
		client: &dns.Client{Net: "udp", Timeout: 2 * time.Second}, cache: map[string]cached{}}, nil
}

// LookupHost is pgx's LookupFunc.
func (r *resolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	if net.ParseIP(host) != nil {
		return []string{host}, nil
	}
	key := strings.ToLower(dns.Fqdn(host))
	r.mu.Lock()
	if c, ok := r.cache[key]; ok && (c.expires.IsZero() || r.now().Before(c.expires)) {
		r.mu.Unlock()
		return c.addrs, nil
	}
	r.mu.Unlock()
	a, err := r.query(ctx, key)
	if err != nil {
		return nil, err
	}
	addrs, ttl := a.addrs, a.ttl
	var exp time.Time
	switch r.policy {
	case scenarios.DNSCacheForever:
	case scenarios.DNSCacheRecord:
		exp = r.now().Add(ttl)
	default:
		exp = r.now().Add(r.fixed)
	}
	if r.policy == scenarios.DNSCacheForever || exp.After(r.now()) {
		r.mu.Lock()
		r.cache[key] = cached{addrs: addrs, expires: exp}
		r.mu.Unlock()
	}
	return addrs, nil
}

// query asks the server for name's A records, uncached, following a CNAME chain.
func (r *resolver) query(ctx context.Context, name string) (answer, error) {
	name = dns.Fqdn(strings.ToLower(name))
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	in, _, err := r.client.ExchangeContext(ctx, m, r.server)
	if err != nil {
		return answer{}, fmt.Errorf("resolving %s through %s: %w", strings.TrimSuffix(name, "."), r.server, err)
	}
	if in.Rcode != dns.RcodeSuccess {
		return answer{}, &net.DNSError{Err: dns.RcodeToString[in.Rcode], Name: strings.TrimSuffix(name, "."), Server: r.server, IsNotFound: in.Rcode == dns.RcodeNameError}
	}
	a := answer{canon: name, ttl: -1}
	for _, rr := range in.Answer {
		h := rr.Header()
		if t := time.Duration(h.Ttl) * time.Second; a.ttl < 0 || t < a.ttl {
			a.ttl = t
		}
		switch v := rr.(type) {
		case *dns.A:
			a.addrs = append(a.addrs, v.A.String())
		case *dns.CNAME:
			a.canon = strings.ToLower(v.Target)
		}
	}
	if len(a.addrs) == 0 {
		return answer{}, &net.DNSError{Err: "no address", Name: strings.TrimSuffix(name, "."), Server: r.server, IsNotFound: true}
	}
	a.ttl = max(a.ttl, 0)
	return a, nil
}
