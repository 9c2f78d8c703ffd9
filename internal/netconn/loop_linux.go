package netconn

import (
	"errors"
	"fmt"
	"iter"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxWait bounds each epoll_wait. The wait is a raw system call (see Loop), so a
// runtime that cannot interrupt it with a signal (asynchronous preemption turned
// off) waits at most this long to stop the world.
const maxWait = 10 * time.Millisecond

// wakeSlot is the epoll data of the loop's eventfd.
const wakeSlot = -1

// Task states.
const (
	taskReady int8 = iota
	taskRunning
	taskWaiting // on a connection
	taskBlocked // in Block
	taskDone
)

// What a waiting task waits for.
const (
	waitRead int8 = iota
	waitWrite
)

// Loop runs tasks as coroutines on one locked OS thread and waits for their
// connections with epoll. The wait is a raw system call: Go's runtime sees the
// thread as running, so it neither hands the loop's P to another thread while the
// loop sleeps nor keeps its monitor thread polling for that; a signal (preemption,
// stopping the world) interrupts the wait. The loop therefore holds its P for the
// whole run: leave a P for the rest of the program (runtime.GOMAXPROCS).
type Loop struct {
	epfd   int
	wakefd int

	// cur is the task running now, nil while the loop itself runs.
	cur atomic.Pointer[Task]

	// Used on the loop's thread only.
	// now is when the loop last woke up (Unix nanoseconds): its tasks' clock.
	now   int64
	tasks []*Task
	ready []*Task
	conns []*Conn // attached connections by slot
	free  []int32
	live  int

	mu    sync.Mutex
	woken []*Task // tasks whose Block has returned
	// wakeSent is set while a wake-up is written to wakefd and not yet read.
	wakeSent atomic.Bool
}

// Task is one coroutine of a Loop: it runs its body, attaches the connections it
// uses and hands the thread over whenever it would wait for one.
type Task struct {
	loop *Loop
	// key is goroutineKey of the task's coroutine.
	key   uintptr
	next  func() (struct{}, bool)
	yield func(struct{}) bool
	state int8
	wdir  int8
	wconn *Conn
}

// Run runs each body as a task of one loop on the calling goroutine's thread, and
// returns when every body has returned. A panic in a body is raised again by Run.
func Run(bodies []func(*Task)) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	l, err := newLoop()
	if err != nil {
		return err
	}
	defer l.close()
	for _, body := range bodies {
		t := &Task{loop: l}
		// Created on the locked thread, the coroutines run only on it.
		t.next, _ = iter.Pull(func(yield func(struct{}) bool) {
			t.yield, t.key = yield, goroutineKey()
			body(t)
		})
		l.tasks = append(l.tasks, t)
		l.ready = append(l.ready, t)
	}
	l.live = len(l.tasks)
	l.now = time.Now().UnixNano()
	events := make([]unix.EpollEvent, 64)
	for l.live > 0 {
		l.runReady()
		if l.live > 0 {
			l.poll(events)
		}
	}
	return nil
}

func newLoop() (*Loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netconn: epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("netconn: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeSlot}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("netconn: epoll_ctl: %w", err)
	}
	return &Loop{epfd: epfd, wakefd: wakefd}, nil
}

func (l *Loop) close() {
	// Bodies should have detached their connections; what is left goes back to
	// waiting on its callers' threads.
	for _, c := range l.conns {
		if c != nil {
			c.detach()
		}
	}
	unix.Close(l.epfd)
	unix.Close(l.wakefd)
}

// runReady resumes every ready task in turn; each runs until it waits or ends.
func (l *Loop) runReady() {
	for i := 0; i < len(l.ready); i++ {
		t := l.ready[i]
		t.state = taskRunning
		l.cur.Store(t)
		_, ok := t.next()
		l.cur.Store(nil)
		if !ok {
			t.state = taskDone
			l.live--
		}
	}
	clear(l.ready)
	l.ready = l.ready[:0]
}

// poll waits for a connection a task waits on, a wake-up, or the earliest deadline
// of a waiting task, and makes ready every task that can go on.
func (l *Loop) poll(events []unix.EpollEvent) {
	// The clock read when the loop last woke up is recent enough to time the
	// wait: the tasks ran since, for a while at most as long as a wait.
	next := l.now + int64(maxWait)
	for _, t := range l.tasks {
		if t.state == taskWaiting {
			if dl := t.deadline(); dl != 0 {
				next = min(next, dl)
			}
		}
	}
	wait := max(next-l.now, 0)
	ms := (wait + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(ms), 0, 0)
	l.now = time.Now().UnixNano()
	n := int(r)
	if errno != 0 {
		n = 0 // EINTR: a signal; look at the deadlines and go on
	}
	check := n == 0 || l.now >= next
	for i := range n {
		ev := &events[i]
		if ev.Fd == wakeSlot {
			l.drainWake()
			check = true
			continue
		}
		c := l.conns[ev.Fd]
		if c == nil {
			continue
		}
		if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			c.readable = true
		}
		if ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			c.writable = true
		}
		if t := c.owner.Load(); t != nil && t.state == taskWaiting && t.wconn == c &&
			(t.wdir == waitRead && c.readable || t.wdir == waitWrite && c.writable) {
			l.makeReady(t)
		}
	}
	if !check {
		return
	}
	// A deadline may have passed, or been moved, or a connection closed.
	for _, t := range l.tasks {
		if t.state != taskWaiting {
			continue
		}
		if dl := t.deadline(); dl != 0 && dl <= l.now || t.wconn.closed() {
			l.makeReady(t)
		}
	}
}

func (l *Loop) makeReady(t *Task) {
	t.state = taskReady
	t.wconn = nil
	l.ready = append(l.ready, t)
}

// wake makes the loop look at its tasks again; any goroutine may call it.
func (l *Loop) wake() {
	if l.wakeSent.Swap(true) {
		return
	}
	one := uint64(1)
	unix.RawSyscall(unix.SYS_WRITE, uintptr(l.wakefd), uintptr(unsafe.Pointer(&one)), 8)
}

func (l *Loop) drainWake() {
	var buf [8]byte
	unix.RawSyscall(unix.SYS_READ, uintptr(l.wakefd), uintptr(unsafe.Pointer(&buf[0])), 8)
	// Cleared before the woken list is read: a wake-up from now on is written
	// again and seen by the next poll.
	l.wakeSent.Store(false)
	l.mu.Lock()
	woken := l.woken
	l.woken = nil
	l.mu.Unlock()
	for _, t := range woken {
		if t.state == taskBlocked {
			l.makeReady(t)
		}
	}
}

// deadline is the deadline of what t waits for, 0 for none.
func (t *Task) deadline() int64 {
	if t.wdir == waitWrite {
		return t.wconn.wdeadline.Load()
	}
	return t.wconn.rdeadline.Load()
}

// wait hands the thread back to the loop until c is ready for dir, its deadline
// passes or it is closed.
func (t *Task) wait(c *Conn, dir int8) {
	t.state, t.wconn, t.wdir = taskWaiting, c, dir
	t.yield(struct{}{})
}

// ErrNotAttachable is returned by Attach for a connection that Dial did not make.
var ErrNotAttachable = errors.New("netconn: not a connection from Dial")

// Attachable reports whether a task can attach nc: whether Dial made it.
func Attachable(nc net.Conn) bool {
	_, ok := nc.(*Conn)
	return ok
}

// Attach makes t the owner of nc, which Dial must have made: t's reads and writes
// on it wait in t's loop. t must be the running task (Attach is called from its
// body). A connection is attached to one task at a time.
func (t *Task) Attach(nc net.Conn) error {
	c, ok := nc.(*Conn)
	if !ok {
		return ErrNotAttachable
	}
	return c.attach(t)
}

// Detach ends t's ownership of nc (attached with Attach): calls on it wait on
// their own threads again. Detaching a connection that is not attached does
// nothing.
func (t *Task) Detach(nc net.Conn) {
	if c, ok := nc.(*Conn); ok && c.owner.Load() == t {
		c.detach()
	}
}

// Block runs f on another goroutine while the loop runs t's other tasks, and
// returns when f has. Anything but the task's attached connections that may make
// it wait (connecting, a backoff, a lock held elsewhere) belongs in f.
func (t *Task) Block(f func()) {
	l := t.loop
	if l.cur.Load() != t || goroutineKey() != t.key {
		f() // not called from the task: nothing to hand over
		return
	}
	t.state = taskBlocked
	go func() {
		defer func() {
			l.mu.Lock()
			l.woken = append(l.woken, t)
			l.mu.Unlock()
			l.wake()
		}()
		f()
	}()
	t.yield(struct{}{})
}

func (c *Conn) attach(t *Task) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.owner.Load() != nil {
		return errors.New("netconn: connection already attached")
	}
	l := t.loop
	if l.cur.Load() != t || goroutineKey() != t.key {
		return errors.New("netconn: Attach called outside the task")
	}
	if pc := c.nc.Load(); pc != nil {
		if err := c.takeOver(pc); err != nil {
			return err
		}
	}
	if !c.acquire() {
		return c.opError("attach", net.ErrClosed)
	}
	defer c.release()
	slot := int32(len(l.conns))
	if n := len(l.free); n > 0 {
		slot, l.free = l.free[n-1], l.free[:n-1]
	} else {
		l.conns = append(l.conns, nil)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: slot}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		l.free = append(l.free, slot)
		return fmt.Errorf("netconn: epoll_ctl: %w", err)
	}
	l.conns[slot] = c
	c.slot = slot
	// Unknown until tried: a read or write is attempted before the first wait.
	c.readable, c.writable = true, true
	c.owner.Store(t)
	return nil
}

func (c *Conn) detach() {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.owner.Load()
	if t == nil {
		return
	}
	l := t.loop
	// A closed socket has left the epoll set by itself, and its number may
	// already belong to another one: remove it only while it is open.
	if c.acquire() {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
		c.release()
	}
	l.conns[c.slot] = nil
	l.free = append(l.free, c.slot)
	c.owner.Store(nil)
}
