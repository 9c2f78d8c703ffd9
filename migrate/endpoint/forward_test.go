package endpoint

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/local"
)

// newTestForwarders builds Forwarders outside any synctest bubble: its proxies' accept loops
// block on real sockets, which a bubble's fake clock cannot wait for.
func newTestForwarders(t *testing.T, stale time.Duration, opts ...Option) *Forwarders {
	t.Helper()
	d, err := NewForwarders("127.0.0.1:1001", []string{"127.0.0.1:1002"}, stale, &testutil.SyncBuffer{}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	return d
}

func TestForwardersStaleWindow(t *testing.T) {
	const w1, w2, r1 = "127.0.0.1:1001", "127.0.0.1:2001", "127.0.0.1:1002"
	d := newTestForwarders(t, 3*time.Second)
	synctest.Test(t, func(t *testing.T) {
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- d.Failover(context.Background(), w1, w2, nil) }()
		synctest.Wait()
		time.Sleep(3*time.Second - time.Nanosecond) // advances the bubble's fake clock
		synctest.Wait()
		if got := d.WriterProxy().Backends(); !slices.Equal(got, []string{w1}) {
			t.Errorf("inside the window the writer endpoint reaches %v, want the old writer", got)
		}
		if got := d.ReaderProxy().Backends(); !slices.Equal(got, []string{r1}) {
			t.Errorf("inside the window the reader endpoint reaches %v, want its old members", got)
		}
		if err := d.SetForwarding(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		if got := d.ReaderProxy().Backends(); !slices.Equal(got, []string{r1}) {
			t.Errorf("forwarding changed the reader endpoint inside the window: %v", got)
		}
		if err := <-done; err != nil {
			t.Fatalf("Failover: %v", err)
		}
		if el := time.Since(start); el != 3*time.Second {
			t.Errorf("Failover returned after %v, want the 3s window", el)
		}
		if got := d.WriterProxy().Backends(); !slices.Equal(got, []string{w2}) {
			t.Errorf("after the window the writer endpoint reaches %v, want %s", got, w2)
		}
		if got := d.ReaderProxy().Backends(); !slices.Equal(got, []string{w2}) {
			t.Errorf("after the window the reader endpoint (forwarding on) reaches %v, want the writer", got)
		}
		if err := d.SetForwarding(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		if err := d.Release(context.Background(), w2, []string{w1}); err != nil {
			t.Fatal(err)
		}
		if got := d.ReaderProxy().Backends(); !slices.Equal(got, []string{w1}) {
			t.Errorf("Release with the same writer: reader endpoint reaches %v, want %s at once", got, w1)
		}
	})
}

func TestForwardersFailoverContextEnds(t *testing.T) {
	const w1, w2 = "127.0.0.1:1001", "127.0.0.1:2001"
	d := newTestForwarders(t, time.Hour)
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := d.Failover(ctx, w1, w2, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Failover = %v, want the context's deadline error", err)
		}
		if got := d.WriterProxy().Backends(); !slices.Equal(got, []string{w2}) {
			t.Errorf("after a cut-short window the writer endpoint reaches %v, want %s", got, w2)
		}
	})
}

func TestForwardersClosed(t *testing.T) {
	d := newTestForwarders(t, 0)
	if err := d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(t.Context()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := d.Failover(t.Context(), "127.0.0.1:1001", "127.0.0.1:2001", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Failover after Close = %v, want ErrClosed", err)
	}
}

// TestForwardersPostgres walks the forward mode through a failover between two real PostgreSQL
// nodes, ending the stale window when the test has looked inside it.
func TestForwardersPostgres(t *testing.T) {
	n1, n2 := startNode(t, "node1"), startNode(t, "node2")
	a1, a2 := nodeAddr(n1), nodeAddr(n2)
	entered := make(chan time.Duration, 1)
	windowEnd := make(chan time.Time)
	log := &testutil.SyncBuffer{}
	d, err := NewForwarders(a1, []string{a2}, 5*time.Second, log, WithAfter(func(stale time.Duration) <-chan time.Time {
		entered <- stale
		return windowEnd
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	const mode = pgx.QueryExecModeCacheStatement

	if got := portVia(t, d.WriterAddr(), mode); got != n1.Port() {
		t.Fatalf("writer endpoint reached %d, want node1 %d", got, n1.Port())
	}
	if got := portVia(t, d.ReaderAddr(), mode); got != n2.Port() {
		t.Fatalf("reader endpoint reached %d, want node2 %d", got, n2.Port())
	}

	// Write forwarding: the reader endpoint's new connections are served by the writer.
	onReader := connect(t, d.ReaderAddr(), mode)
	if err := d.SetForwarding(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if got := portVia(t, d.ReaderAddr(), mode); got != n1.Port() {
		t.Errorf("forwarding on: reader endpoint reached %d, want the writer node1 %d", got, n1.Port())
	}
	if got := mustServerPort(t, onReader); got != n2.Port() {
		t.Errorf("forwarding on: an established reader connection moved to %d", got)
	}
	forwarded := connect(t, d.ReaderAddr(), mode) // reaches node1: dropped at failover
	if err := d.SetForwarding(t.Context(), false); err != nil {
		t.Fatal(err)
	}

	onWriter := connect(t, d.WriterAddr(), mode)
	mustServerPort(t, onWriter)
	failed := make(chan error, 1)
	go func() { failed <- d.Failover(t.Context(), a1, a2, nil) }()
	select {
	case <-entered:
	case err := <-failed:
		t.Fatalf("Failover returned before its stale window: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Failover did not reach its stale window within 30s")
	}
	// Inside the window: the old writer's connections are gone, on both endpoints...
	if _, err := serverPort(t.Context(), onWriter); err == nil {
		t.Error("a writer endpoint connection to the old writer survived the failover")
	}
	if _, err := serverPort(t.Context(), forwarded); err == nil {
		t.Error("a reader endpoint connection to the old writer survived the failover")
	}
	if got := mustServerPort(t, onReader); got != n2.Port() {
		t.Errorf("reader connection to node2 affected: %d", got)
	}
	// ...but new connections still reach it (stale DNS),
	if got := portVia(t, d.WriterAddr(), mode); got != n1.Port() {
		t.Errorf("inside the stale window the writer endpoint reached %d, want the old writer node1 %d", got, n1.Port())
	}
	// and are refused once it is down.
	if err := n1.Stop(t.Context(), local.Fast); err != nil {
		t.Fatal(err)
	}
	if c, err := tryConnect(t.Context(), d.WriterAddr(), mode); err == nil {
		c.Close(context.Background())
		t.Error("inside the stale window a connection to the stopped old writer succeeded")
	} else {
		t.Logf("inside the stale window, old writer down: %v", err)
	}

	select {
	case windowEnd <- time.Now():
	case err := <-failed:
		t.Fatalf("Failover returned before its stale window ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("within 30s Failover neither took the end of its stale window nor returned")
	}
	select {
	case err := <-failed:
		if err != nil {
			t.Fatalf("Failover: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Failover did not return within 30s of its stale window's end")
	}
	if got := portVia(t, d.WriterAddr(), mode); got != n2.Port() {
		t.Errorf("after the window the writer endpoint reached %d, want node2 %d", got, n2.Port())
	}
	if got := portVia(t, d.ReaderAddr(), mode); got != n2.Port() {
		t.Errorf("after the window (no readers) the reader endpoint reached %d, want the writer node2 %d", got, n2.Port())
	}
	if d.Writer() != a2 {
		t.Errorf("Writer() = %s, want %s", d.Writer(), a2)
	}
	t.Logf("log:\n%s", log)
}
