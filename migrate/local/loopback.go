package local

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
)

// PreferredPort is the port a cluster's nodes share when it is free: PostgreSQL's
// and Aurora's 5432.
const PreferredPort = 5432

// loopbackAttempts bounds how many /24 blocks NewLoopback tries.
const loopbackAttempts = 16

// Loopback hands out the addresses of one cluster's nodes: a /24 of its own in
// 127.0.0.0/8 (never 127.0.0.0/24, where 127.0.0.1 and the system's resolvers live),
// chosen at random so that parallel runs and tests do not collide, and one port that
// every node listens on, as Aurora instances all listen on 5432. A client that still
// holds an old node's address therefore reaches that node, not another one on its
// port: connection refused while it is down, the node itself once it is back.
//
// Linux routes all of 127.0.0.0/8 to the loopback interface; elsewhere the
// addresses must be added first (NewLoopback says so). Its methods are safe for
// concurrent use.
type Loopback struct {
	prefix netip.Prefix
	port   int

	mu   sync.Mutex
	next int // the next host number to hand out
}

// NewLoopback picks a block and the port: port itself when it is not 0, else
// PreferredPort when it is free on the block's first address, else a free port
// there.
func NewLoopback(port int) (*Loopback, error) {
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("%w: port %d: want 0 (5432 when free, else any) or 1-65535", ErrInvalidConfig, port)
	}
	var last error
	for range loopbackAttempts {
		// 127.X.Y.0/24 with X in 1..254: not 127.0.x.x, not the broadcast's block.
		prefix := netip.PrefixFrom(netip.AddrFrom4([4]byte{127, byte(1 + rand.IntN(254)), byte(rand.IntN(256)), 0}), 24)
		first := hostAt(prefix, 2)
		want := port
		if want == 0 {
			want = PreferredPort
		}
		err := checkPortFree(first.String(), want)
		if err != nil && port == 0 && errors.Is(err, ErrPortInUse) {
			// 5432 is taken, likely by a server listening on every address: any
			// free port will do.
			want, err = freePort(first.String())
		}
		if err == nil {
			return &Loopback{prefix: prefix, port: want, next: 2}, nil
		}
		if !errors.Is(err, ErrPortInUse) {
			return nil, err
		}
		last = err
	}
	return nil, fmt.Errorf("%w: no /24 in 127.0.0.0/8 with port %d free after %d attempts: %w", ErrNoFreePort, port, loopbackAttempts, last)
}

// hostAt returns host number h of a /24.
func hostAt(prefix netip.Prefix, h int) netip.Addr {
	b := prefix.Addr().As4()
	b[3] = byte(h)
	return netip.AddrFrom4(b)
}

// Prefix returns the block, e.g. 127.31.7.0/24.
func (l *Loopback) Prefix() netip.Prefix { return l.prefix }

// Port returns the port every address listens on.
func (l *Loopback) Port() int { return l.port }

// Next returns the next address of the block on which the port is free (.2, .3,
// ...; an address where something else listens is skipped), or ErrNoFreePort when
// the block is used up.
func (l *Loopback) Next() (netip.Addr, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var last error
	for ; l.next < 255; l.next++ {
		a := hostAt(l.prefix, l.next)
		err := checkPortFree(a.String(), l.port)
		if err == nil {
			l.next++
			return a, nil
		}
		if !errors.Is(err, ErrPortInUse) {
			return netip.Addr{}, err
		}
		last = err
	}
	return netip.Addr{}, fmt.Errorf("%w: every address of %s with port %d is used (last: %v)", ErrNoFreePort, l.prefix, l.port, last)
}

// HostPort returns a's host:port on the block's port.
func (l *Loopback) HostPort(a netip.Addr) string {
	return net.JoinHostPort(a.String(), strconv.Itoa(l.port))
}
