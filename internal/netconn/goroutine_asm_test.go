//go:build linux && (amd64 || arm64)

package netconn

import (
	"runtime"
	"testing"
)

// goroutineKey is one goroutine's for its whole life, wherever it runs, and
// another goroutine's is different.
func TestGoroutineKey(t *testing.T) {
	k := goroutineKey()
	grow(64)
	runtime.Gosched()
	if k == 0 || goroutineKey() != k {
		t.Fatalf("goroutineKey changed: %x then %x", k, goroutineKey())
	}
	other := make(chan uintptr)
	go func() { other <- goroutineKey() }()
	if o := <-other; o == k || o == 0 {
		t.Fatalf("another goroutine's key %x, this one's %x", o, k)
	}
}

// grow uses n KB of stack, so the goroutine's stack is moved.
func grow(n int) byte {
	var b [1024]byte
	if n == 0 {
		return b[0]
	}
	return grow(n-1) + b[n%1024]
}
