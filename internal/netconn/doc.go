// Package netconn runs many client connections on one OS thread, as pgbench's threads
// do, while the code using each connection stays ordinary blocking Go code (pgx).
//
// A Loop runs tasks as coroutines on a thread of its own. A connection dialed with
// Dial is an ordinary net.Conn (Go's network poller) until a task attaches it: from
// then on the task's reads and writes are non-blocking system calls, and a read that
// would wait hands the thread to the next task whose connection has data; the thread
// sleeps in one epoll_wait only when none has. A round trip then costs a send, a
// receive and a share of one epoll_wait, with no goroutine hand-off between threads
// and no wake-up of Go's scheduler: what Go's netpoller spends per round trip
// (a read that returns EAGAIN, parking, epoll_wait on another thread, waking a
// thread to run the goroutine) is what made a Go load generator cost more CPU per
// transaction than pgbench.
//
// A task must not block on anything but its attached connections: a sleep, a lock
// held elsewhere or a connection that is not attached would stall every task of its
// loop. Task.Block runs such a wait (connecting, backing off) on another goroutine
// while the loop goes on.
//
// Where the platform has no epoll, Dial returns the dialer's connection and Run runs
// each task as a goroutine.
package netconn
