package netconn

import (
	"net"
	"sync"
	"testing"
)

// BenchmarkRoundTrip is one round trip of a small message to an echo server on
// loopback, four connections at a time: on a loop, and as goroutines on Go's
// network poller. The echo server runs in the same process, so each figure counts
// both ends.
func BenchmarkRoundTrip(b *testing.B) {
	const conns = 4
	addr := echoServer(b)
	msg := []byte("Bind/Execute/Sync")
	for _, mode := range []string{"loop", "netpoll"} {
		b.Run(mode, func(b *testing.B) {
			cs := make([]net.Conn, conns)
			for i := range cs {
				c, err := Dial(b.Context(), &net.Dialer{}, "tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				cs[i] = c
			}
			per := b.N/conns + 1
			b.ReportAllocs()
			b.ResetTimer()
			errs := make([]error, conns)
			if mode == "loop" {
				var bodies []func(*Task)
				for i, c := range cs {
					bodies = append(bodies, func(t *Task) {
						if errs[i] = t.Attach(c); errs[i] != nil {
							return
						}
						defer t.Detach(c)
						errs[i] = trips(c, msg, per)
					})
				}
				if err := Run(bodies); err != nil {
					b.Fatal(err)
				}
			} else {
				var wg sync.WaitGroup
				for i, c := range cs {
					wg.Go(func() { errs[i] = trips(c, msg, per) })
				}
				wg.Wait()
			}
			b.StopTimer()
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func trips(c net.Conn, msg []byte, n int) error {
	got := make([]byte, len(msg))
	for range n {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		for read := 0; read < len(got); {
			m, err := c.Read(got[read:])
			if err != nil {
				return err
			}
			read += m
		}
	}
	return nil
}
