package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
)

// confirmPoll paces Release's queries for the flipped record.
const confirmPoll = 10 * time.Millisecond

// DNS is the dns endpoint mode: the cluster (writer) endpoint and the reader endpoint
// are records on the cluster's DNS server, as on Aurora. The writer endpoint is a
// CNAME to the writer's instance name; the reader endpoint a CNAME to one reader's
// instance name per query, in turn (the writer's when there is no reader, and while
// write forwarding is on); each instance name answers the node's own address, on the
// port all nodes share. Clients connect to the nodes themselves: there is nothing in
// between to drop, hold or redirect a connection.
type DNS struct {
	rec         records
	port        string
	propagation time.Duration
	after       func(time.Duration) <-chan time.Time
	log         io.Writer

	flipMu sync.Mutex // serialises Release's flips (each waits out the propagation delay)

	mu         sync.Mutex
	current    string   // the writer node the records name
	next       string   // the writer the records flip to after the delay ("" when none is pending)
	readers    []string // the reader endpoint's members
	forwarding bool
	closed     bool
}

// NewDNS sets up the dns mode's records on cfg.DNS: the writer endpoint names
// cfg.Writer's instance, the reader endpoint cfg.Readers' (the writer's when there
// are none). The nodes' instance names must already be on the server (the cluster
// puts them there) and the nodes share one port. It writes the server's address and
// the endpoint names to cfg.Log, for dig. cfg.Propagation times Release's flip.
func NewDNS(cfg Config, opts ...Option) (*DNS, error) {
	cfg.Mode = ModeDNS
	cfg = cfg.withDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	_, port, _ := net.SplitHostPort(cfg.Writer)
	d := &DNS{
		rec: records{srv: cfg.DNS, names: cfg.DNS.Names()}, port: port,
		propagation: cfg.Propagation, after: applyOptions(opts).after, log: cfg.Log,
		current: cfg.Writer, readers: slices.Clone(cfg.Readers),
	}
	if err := d.checkPorts(append([]string{cfg.Writer}, cfg.Readers...)); err != nil {
		return nil, err
	}
	d.mu.Lock()
	err := d.apply()
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	n := d.rec.names
	fmt.Fprintf(d.log, "dns endpoints on the DNS server %s (ttl %v, records flip %v after a redirect):\n"+
		"  writer endpoint %s -> %s\n  reader endpoint %s -> %s\n  try: dig @%s -p %s %s\n",
		d.rec.srv.Addr(), d.rec.srv.TTL(), d.propagation,
		n.Writer(), strings.Join(d.rec.srv.Alias(n.Writer()), " | "),
		n.Reader(), strings.Join(d.rec.srv.Alias(n.Reader()), " | "),
		hostOf(d.rec.srv.Addr()), portOf(d.rec.srv.Addr()), n.Writer())
	return d, nil
}

// Name returns ModeDNS.
func (d *DNS) Name() string { return ModeDNS }

// ExecMode returns pgx's default exec mode: connections reach PostgreSQL directly.
func (d *DNS) ExecMode() pgx.QueryExecMode { return ExecMode(ModeDNS) }

// WriterAddr returns the writer endpoint's name and the nodes' port.
func (d *DNS) WriterAddr() string { return net.JoinHostPort(d.rec.names.Writer(), d.port) }

// ReaderAddr returns the reader endpoint's name and the nodes' port.
func (d *DNS) ReaderAddr() string { return net.JoinHostPort(d.rec.names.Reader(), d.port) }

// Server returns the DNS server the records are on.
func (d *DNS) Server() *dnsserver.Server { return d.rec.srv }

// Writer returns the writer node the writer endpoint's record names now (the old
// writer while a flip waits out its propagation delay).
func (d *DNS) Writer() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current
}

// Hold does nothing in the dns mode: DNS cannot hold clients back. The old writer's
// connections break when it stops, as on Aurora, where it restarts.
func (d *DNS) Hold(ctx context.Context) error { return nil }

// Release makes writer the writer and readers the reader endpoint's members. When
// the writer changes, the records keep naming the old writer for the propagation
// delay; then both flip, and Release returns once the server answers the writer
// endpoint with writer's instance. Clients that cached the old answer keep reaching
// the old node until their cache expires. When ctx ends during the delay the records
// flip at once and ctx's error is returned. When the writer is unchanged the reader
// endpoint changes at once.
func (d *DNS) Release(ctx context.Context, writer string, readers []string) error {
	if err := d.checkPorts(append([]string{writer}, readers...)); err != nil {
		return fmt.Errorf("endpoint: dns release: %w", err)
	}
	d.flipMu.Lock()
	defer d.flipMu.Unlock()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("endpoint: dns release: %w", ErrClosed)
	}
	old := d.current
	d.readers = slices.Clone(readers)
	if old == writer {
		err := d.apply()
		d.mu.Unlock()
		return err
	}
	d.next = writer
	d.mu.Unlock()
	fmt.Fprintf(d.log, "dns: the writer endpoint flips from %s to %s in %v (ttl %v)\n", old, writer, d.propagation, d.rec.srv.TTL())

	var err error
	if d.propagation > 0 {
		select {
		case <-d.after(d.propagation):
		case <-ctx.Done():
			err = fmt.Errorf("endpoint: dns release: propagation delay cut short, records flipped anyway: %w", ctx.Err())
		}
	}
	d.mu.Lock()
	d.current, d.next = writer, ""
	aerr := d.apply()
	d.mu.Unlock()
	if aerr != nil {
		return errors.Join(err, aerr)
	}
	if err != nil {
		return err
	}
	return d.confirm(ctx, writer)
}

// confirm asks the server until its answer for the writer endpoint names writer's
// instance: the records are in place, not just set.
func (d *DNS) confirm(ctx context.Context, writer string) error {
	want, err := d.rec.instance(writer)
	if err != nil {
		return err
	}
	tick := time.NewTicker(confirmPoll)
	defer tick.Stop()
	for {
		a, err := dnsserver.Lookup(ctx, d.rec.srv.Addr(), d.rec.names.Writer(), "udp")
		if err == nil && strings.EqualFold(a.CNAME, want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("endpoint: dns release: the server does not answer %s for %s (last answer %q, %v): %w",
				want, d.rec.names.Writer(), a.CNAME, err, ctx.Err())
		case <-tick.C:
		}
	}
}

// SetReaders changes the reader endpoint's members (none: the writer). While a flip
// waits out its propagation delay, it takes effect with the flip.
func (d *DNS) SetReaders(ctx context.Context, readers []string) error {
	if err := d.checkPorts(readers); err != nil {
		return fmt.Errorf("endpoint: dns readers: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("endpoint: dns readers: %w", ErrClosed)
	}
	d.readers = slices.Clone(readers)
	return d.apply()
}

// SetForwarding turns write-forwarding emulation on or off: while on, the reader
// endpoint names the writer. Established connections stay where they are. While a
// flip waits out its propagation delay, it takes effect with the flip.
func (d *DNS) SetForwarding(ctx context.Context, on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("endpoint: dns forwarding: %w", ErrClosed)
	}
	if d.forwarding != on {
		fmt.Fprintf(d.log, "dns: write forwarding %v\n", on)
	}
	d.forwarding = on
	return d.apply()
}

// Forwarding reports whether write forwarding is on.
func (d *DNS) Forwarding() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.forwarding
}

// apply writes the current view to the records, unless a flip is pending (the
// records keep the old view until it happens); d.mu must be held.
func (d *DNS) apply() error {
	if d.next != "" || d.closed {
		return nil
	}
	return d.rec.set(d.current, d.readers, d.forwarding)
}

// checkPorts checks that every address is host:port on the nodes' port: a DNS
// answer carries no port.
func (d *DNS) checkPorts(addrs []string) error {
	for _, a := range addrs {
		if err := checkHostPort(a); err != nil {
			return err
		}
		if _, p, _ := net.SplitHostPort(a); d.port != "" && p != d.port {
			return fmt.Errorf("%w: node %s: the dns mode needs every node on port %s (a DNS answer has no port)", ErrInvalidConfig, a, d.port)
		}
	}
	return nil
}

// Close removes the endpoint records (the names then answer NXDOMAIN); the server
// itself is its owner's to close. It is idempotent; ctx is unused.
func (d *DNS) Close(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		d.rec.remove()
	}
	return nil
}

// records keeps a cluster's writer and reader endpoint records on its DNS server,
// from node addresses, through the instance names the cluster registered.
type records struct {
	srv   *dnsserver.Server
	names dnsserver.Names
}

// set points the writer endpoint at writer's instance and the reader endpoint at
// readers' (the writer's when there are none, or while forwarding is on).
func (r records) set(writer string, readers []string, forwarding bool) error {
	w, err := r.instance(writer)
	if err != nil {
		return err
	}
	targets := readerTargets(writer, readers, forwarding)
	rs := make([]string, len(targets))
	for i, a := range targets {
		if rs[i], err = r.instance(a); err != nil {
			return err
		}
	}
	return errors.Join(r.srv.SetAlias(r.names.Writer(), w), r.srv.SetAlias(r.names.Reader(), rs...))
}

// instance returns the instance name registered for node address addr.
func (r records) instance(addr string) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%w: node %q: %w", ErrInvalidConfig, addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Errorf("%w: node %q: want an IP address, which an instance name answers", ErrInvalidConfig, addr)
	}
	suffix := "." + r.names.ID + "." + r.names.Zone
	for _, name := range r.srv.HostsAt(ip) {
		if label, ok := strings.CutSuffix(name, suffix); ok && !strings.Contains(label, ".") {
			return name, nil
		}
	}
	return "", fmt.Errorf("%w: node %s has no instance name (*%s) on the DNS server; the cluster names its nodes there", ErrInvalidConfig, addr, suffix)
}

// remove deletes the endpoint records.
func (r records) remove() {
	r.srv.Remove(r.names.Writer())
	r.srv.Remove(r.names.Reader())
}

func hostOf(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func portOf(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
