package bluegreen

import (
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
)

type testNode struct{ id, ip string }

func TestVersionCheck(t *testing.T) {
	const newer = "runs %s; %s applies to Aurora"
	tests := []struct {
		want, have string
		ok         bool
		detail     string
	}{
		{"", "15.8", true, "green runs PostgreSQL 15.8, as blue"},
		{"15.8", "15.8", true, "green runs PostgreSQL 15.8, as blue"},
		{"16.4", "15.8", true, "runs 15.8; 16.4 applies to Aurora"},
		{"14.9", "15.8", false, "green.engine_version 14.9 is older than blue's 15.8: a blue/green deployment cannot downgrade"},
	}
	for _, tt := range tests {
		ck := VersionCheck(tt.want, tt.have, newer)
		if ck.OK != tt.ok || ck.Detail != tt.detail {
			t.Errorf("VersionCheck(%q, %q) = %v %q, want %v %q", tt.want, tt.have, ck.OK, ck.Detail, tt.ok, tt.detail)
		}
	}
}

func TestWant(t *testing.T) {
	d := New[testNode]()
	if !strings.HasPrefix(d.ID, "bgd-") || len(d.ID) != 20 || len(d.Suffix) != 6 {
		t.Errorf("ID %q suffix %q", d.ID, d.Suffix)
	}
	tests := []struct {
		d        *Deployment[testNode]
		switched bool
		err      string
	}{
		{nil, false, "local: there is no blue/green deployment"},
		{d, true, "local: blue/green deployment " + d.ID + " has not switched over"},
		{d, false, ""},
		{&Deployment[testNode]{ID: "bgd-x", Switched: true}, false, "local: blue/green deployment bgd-x has already switched over"},
		{&Deployment[testNode]{ID: "bgd-x", Switched: true}, true, ""},
	}
	for i, tt := range tests {
		got, err := Want("local", tt.d, tt.switched)
		switch {
		case tt.err == "" && (err != nil || got != tt.d):
			t.Errorf("%d: Want = %v, %v", i, got, err)
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("%d: Want error %v, want %q", i, err, tt.err)
		}
	}
}

// A switchover's names on a real DNS server, asked over UDP: green's instances
// take blue's names, blue's get -old1, the cluster endpoints lead to green and the
// -old1 ones to the old blue, and green's own names go.
func TestSwitchoverNames(t *testing.T) {
	dns, err := dnsserver.Start(t.Context(), dnsserver.Config{Names: dnsserver.NewNames("shop"), Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	inst := dns.Names().Instance
	labels := map[string]string{}
	label := func(id string) string {
		if l, ok := labels[id]; ok {
			return l
		}
		return id
	}
	addrs := map[string]netip.Addr{}
	name := func(n testNode) {
		addrs[n.id] = netip.MustParseAddr(n.ip)
		if err := dns.SetHost(inst(label(n.id)), addrs[n.id]); err != nil {
			t.Fatal(err)
		}
	}
	// Blue: a writer and a reader, behind the cluster endpoints (as the dns
	// endpoint names them).
	cluster := Members[testNode]{}
	for _, n := range []testNode{{"db-1", "127.0.0.2"}, {"db-2", "127.0.0.3"}} {
		cluster.Add(n.id, n)
		name(n)
	}
	cluster.Writer = "db-1"
	must(t, dns.SetAlias(dns.Names().Writer(), inst("db-1")))
	must(t, dns.SetAlias(dns.Names().Reader(), inst("db-2")))

	d := New[testNode]()
	for i, blue := range []string{"db-1", "db-2"} {
		n := testNode{d.GreenName(blue), "127.0.0." + string(rune('4'+i))}
		d.Other.Add(n.id, n)
		name(n)
	}
	d.Other.Writer = d.GreenName("db-1")
	d.NameGreen(dns, io.Discard, d.Other.Env(label))
	greenNames := ClusterNames(dns, "-green-"+d.Suffix)
	resolves(t, dns, greenNames.Writer(), "127.0.0.4")
	resolves(t, dns, greenNames.Reader(), "127.0.0.5")

	oldBlue := d.Swap(&cluster.Nodes, &cluster.Order, &cluster.Writer)
	if !d.Switched || oldBlue.Writer != "db-1" || cluster.Writer != d.GreenName("db-1") || !slices.Equal(d.Other.Order, []string{"db-1", "db-2"}) {
		t.Fatalf("after Swap: cluster %+v, other %+v, switched %v", cluster, d.Other, d.Switched)
	}
	moves := d.Moves(cluster.Order, label)
	for _, m := range moves {
		labels[m.ID] = m.To
	}
	renamed := d.Rename(dns, io.Discard, moves, func(id string) netip.Addr { return addrs[id] }, cluster.Env(label), d.Other.Env(label))
	old := ClusterNames(dns, "-old1")
	want := map[string]string{
		"db-1": "db-1-old1", "db-2": "db-2-old1",
		d.GreenName("db-1"): "db-1", d.GreenName("db-2"): "db-2",
		dns.Names().Writer(): dns.Names().Writer() + " (leads to green); the old blue's: " + old.Writer(),
	}
	if !maps.Equal(renamed, want) {
		t.Errorf("renamed %v, want %v", renamed, want)
	}
	for name, ip := range map[string]string{
		inst("db-1"): "127.0.0.4", inst("db-2"): "127.0.0.5", inst("db-1-old1"): "127.0.0.2", inst("db-2-old1"): "127.0.0.3",
		dns.Names().Writer(): "127.0.0.4", dns.Names().Reader(): "127.0.0.5",
		old.Writer(): "127.0.0.2", old.Reader(): "127.0.0.3",
	} {
		resolves(t, dns, name, ip)
	}
	for _, gone := range []string{inst(d.GreenName("db-1")), inst(d.GreenName("db-2")), greenNames.Writer(), greenNames.Reader()} {
		if _, err := dnsserver.Lookup(t.Context(), dns.Addr(), gone, "udp"); err == nil || !strings.Contains(err.Error(), "NXDOMAIN") {
			t.Errorf("%s after the switchover: %v, want NXDOMAIN", gone, err)
		}
	}
	if !slices.Equal(d.Names, []string{old.Writer(), old.Reader()}) {
		t.Errorf("the deployment owns %v", d.Names)
	}
	d.RemoveNames(dns)
	if _, err := dnsserver.Lookup(t.Context(), dns.Addr(), old.Writer(), "udp"); err == nil {
		t.Errorf("%s answers after RemoveNames", old.Writer())
	}
}

func resolves(t *testing.T, dns *dnsserver.Server, name, ip string) {
	t.Helper()
	a, err := dnsserver.Lookup(t.Context(), dns.Addr(), name, "udp")
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if len(a.Addrs) != 1 || a.Addrs[0].String() != ip {
		t.Errorf("%s resolves to %v, want %s", name, a.Addrs, ip)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
