package faults

import (
	"bufio"
	"io"
	"net"
	"testing"
)

// BenchmarkRoundTrip measures what a fault proxy with no fault in effect adds to a
// small request/response round trip (64 bytes each way) over loopback: direct to
// the server, and through its proxy; one connection per goroutine with -cpu.
//
//	go test ./internal/faults -run '^$' -bench RoundTrip -cpu 1,8 -count 5
func BenchmarkRoundTrip(b *testing.B) {
	node := echoB(b)
	px := NewProxies(nil)
	defer px.Close()
	front, err := px.Front(node)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, addr string }{{"direct", node}, {"proxy", front}} {
		b.Run(bc.name, func(b *testing.B) {
			msg := make([]byte, 63)
			for i := range msg {
				msg[i] = 'x'
			}
			msg = append(msg, '\n')
			b.SetBytes(int64(2 * len(msg)))
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", bc.addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				r := bufio.NewReader(c)
				for pb.Next() {
					if _, err := c.Write(msg); err != nil {
						b.Error(err)
						return
					}
					if _, err := r.ReadSlice('\n'); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// echoB is echo for benchmarks.
func echoB(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}
