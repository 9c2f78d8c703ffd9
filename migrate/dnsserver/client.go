package dnsserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// queryTimeout bounds one query of Lookup when ctx has no earlier deadline.
const queryTimeout = 2 * time.Second

// Answer is what a server answered to an A query.
type Answer struct {
	// CNAME is the name the queried name is an alias of, without the trailing dot;
	// empty when it is a host.
	CNAME string
	// Addrs are the IPv4 addresses of the A records.
	Addrs []netip.Addr
	// TTL is the smallest TTL of the answer's records.
	TTL time.Duration
}

// Lookup asks server (host:port) for the A records of name, over network ("udp" or
// "tcp"; empty means udp), and returns the answer. NXDOMAIN and other failures are
// errors naming the response code.
func Lookup(ctx context.Context, server, name, network string) (Answer, error) {
	if network == "" {
		network = "udp"
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := &dns.Client{Net: network}
	r, _, err := c.ExchangeContext(ctx, q, server)
	if err != nil {
		return Answer{}, fmt.Errorf("dnsserver: ask %s for %s over %s: %w", server, name, network, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return Answer{}, fmt.Errorf("dnsserver: %s answered %s for %s", server, dns.RcodeToString[r.Rcode], name)
	}
	var a Answer
	for i, rr := range r.Answer {
		if ttl := time.Duration(rr.Header().Ttl) * time.Second; i == 0 || ttl < a.TTL {
			a.TTL = ttl
		}
		switch rr := rr.(type) {
		case *dns.CNAME:
			if a.CNAME == "" {
				a.CNAME = strings.TrimSuffix(rr.Target, ".")
			}
		case *dns.A:
			if ip, ok := netip.AddrFromSlice(rr.A.To4()); ok {
				a.Addrs = append(a.Addrs, ip)
			}
		}
	}
	return a, nil
}

// NewResolver returns a resolver that asks server (host:port) and nothing else: Go's
// own resolver, with its connections to the name servers of /etc/resolv.conf
// replaced by connections to server. It consults /etc/hosts first, as Go's resolver
// always does, and caches nothing: every lookup is a query. Use it as a dialer's
// Resolver, or its LookupHost as pgx's LookupFunc.
func NewResolver(server string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		},
	}
}
