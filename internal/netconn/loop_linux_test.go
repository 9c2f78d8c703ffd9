package netconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// echoServer echoes what each connection sends until the test ends. A connection
// whose first byte is 's' gets nothing back (a server that hangs).
func echoServer(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if buf[0] == 's' {
						continue
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			})
		}
	})
	return l.Addr().String()
}

func dial(t testing.TB, addr string) *Conn {
	t.Helper()
	nc, err := Dial(t.Context(), &net.Dialer{}, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := nc.(*Conn)
	if !ok {
		t.Fatalf("Dial returned %T", nc)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads until it has as many bytes back.
func roundTrip(c net.Conn, msg []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo differs")
	}
	return nil
}

// Tasks of one loop each run round trips on their own attached connection; a
// connection used before and after its attachment works as an ordinary one.
func TestLoopRoundTrips(t *testing.T) {
	addr := echoServer(t)
	const tasks, trips = 6, 200
	conns := make([]*Conn, tasks)
	for i := range conns {
		conns[i] = dial(t, addr)
		if err := roundTrip(conns[i], []byte("before")); err != nil {
			t.Fatal(err)
		}
	}
	errs := make([]error, tasks)
	var bodies []func(*Task)
	for i, c := range conns {
		bodies = append(bodies, func(task *Task) {
			if errs[i] = task.Attach(c); errs[i] != nil {
				return
			}
			defer task.Detach(c)
			// Large messages fill the socket buffers: writes wait in the loop too.
			msg := bytes.Repeat([]byte{byte('a' + i)}, 1+i*40000)
			for range trips {
				if errs[i] = roundTrip(c, msg); errs[i] != nil {
					return
				}
			}
		})
	}
	if err := Run(bodies); err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("task %d: %v", i, err)
		}
	}
	for i, c := range conns {
		if err := roundTrip(c, []byte("after")); err != nil {
			t.Errorf("conn %d after the loop: %v", i, err)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

// A task's read past its deadline fails with a timeout while the loop's other
// tasks go on; a deadline or Close from another goroutine ends a task's wait.
func TestLoopDeadlinesAndInterrupts(t *testing.T) {
	addr := echoServer(t)
	hung := []*Conn{dial(t, addr), dial(t, addr), dial(t, addr)}
	busy := dial(t, addr)
	var (
		mu      sync.Mutex
		results = map[string]error{}
		took    = map[string]time.Duration{}
		trips   int
		waiting sync.WaitGroup
	)
	waiting.Add(2)
	wait := func(name string, c *Conn, task *Task, setup func()) {
		if err := task.Attach(c); err != nil {
			t.Error(err)
			return
		}
		defer task.Detach(c)
		setup()
		start := time.Now()
		_, err := c.Read(make([]byte, 10)) // 's': the server never answers
		mu.Lock()
		results[name], took[name] = err, time.Since(start)
		mu.Unlock()
	}
	bodies := []func(*Task){
		func(task *Task) {
			wait("own deadline", hung[0], task, func() {
				hung[0].Write([]byte("s"))
				hung[0].SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			})
		},
		func(task *Task) {
			wait("interrupted", hung[1], task, func() { hung[1].Write([]byte("s")); waiting.Done() })
		},
		func(task *Task) {
			wait("closed", hung[2], task, func() { hung[2].Write([]byte("s")); waiting.Done() })
		},
		func(task *Task) {
			if err := task.Attach(busy); err != nil {
				t.Error(err)
				return
			}
			defer task.Detach(busy)
			deadline := time.Now().Add(300 * time.Millisecond)
			for time.Now().Before(deadline) {
				if err := roundTrip(busy, []byte("x")); err != nil {
					t.Error(err)
					return
				}
				trips++
			}
		},
	}
	go func() {
		waiting.Wait()
		time.Sleep(150 * time.Millisecond)
		hung[1].SetDeadline(time.Now())
		hung[2].Close()
	}()
	if err := Run(bodies); err != nil {
		t.Fatal(err)
	}
	if err := results["own deadline"]; !isTimeout(err) || took["own deadline"] < 90*time.Millisecond || took["own deadline"] > 2*time.Second {
		t.Errorf("read past its deadline: %v after %v, want a timeout after 100ms", err, took["own deadline"])
	}
	if err := results["interrupted"]; !isTimeout(err) || took["interrupted"] > 2*time.Second {
		t.Errorf("read whose deadline another goroutine moved to now: %v after %v, want a timeout", err, took["interrupted"])
	}
	if err := results["closed"]; !errors.Is(err, net.ErrClosed) || took["closed"] > 2*time.Second {
		t.Errorf("read of a connection closed by another goroutine: %v after %v, want net.ErrClosed", err, took["closed"])
	}
	if trips < 10 {
		t.Errorf("the busy task made %d round trips while the others waited", trips)
	}
}

// While a task owns a connection, other goroutines may still read and write it
// (a driver's background reader does): they wait on their own threads.
func TestLoopOthersUseAttachedConn(t *testing.T) {
	addr := echoServer(t)
	c := dial(t, addr)
	other := make(chan error, 1)
	release := make(chan struct{})
	body := func(task *Task) {
		if err := task.Attach(c); err != nil {
			t.Error(err)
			return
		}
		go func() { other <- roundTrip(c, []byte("from another goroutine")) }()
		// Block hands the thread over while the other goroutine uses c.
		task.Block(func() { <-release })
		task.Detach(c)
	}
	go func() {
		if err := <-other; err != nil {
			t.Error(err)
		}
		close(release)
	}()
	if err := Run([]func(*Task){body}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
		t.Errorf("read of a detached connection past its deadline: %v, want a timeout", err)
	}
}

// Block runs its function off the loop's thread: the other tasks go on meanwhile.
func TestLoopBlock(t *testing.T) {
	addr := echoServer(t)
	c := dial(t, addr)
	blocked := make(chan struct{})
	var trips int
	bodies := []func(*Task){
		func(task *Task) {
			task.Block(func() {
				time.Sleep(200 * time.Millisecond)
				close(blocked)
			})
		},
		func(task *Task) {
			if err := task.Attach(c); err != nil {
				t.Error(err)
				return
			}
			defer task.Detach(c)
			for {
				select {
				case <-blocked:
					return
				default:
				}
				if err := roundTrip(c, []byte("y")); err != nil {
					t.Error(err)
					return
				}
				trips++
			}
		},
	}
	if err := Run(bodies); err != nil {
		t.Fatal(err)
	}
	if trips < 10 {
		t.Errorf("%d round trips while the other task was blocked", trips)
	}
}

func TestAttachOnlyDialedConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Attachable(a) {
		t.Error("a pipe is attachable")
	}
	err := Run([]func(*Task){func(task *Task) {
		if err := task.Attach(a); !errors.Is(err, ErrNotAttachable) {
			t.Errorf("Attach(pipe) = %v", err)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// A write larger than the socket's buffer waits in the loop for room, while the
// loop's other tasks go on.
func TestLoopWriteWaits(t *testing.T) {
	addr := echoServer(t)
	big, busy := dial(t, addr), dial(t, addr)
	raw, err := big.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096) })
	var (
		written int
		werr    error
		trips   int
		done    bool
	)
	bodies := []func(*Task){
		func(task *Task) {
			if werr = task.Attach(big); werr != nil {
				return
			}
			defer task.Detach(big)
			msg := bytes.Repeat([]byte{'s'}, 8<<20) // 's': the server reads and discards
			written, werr = big.Write(msg)
			done = true
		},
		func(task *Task) {
			if err := task.Attach(busy); err != nil {
				t.Error(err)
				return
			}
			defer task.Detach(busy)
			for !done {
				if err := roundTrip(busy, []byte("z")); err != nil {
					t.Error(err)
					return
				}
				trips++
			}
		},
	}
	if err := Run(bodies); err != nil {
		t.Fatal(err)
	}
	if werr != nil || written != 8<<20 {
		t.Errorf("wrote %d bytes: %v", written, werr)
	}
	if trips == 0 {
		t.Error("no round trip while the large write waited")
	}
}
