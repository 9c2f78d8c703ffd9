package endpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Forwarders is the forward endpoint mode: a writer and a reader Proxy on 127.0.0.1
// standing for Aurora's cluster and reader endpoints, with a stale window applied at
// failover that stands for DNS caching. It is what the dns mode was before the DNS
// server (see DNS), kept for clients that must reach the endpoints at 127.0.0.1:port
// (the Aurora emulator reports its cluster endpoints so).
type Forwarders struct {
	writer, reader *Proxy
	stale          time.Duration
	after          func(time.Duration) <-chan time.Time
	log            io.Writer

	failMu sync.Mutex // serialises Failover (it waits out the stale window)

	mu         sync.Mutex
	current    string   // the writer node the endpoints resolve to (after any window)
	readers    []string // the reader endpoint's members
	forwarding bool
	stalled    bool // inside a stale window: the endpoints keep the old view
	closed     bool
}

// NewForwarders starts the forward mode's two endpoints: the writer endpoint reaches
// writer, the reader endpoint reaches readers (round-robin; the writer when there are
// none). stale is the stale window of Failover (0: none). log receives endpoint
// changes; nil discards them.
func NewForwarders(writer string, readers []string, stale time.Duration, log io.Writer, opts ...Option) (*Forwarders, error) {
	if log == nil {
		log = io.Discard
	}
	if err := checkHostPort(writer); err != nil {
		return nil, fmt.Errorf("endpoint: forward writer: %w", err)
	}
	if stale < 0 {
		return nil, fmt.Errorf("%w: stale window %v is negative", ErrInvalidConfig, stale)
	}
	d := &Forwarders{stale: stale, after: applyOptions(opts).after, log: log, current: writer, readers: slices.Clone(readers)}
	w, err := NewProxy("writer", []string{writer}, log)
	if err != nil {
		return nil, err
	}
	r, err := NewProxy("reader", readerTargets(writer, readers, false), log)
	if err != nil {
		_ = w.Close()
		return nil, err
	}
	d.writer, d.reader = w, r
	fmt.Fprintf(log, "forward endpoints: writer %s -> %s, reader %s -> %v\n", w.Addr(), writer, r.Addr(), r.Backends())
	return d, nil
}

// Name returns ModeForward.
func (d *Forwarders) Name() string { return ModeForward }

// ExecMode returns pgx's default exec mode: connections reach PostgreSQL directly.
func (d *Forwarders) ExecMode() pgx.QueryExecMode { return ExecMode(ModeForward) }

// WriterAddr returns the writer endpoint's 127.0.0.1:port.
func (d *Forwarders) WriterAddr() string { return d.writer.Addr() }

// ReaderAddr returns the reader endpoint's 127.0.0.1:port.
func (d *Forwarders) ReaderAddr() string { return d.reader.Addr() }

// WriterProxy returns the writer endpoint's proxy (for inspection: Conns, Backends).
func (d *Forwarders) WriterProxy() *Proxy { return d.writer }

// ReaderProxy returns the reader endpoint's proxy.
func (d *Forwarders) ReaderProxy() *Proxy { return d.reader }

// Writer returns the writer node the writer endpoint resolves to, once any stale
// window is over.
func (d *Forwarders) Writer() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current
}

// Hold does nothing in the forward mode: DNS cannot hold clients back. The old writer's
// connections break when it stops (as on Aurora, where it restarts), and Release
// drops any that remain.
func (d *Forwarders) Hold(ctx context.Context) error { return nil }

// Release makes writer the writer and readers the reader endpoint's members. When
// the writer changes this is Failover from the current writer; otherwise the reader
// membership changes at once.
func (d *Forwarders) Release(ctx context.Context, writer string, readers []string) error {
	if err := checkHostPort(writer); err != nil {
		return fmt.Errorf("endpoint: forward release: %w", err)
	}
	old := d.Writer()
	if old == writer {
		return d.SetReaders(ctx, readers)
	}
	return d.Failover(ctx, old, writer, readers)
}

// Failover emulates the endpoints during an Aurora failover from oldWriter to
// newWriter. It drops every connection to oldWriter on both endpoints at once; then,
// for the stale window, new connections keep going where they went before (the
// writer endpoint to oldWriter: reset right after connecting while it is down (see
// Proxy), 25006 on writes once it runs as a standby; the reader endpoint to its old members); then the writer
// endpoint switches to newWriter and the reader endpoint to readers (newWriter when
// there are none, or while forwarding is on), and Failover returns.
//
// Connections made during the window are not dropped at the switch: on Aurora they
// stay on the old node until the client reconnects. When ctx ends during the window
// the switch is made at once and ctx's error is returned.
func (d *Forwarders) Failover(ctx context.Context, oldWriter, newWriter string, readers []string) error {
	if err := checkHostPort(newWriter); err != nil {
		return fmt.Errorf("endpoint: forward failover: %w", err)
	}
	for _, r := range readers {
		if err := checkHostPort(r); err != nil {
			return fmt.Errorf("endpoint: forward failover: %w", err)
		}
	}
	d.failMu.Lock()
	defer d.failMu.Unlock()

	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("endpoint: forward failover: %w", ErrClosed)
	}
	d.stalled = true
	d.current = newWriter
	d.readers = slices.Clone(readers)
	d.mu.Unlock()

	dropped := d.writer.Drop(oldWriter) + d.reader.Drop(oldWriter)
	fmt.Fprintf(d.log, "forward failover %s -> %s: dropped %d connection(s) to the old writer; stale window %v\n",
		oldWriter, newWriter, dropped, d.stale)

	var err error
	if d.stale > 0 {
		select {
		case <-d.after(d.stale):
		case <-ctx.Done():
			err = fmt.Errorf("endpoint: forward failover: stale window cut short, endpoints switched anyway: %w", ctx.Err())
		}
	}

	d.mu.Lock()
	d.stalled = false
	d.apply()
	d.mu.Unlock()
	return err
}

// SetReaders changes the reader endpoint's members for new connections (none: the
// writer). During a stale window it takes effect at the switch.
func (d *Forwarders) SetReaders(ctx context.Context, readers []string) error {
	for _, r := range readers {
		if err := checkHostPort(r); err != nil {
			return fmt.Errorf("endpoint: forward readers: %w", err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("endpoint: forward readers: %w", ErrClosed)
	}
	d.readers = slices.Clone(readers)
	d.apply()
	return nil
}

// SetForwarding turns write-forwarding emulation on or off: while on, the reader
// endpoint's new connections reach the writer. Established connections stay where
// they are. During a stale window it takes effect at the switch.
func (d *Forwarders) SetForwarding(ctx context.Context, on bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("endpoint: forward forwarding: %w", ErrClosed)
	}
	if d.forwarding != on {
		fmt.Fprintf(d.log, "forward endpoints: write forwarding %v\n", on)
	}
	d.forwarding = on
	d.apply()
	return nil
}

// Forwarding reports whether write forwarding is on.
func (d *Forwarders) Forwarding() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.forwarding
}

// apply points the proxies at the current view, unless a stale window holds the old
// one; d.mu must be held.
func (d *Forwarders) apply() {
	if d.stalled || d.closed {
		return
	}
	d.writer.SetBackends([]string{d.current})
	d.reader.SetBackends(readerTargets(d.current, d.readers, d.forwarding))
}

// Close closes both endpoints and their connections. It is idempotent; ctx is unused
// (closing never blocks on the network).
func (d *Forwarders) Close(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	return errors.Join(d.writer.Close(), d.reader.Close())
}
