// Package testutil holds the helpers the module's tests share: waiting for a
// condition with a deadline, requiring a tool or the Docker engine (a skip on a
// developer's machine, a failure under CI), golden files, a goroutine-safe log
// buffer and free loopback ports.
//
// Import it from tests only: it registers the -update flag.
package testutil

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The polling interval of Eventually starts at minPoll and doubles up to maxPoll.
const (
	minPoll = 20 * time.Millisecond
	maxPoll = 200 * time.Millisecond
)

// Eventually calls cond until it returns true, waiting a little longer between
// calls each time (20 ms growing to 200 ms). When timeout passes first, it fails
// the test with t.Fatalf, naming what it waited for. cond runs on the calling
// goroutine, so it may call t.Fatal itself; it should not block for long, since
// Eventually cannot interrupt it.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := minPoll
	for !cond() {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
			return
		}
		timer := time.NewTimer(min(wait, left))
		<-timer.C
		wait = min(2*wait, maxPoll)
	}
}

// SyncBuffer is a bytes.Buffer that goroutines may write to while another reads
// it: a log sink for code under test. The zero value is ready to use.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago: it listens
// on port 0 and closes the listener. Another process may take the port before the
// caller binds it.
func FreePort(t testing.TB) int {
	t.Helper()
	return listenFree(t, "127.0.0.1")
}

// FreeAddr returns "host:port" for a TCP port on host (a loopback address such as
// "127.0.0.1" or "::1") that was free a moment ago. Nothing listens there when it
// returns, so it also serves as an address that refuses connections.
func FreeAddr(t testing.TB, host string) string {
	t.Helper()
	return net.JoinHostPort(host, strconv.Itoa(listenFree(t, host)))
}

func listenFree(t testing.TB, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("find a free port on %s: %v", host, err)
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
