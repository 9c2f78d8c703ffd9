package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
)

// PgBouncerPair is the proxy endpoint mode: a writer and a reader PgBouncer in
// transaction pooling mode, like RDS Proxy's read/write and read-only endpoints.
//
// PgBouncer 1.18 takes one host:port per database, so the reader PgBouncer reaches
// one node: the first reader (the writer when there are none, or while write
// forwarding is on).
//
// With a DNS server, each PgBouncer has a name of its own there (see
// dnsserver.Names.Proxy), which clients connect to, and the pair keeps the cluster
// endpoint records current too, at once, for whoever looks them up.
type PgBouncerPair struct {
	writer, reader *PgBouncer
	log            io.Writer
	rec            *records // nil without a DNS server

	mu         sync.Mutex
	current    string // the writer node
	readers    []string
	forwarding bool
	held       []*PgBouncer // paused by Hold, resumed by Release
	closed     atomic.Bool  // not under mu: Close must not wait behind a long PAUSE
	// lastRelease is how long the last Release took.
	lastRelease releaseTiming
}

// StartPgBouncerPair starts the writer and reader PgBouncers for cfg (Mode is not
// consulted): in cfg.Dir, as "writer" and "reader", with cfg's pool sizes. On failure
// nothing is left running.
func StartPgBouncerPair(ctx context.Context, cfg Config) (*PgBouncerPair, error) {
	cfg.Mode = ModeProxy
	cfg = cfg.withDefaults()
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	base := PgBouncerConfig{Dir: cfg.Dir, Credentials: cfg.Credentials, PoolSize: cfg.PoolSize, MaxClientConn: cfg.MaxClientConn, Log: cfg.Log, Via: cfg.Via}
	wc := base
	wc.Name, wc.Backend = "writer", cfg.Writer
	w, err := StartPgBouncer(ctx, wc)
	if err != nil {
		return nil, err
	}
	rc := base
	rc.Name, rc.Backend = "reader", readerTargets(cfg.Writer, cfg.Readers, false)[0]
	r, err := StartPgBouncer(ctx, rc)
	if err != nil {
		_ = w.Close()
		return nil, err
	}
	p := &PgBouncerPair{writer: w, reader: r, log: cfg.Log, current: cfg.Writer, readers: slices.Clone(cfg.Readers)}
	if cfg.DNS != nil {
		if err := p.name(cfg.DNS); err != nil {
			_ = w.Close()
			_ = r.Close()
			return nil, err
		}
	}
	return p, nil
}

// name gives the PgBouncers their names on srv (they listen on 127.0.0.1) and sets
// the cluster endpoint records.
func (p *PgBouncerPair) name(srv *dnsserver.Server) error {
	p.rec = &records{srv: srv, names: srv.Names()}
	n := p.rec.names
	lo := netip.MustParseAddr("127.0.0.1")
	if err := errors.Join(srv.SetHost(n.Proxy("writer"), lo), srv.SetHost(n.Proxy("reader"), lo)); err != nil {
		return fmt.Errorf("endpoint: proxy names: %w", err)
	}
	p.updateRecords()
	fmt.Fprintf(p.log, "proxy endpoints on the DNS server %s (ttl %v):\n  writer pgbouncer %s\n  reader pgbouncer %s\n  try: dig @%s -p %s %s\n",
		srv.Addr(), srv.TTL(), p.WriterAddr(), p.ReaderAddr(), hostOf(srv.Addr()), portOf(srv.Addr()), n.Proxy("writer"))
	return nil
}

// updateRecords points the cluster endpoint records at the current writer and
// readers; p.mu must be held (or p not yet shared). A node without an instance name
// only costs the records, not the switchover: clients reach the PgBouncers by their
// own names.
func (p *PgBouncerPair) updateRecords() {
	if p.rec == nil {
		return
	}
	if err := p.rec.set(p.current, p.readers, p.forwarding); err != nil {
		fmt.Fprintf(p.log, "warning: proxy endpoints: cluster endpoint records not updated: %v\n", err)
	}
}

// Name returns ModeProxy.
func (p *PgBouncerPair) Name() string { return ModeProxy }

// ExecMode returns pgx.QueryExecModeExec: no named prepared statements through
// PgBouncer 1.18 in transaction pooling mode.
func (p *PgBouncerPair) ExecMode() pgx.QueryExecMode { return ExecMode(ModeProxy) }

// WriterAddr returns the writer PgBouncer's name and port with a DNS server, else
// its 127.0.0.1:port.
func (p *PgBouncerPair) WriterAddr() string { return p.named("writer", p.writer) }

// ReaderAddr returns the reader PgBouncer's name and port with a DNS server, else
// its 127.0.0.1:port.
func (p *PgBouncerPair) ReaderAddr() string { return p.named("reader", p.reader) }

func (p *PgBouncerPair) named(role string, b *PgBouncer) string {
	if p.rec == nil {
		return b.Addr()
	}
	return net.JoinHostPort(p.rec.names.Proxy(role), portOf(b.Addr()))
}

// WriterBouncer returns the writer endpoint's PgBouncer (for inspection).
func (p *PgBouncerPair) WriterBouncer() *PgBouncer { return p.writer }

// ReaderBouncer returns the reader endpoint's PgBouncer (for inspection).
func (p *PgBouncerPair) ReaderBouncer() *PgBouncer { return p.reader }

// Writer returns the writer node the writer endpoint reaches.
func (p *PgBouncerPair) Writer() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current
}

// Hold PAUSEs the PgBouncers that reach the writer — the writer's, and the reader's
// too when it reaches the writer (no readers, or forwarding on) — in parallel. Each
// waits for its in-flight transactions to finish; then new queries are held, not
// failed, until Release (for at most PgBouncer's query_wait_timeout, 120 s). When one
// PAUSE fails (ctx ended before the transactions did), the other is resumed and the
// error returned: the caller should not go on with the switchover.
// Settle waits (up to a second) until neither PgBouncer has a server login in
// progress, while clients are still served: a provider calls it before it starts
// the stall's clock and calls Hold, so that Hold's PAUSEs do not wait for logins
// (a reader moved to the writer a moment before is still filling its pool).
func (p *PgBouncerPair) Settle(ctx context.Context) {
	var wg sync.WaitGroup
	for _, b := range []*PgBouncer{p.writer, p.reader} {
		wg.Go(func() { b.settleLogins(ctx) })
	}
	wg.Wait()
}

func (p *PgBouncerPair) Hold(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return fmt.Errorf("endpoint: proxy hold: %w", ErrClosed)
	}
	targets := []*PgBouncer{p.writer}
	if p.reader.Backend() == p.current {
		targets = append(targets, p.reader)
	}
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, b := range targets {
		wg.Go(func() { errs[i] = b.Pause(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resumeTimeout)
		defer cancel()
		for _, b := range targets {
			if rerr := b.Resume(rctx); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return fmt.Errorf("endpoint: proxy hold: %w", err)
	}
	p.held = append(p.held, targets...)
	fmt.Fprintf(p.log, "proxy endpoints held (%d pgbouncer(s) paused)\n", len(targets))
	return nil
}

// Release repoints the writer PgBouncer at writer and the reader PgBouncer at the
// first of readers (writer when there are none, or while forwarding is on), then
// RESUMEs what Hold paused: held clients continue on the new nodes over their same
// connections. It returns once both are resumed.
func (p *PgBouncerPair) Release(ctx context.Context, writer string, readers []string) error {
	for _, a := range append([]string{writer}, readers...) {
		if err := checkBackend(a); err != nil {
			return fmt.Errorf("endpoint: proxy release: %w", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return fmt.Errorf("endpoint: proxy release: %w", ErrClosed)
	}
	start := time.Now()
	p.current, p.readers = writer, slices.Clone(readers)
	// Both PgBouncers repoint at once, then resume at once: the held clients wait
	// for the slower of each, not for their sum.
	errs := make([]error, 2, 2+len(p.held))
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = p.writer.Repoint(ctx, writer) })
	wg.Go(func() { errs[1] = p.reader.Repoint(ctx, readerTargets(writer, readers, p.forwarding)[0]) })
	wg.Wait()
	repointed := time.Now()
	// Resume even when a repoint failed: clients must not stay held behind a failed
	// switchover; the error tells the caller.
	resumed := make([]error, len(p.held))
	for i, b := range p.held {
		wg.Go(func() { resumed[i] = b.Resume(ctx) })
	}
	wg.Wait()
	errs = append(errs, resumed...)
	p.held = nil
	p.lastRelease = releaseTiming{Repoint: repointed.Sub(start), Resume: time.Since(repointed)}
	p.updateRecords()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("endpoint: proxy release: %w", err)
	}
	fmt.Fprintf(p.log, "proxy endpoints released to writer %s (repoint and resume took %v)\n", writer, time.Since(start).Round(time.Millisecond))
	return nil
}

// releaseTiming is how long a Release took, part by part.
type releaseTiming struct {
	// Repoint points the PgBouncers at the new nodes; Resume releases what Hold
	// paused.
	Repoint, Resume time.Duration
}

// ReleaseTimes is how long the last Release took to repoint and to resume.
func (p *PgBouncerPair) ReleaseTimes() (repoint, resume time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastRelease.Repoint, p.lastRelease.Resume
}

// moveReader repoints the reader PgBouncer at backend between transactions: paused
// (unless a hold already paused it), repointed, resumed. Repointed while serving,
// PgBouncer can drop a server connection still logging in to the old backend,
// count that as a failed login and, for server_login_retry, fail clients that
// arrive to an empty pool ("server login has been failing"); paused, nothing is
// logging in. The pause lasts the in-flight transactions and a RELOAD.
func (p *PgBouncerPair) moveReader(ctx context.Context, backend string) error {
	if p.reader.Backend() == backend {
		return nil
	}
	if p.reader.Paused() {
		return p.reader.Repoint(ctx, backend)
	}
	if err := p.reader.Pause(ctx); err != nil {
		return err
	}
	err := p.reader.Repoint(ctx, backend)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resumeTimeout)
	defer cancel()
	return errors.Join(err, p.reader.Resume(rctx))
}

// SetReaders repoints the reader PgBouncer at the first of readers (the writer when
// there are none). Its server connections move after their current transaction.
func (p *PgBouncerPair) SetReaders(ctx context.Context, readers []string) error {
	for _, a := range readers {
		if err := checkBackend(a); err != nil {
			return fmt.Errorf("endpoint: proxy readers: %w", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return fmt.Errorf("endpoint: proxy readers: %w", ErrClosed)
	}
	p.readers = slices.Clone(readers)
	p.updateRecords()
	return p.moveReader(ctx, readerTargets(p.current, p.readers, p.forwarding)[0])
}

// SetForwarding turns write-forwarding emulation on or off: while on, the reader
// PgBouncer reaches the writer. Its server connections move after their current
// transaction, so every client of the reader endpoint is served by the writer from
// its next transaction on.
func (p *PgBouncerPair) SetForwarding(ctx context.Context, on bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Load() {
		return fmt.Errorf("endpoint: proxy forwarding: %w", ErrClosed)
	}
	if err := p.moveReader(ctx, readerTargets(p.current, p.readers, on)[0]); err != nil {
		return fmt.Errorf("endpoint: proxy forwarding %v: %w", on, err)
	}
	p.forwarding = on
	p.updateRecords()
	return nil
}

// Forwarding reports whether write forwarding is on.
func (p *PgBouncerPair) Forwarding() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.forwarding
}

// Close stops both PgBouncers (see PgBouncer.Stop) and removes their names and the
// cluster endpoint records; it is idempotent.
func (p *PgBouncerPair) Close(ctx context.Context) error {
	if !p.closed.Swap(true) && p.rec != nil {
		p.rec.remove()
		p.rec.srv.Remove(p.rec.names.Proxy("writer"))
		p.rec.srv.Remove(p.rec.names.Proxy("reader"))
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	return errors.Join(p.writer.Stop(ctx), p.reader.Stop(ctx))
}
