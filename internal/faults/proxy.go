package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
)

// holdFor is a blackhole's latency: longer than any run, so that what enters the
// proxy stays held until the fault is removed.
const holdFor = 24 * time.Hour

// blockAttempts bounds how many /24 blocks a proxy's address is tried in.
const blockAttempts = 8

// ErrNoProxy means no fault proxy stands in front of a node.
var ErrNoProxy = errors.New("faults: no fault proxy in front of the node")

// Proxies are the fault proxies in front of a target's nodes, on the path the
// load's clients use: one TCP proxy per node, Shopify's toxiproxy run in this
// process as a library (no API server, no second process). A node's proxy listens
// on the node's host number in a /24 of 127.0.0.0/8 of the proxies' own, on the
// node's port (a DNS answer carries no port), so a DNS record or a PgBouncer backend
// moves from the node to its proxy by address alone. Network faults act on a proxy:
// Hold (a blackhole), Delay (latency), Reset. Replication, pg_rewind and the
// integrity check connect to the nodes themselves and never cross a proxy. Its
// methods are safe for concurrent use.
type Proxies struct {
	srv *toxiproxy.ApiServer
	log io.Writer

	mu      sync.Mutex
	block   netip.Prefix                // where proxies listen (a first choice; a taken address moves one elsewhere)
	proxies map[string]*toxiproxy.Proxy // by the node's host:port
	failed  map[string]bool             // nodes whose proxy could not start (logged once)
	closed  bool
}

// NewProxies returns an empty set of proxies; Front starts them. log gets a line
// per proxy started and per fault.
func NewProxies(log io.Writer) *Proxies {
	if log == nil {
		log = io.Discard
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	return &Proxies{srv: srv, log: log, block: randomBlock(), proxies: map[string]*toxiproxy.Proxy{}, failed: map[string]bool{}}
}

// randomBlock picks a /24 of 127.0.0.0/8 outside 127.0.0.0/24.
func randomBlock() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{127, byte(1 + rand.IntN(254)), byte(rand.IntN(256)), 0}), 24)
}

// Front returns the address (host:port) of the proxy in front of node (host:port),
// starting it on first use.
func (p *Proxies) Front(node string) (string, error) {
	px, err := p.proxy(node)
	if err != nil {
		return "", err
	}
	return px.Listen, nil
}

// Via is Front for callers that must have an address: node itself when no proxy
// can stand in front of it (said once on the log; faults on that node then fail).
func (p *Proxies) Via(node string) string {
	a, err := p.Front(node)
	if err != nil {
		return node
	}
	return a
}

// AnswerFor is a DNS server's answer map (dnsserver.Server.MapAnswers) for nodes
// that listen on port at addresses in nodes: each such address answers its node's
// proxy; other addresses (a PgBouncer's) answer themselves.
func (p *Proxies) AnswerFor(nodes netip.Prefix, port int) func(netip.Addr) netip.Addr {
	return func(ip netip.Addr) netip.Addr {
		if !nodes.Contains(ip) {
			return ip
		}
		a, err := p.Front(net.JoinHostPort(ip.String(), strconv.Itoa(port)))
		if err != nil {
			return ip
		}
		return netip.MustParseAddrPort(a).Addr()
	}
}

func (p *Proxies) proxy(node string) (*toxiproxy.Proxy, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("%w %s: the proxies are closed", ErrNoProxy, node)
	}
	if px, ok := p.proxies[node]; ok {
		return px, nil
	}
	ap, err := netip.ParseAddrPort(node)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("%w %s: want an IPv4 host:port", ErrNoProxy, node)
	}
	host := ap.Addr().As4()[3]
	block := p.block
	var last error
	for range blockAttempts {
		b := block.Addr().As4()
		b[3] = host
		listen := netip.AddrPortFrom(netip.AddrFrom4(b), ap.Port()).String()
		px := toxiproxy.NewProxy(p.srv, node, listen, node)
		if err = px.Start(); err == nil {
			p.proxies[node] = px
			fmt.Fprintf(p.log, "fault proxy %s -> %s\n", px.Listen, node)
			return px, nil
		}
		last = err
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		block = randomBlock() // taken here: this node's proxy goes elsewhere
	}
	err = fmt.Errorf("%w %s: %w", ErrNoProxy, node, last)
	if !p.failed[node] {
		p.failed[node] = true
		fmt.Fprintf(p.log, "warning: %v\n", err)
	}
	return nil, err
}

// Hold makes node's proxy hold every byte both ways, on open connections and new
// ones, until undo: a blackhole. Nothing is dropped: when it ends, what was held
// flows on, as TCP retransmits after a real blackhole, and connections the clients
// did not give up on survive it. (toxiproxy's timeout toxic drops the bytes and,
// when removed, closes every connection it held: not what a network does.)
func (p *Proxies) Hold(node string) (undo func(context.Context) error, err error) {
	return p.toxics(node, "blackhole", "latency", map[string]int64{"latency": holdFor.Milliseconds()}, "upstream", "downstream")
}

// Delay adds add ± jitter to every reply from node (the downstream direction),
// so each round trip takes add longer on average, until undo.
func (p *Proxies) Delay(node string, add, jitter time.Duration) (undo func(context.Context) error, err error) {
	return p.toxics(node, "latency", "latency", map[string]int64{"latency": add.Milliseconds(), "jitter": jitter.Milliseconds()}, "downstream")
}

// toxics adds a toxic of typ to node's proxy in each stream, named name_stream.
func (p *Proxies) toxics(node, name, typ string, attrs map[string]int64, streams ...string) (func(context.Context) error, error) {
	px, err := p.proxy(node)
	if err != nil {
		return nil, err
	}
	var added []string
	undo := func(ctx context.Context) error {
		var errs []error
		for _, n := range added {
			if err := px.Toxics.RemoveToxic(ctx, n); err != nil && !errors.Is(err, toxiproxy.ErrToxicNotFound) {
				errs = append(errs, fmt.Errorf("faults: remove %s from the proxy of %s: %w", n, node, err))
			}
		}
		return errors.Join(errs...)
	}
	for _, s := range streams {
		n := name + "_" + s
		body, _ := json.Marshal(map[string]any{"name": n, "type": typ, "stream": s, "toxicity": 1.0, "attributes": attrs})
		if _, err := px.Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
			return nil, errors.Join(fmt.Errorf("faults: %s on the proxy of %s: %w", name, node, err), undo(context.Background()))
		}
		added = append(added, n)
	}
	return undo, nil
}

// Reset closes every connection open through node's proxy at once, idle or busy
// (clients see them end: connection_reset), while the proxy keeps listening, so a
// client (a PgBouncer) that reconnects at once gets in. It adds toxiproxy's
// timeout toxic (which drops what it gets) both ways and removes it at once:
// removing it closes every connection it was on. Toxics in place stay.
func (p *Proxies) Reset(node string) error {
	undo, err := p.toxics(node, "reset", "timeout", map[string]int64{"timeout": 0}, "upstream", "downstream")
	if err != nil {
		return err
	}
	return undo(context.Background())
}

// State is what the proxies hold now, for checks that nothing is left behind.
type State struct {
	// Listening are the proxies' addresses still accepting connections.
	Listening []string
	// Toxics are the toxics in place, as "node: name".
	Toxics []string
}

// State reports the proxies listening and the toxics in place.
func (p *Proxies) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	var st State
	for node, px := range p.proxies {
		px.Lock()
		if px.Enabled {
			st.Listening = append(st.Listening, px.Listen)
		}
		px.Unlock()
		for _, t := range px.Toxics.GetToxicArray() {
			name := fmt.Sprint(t)
			if w, ok := t.(*toxics.ToxicWrapper); ok {
				name = w.Name
			}
			st.Toxics = append(st.Toxics, node+": "+name)
		}
	}
	sort.Strings(st.Listening)
	sort.Strings(st.Toxics)
	return st
}

// Close removes every toxic (what was held flows on) and stops every proxy, which
// closes the connections through it. It is idempotent, and a nil Proxies closes
// nothing.
func (p *Proxies) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	all := make([]*toxiproxy.Proxy, 0, len(p.proxies))
	for _, px := range p.proxies {
		all = append(all, px)
	}
	p.mu.Unlock()
	for _, px := range all {
		px.Toxics.ResetToxics(context.Background())
		px.Stop()
	}
}
