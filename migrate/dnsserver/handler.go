package dnsserver

import (
	"net"

	"github.com/miekg/dns"
)

// ServeDNS implements dns.Handler: it answers one query from the records (see the
// package doc). It never blocks on anything but the reply's write.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	switch {
	case r.Opcode != dns.OpcodeQuery:
		m.SetRcode(r, dns.RcodeNotImplemented)
	case len(r.Question) != 1:
		m.SetRcodeFormatError(r)
	default:
		m.SetReply(r)
		s.answer(m, r.Question[0])
	}
	if opt := r.IsEdns0(); opt != nil {
		// Answer EDNS with EDNS (RFC 6891), as dig and Go's resolver ask it.
		m.SetEdns0(max(opt.UDPSize(), dns.MinMsgSize), false)
	}
	_ = w.WriteMsg(m)
}

// answer fills m for question q.
func (s *Server) answer(m *dns.Msg, q dns.Question) {
	name := lower(q.Name)
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY || !dns.IsSubDomain(s.zone, name) {
		// Not ours, and the server does not recurse.
		m.Rcode = dns.RcodeRefused
		return
	}
	m.Authoritative = true
	s.mu.RLock()
	defer s.mu.RUnlock()
	if name == s.zone {
		if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, s.soa())
			return
		}
		m.Ns = append(m.Ns, s.soa()) // NODATA
		return
	}
	if a, ok := s.aliases[name]; ok {
		target := a.pick(q.Qtype)
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: s.header(name, dns.TypeCNAME), Target: target})
		if q.Qtype == dns.TypeCNAME {
			return
		}
		// Chase the CNAME within the zone, as an authoritative server does, so one
		// answer holds the whole chain (dig shows the CNAME and the A).
		name = target
		if _, ok := s.hosts[name]; !ok {
			if _, alias := s.aliases[name]; !alias {
				m.Rcode = dns.RcodeNameError // the chain ends in a name that does not exist
				m.Ns = append(m.Ns, s.soa())
				return
			}
			// Aliases of aliases are not made by this package's users; answer the
			// first link and let the client follow it.
			return
		}
	}
	ip, ok := s.hosts[name]
	if !ok {
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, s.soa())
		return
	}
	switch q.Qtype {
	case dns.TypeA, dns.TypeANY:
		if s.answerAddr != nil {
			ip = s.answerAddr(ip)
		}
		m.Answer = append(m.Answer, &dns.A{Hdr: s.header(name, dns.TypeA), A: net.IP(ip.AsSlice())})
	default:
		// NODATA: the name exists, without a record of this type (AAAA: the cluster
		// is IPv4 only, as the loopback addresses are).
		m.Ns = append(m.Ns, s.soa())
	}
}

// pick returns the alias's target for a query of type qtype. A, ANY and CNAME
// queries move the rotation on; others (AAAA, which resolvers send alongside A)
// answer the current target without moving it, else a client asking A and AAAA for
// each connection would only ever see every other target in its A answers.
func (a *alias) pick(qtype uint16) string {
	n := uint64(len(a.targets))
	if n == 1 {
		return a.targets[0]
	}
	switch qtype {
	case dns.TypeA, dns.TypeANY, dns.TypeCNAME:
		return a.targets[(a.next.Add(1)-1)%n]
	default:
		return a.targets[a.next.Load()%n]
	}
}

func (s *Server) header(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: s.ttl}
}

// soa is the zone's SOA record; s.mu must be held. Its minimum, the TTL of negative
// answers (RFC 2308), is the records' TTL, so a name that appears is seen as soon as
// a positive answer would be.
func (s *Server) soa() dns.RR {
	return &dns.SOA{
		Hdr:     s.header(s.zone, dns.TypeSOA),
		Ns:      "ns." + s.zone,
		Mbox:    "hostmaster." + s.zone,
		Serial:  s.serial,
		Refresh: 3600, Retry: 600, Expire: 86400,
		Minttl: s.ttl,
	}
}

// lower returns name in lower case without allocating when it already is.
func lower(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' {
			b := []byte(name)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return name
}
