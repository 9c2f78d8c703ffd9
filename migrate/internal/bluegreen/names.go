package bluegreen

import (
	"fmt"
	"io"
	"net/netip"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
)

// ClusterNames are the cluster endpoint names of an environment labelled with
// suffix (-green-<suffix>, -old1) after the cluster's own.
func ClusterNames(dns *dnsserver.Server, suffix string) dnsserver.Names {
	n := dns.Names()
	n.Cluster += suffix
	return n
}

// readerTargets are the instance names the reader endpoint of env leads to: its
// readers', or its writer's when it has none, as Aurora's does.
func readerTargets(dns *dnsserver.Server, env Env) []string {
	inst := dns.Names().Instance
	if len(env.Readers) == 0 {
		return []string{inst(env.Writer)}
	}
	out := make([]string, 0, len(env.Readers))
	for _, r := range env.Readers {
		out = append(out, inst(r))
	}
	return out
}

// Alias points the writer and reader endpoint names of names at env's instances,
// as names the deployment owns (removed with it). A name that cannot be set is a
// warning on log.
func (d *Deployment[N]) Alias(dns *dnsserver.Server, log io.Writer, names dnsserver.Names, env Env) {
	for _, a := range []struct {
		name    string
		targets []string
	}{{names.Writer(), []string{dns.Names().Instance(env.Writer)}}, {names.Reader(), readerTargets(dns, env)}} {
		if err := dns.SetAlias(a.name, a.targets...); err != nil {
			fmt.Fprintf(log, "warning: blue/green name %s: %v\n", a.name, err)
			continue
		}
		d.Names = append(d.Names, a.name)
	}
}

// NameGreen gives green cluster endpoint names of its own, as AWS's green cluster
// has: <cluster>-green-<suffix>.cluster-... to its writer, and the -ro- one.
// green is green's instance labels.
func (d *Deployment[N]) NameGreen(dns *dnsserver.Server, log io.Writer, green Env) {
	if dns == nil {
		return
	}
	d.Alias(dns, log, ClusterNames(dns, "-green-"+d.Suffix), green)
}

// RemoveNames removes the names the deployment added.
func (d *Deployment[N]) RemoveNames(dns *dnsserver.Server) {
	if dns == nil {
		return
	}
	for _, name := range d.Names {
		dns.Remove(name)
	}
	d.Names = nil
}

// Rename is the DNS side of the switchover's renames (Moves): every new instance
// name first (host gives a node's address by ID), then the cluster endpoint names,
// where the endpoints put them, to green's instances (green) by their new names,
// then the names nobody has any more and green's own cluster names go, and the
// -old1 cluster names lead to the old blue (oldBlue). No name in use is ever
// without an address, and no answer a dangling alias. It returns old name -> new
// name, and what the cluster's writer name leads to now.
func (d *Deployment[N]) Rename(dns *dnsserver.Server, log io.Writer, moves []Move, host func(id string) netip.Addr, green, oldBlue Env) map[string]string {
	renamed := map[string]string{}
	targets := map[string]bool{}
	for _, m := range moves {
		renamed[m.From] = m.To
		targets[m.To] = true
	}
	if dns == nil {
		return renamed
	}
	inst := dns.Names().Instance
	for _, m := range moves {
		if err := dns.SetHost(inst(m.To), host(m.ID)); err != nil {
			fmt.Fprintf(log, "warning: rename %s to %s: %v\n", m.From, m.To, err)
		}
	}
	cluster := dns.Names()
	if len(dns.Alias(cluster.Writer())) > 0 {
		_ = dns.SetAlias(cluster.Writer(), inst(green.Writer))
	}
	if len(dns.Alias(cluster.Reader())) > 0 {
		_ = dns.SetAlias(cluster.Reader(), readerTargets(dns, green)...)
	}
	for _, m := range moves {
		if !targets[m.From] {
			dns.Remove(inst(m.From))
		}
	}
	d.RemoveNames(dns)
	old := ClusterNames(dns, migrate.OldSuffix)
	d.Alias(dns, log, old, oldBlue)
	renamed[cluster.Writer()] = cluster.Writer() + " (leads to green); the old blue's: " + old.Writer()
	return renamed
}
