package dnsserver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// MapAnswers changes the addresses A answers carry (a fault proxy in front of each
// node), not the records: HostsAt still finds a host by its own address, and nil
// undoes it.
func TestMapAnswers(t *testing.T) {
	s, _ := startServer(t, time.Second)
	n := s.Names()
	proxy := netip.MustParseAddr("127.77.1.2")
	s.MapAnswers(func(ip netip.Addr) netip.Addr {
		if ip == ip1 {
			return proxy
		}
		return ip
	})
	if got := s.HostsAt(ip1); len(got) != 1 || got[0] != n.Instance("node1") {
		t.Errorf("HostsAt(%s) = %v: the records must keep the nodes' own addresses", ip1, got)
	}
	tests := []struct {
		name   string
		mapped bool
		want   netip.Addr
	}{
		{n.Writer(), true, proxy},
		{n.Instance("node1"), true, proxy},
		{n.Instance("node2"), true, ip2},
		{n.Instance("node1"), false, ip1},
	}
	for _, tt := range tests {
		if !tt.mapped {
			s.MapAnswers(nil)
		}
		r := exchange(t, s, "udp", tt.name, dns.TypeA)
		a, ok := r.Answer[len(r.Answer)-1].(*dns.A)
		if !ok || !a.A.Equal(tt.want.AsSlice()) {
			t.Errorf("%s (mapped %v): %v, want A %s", tt.name, tt.mapped, r.Answer, tt.want)
		}
	}
}
