// Package nodestat measures a PostgreSQL node from the machine it runs on: the CPU,
// memory and I/O of its processes (the postmaster and its children, from /proc) and
// what the server itself counts (pg_stat_database, pg_stat_activity,
// pg_stat_replication, the WAL position, checkpoints). Both the run's database
// sampler and the RDS API emulator's CloudWatch stand-in read nodes through it.
//
// Rates need two samples: a meter keeps the previous counters and reports rates
// from the second sample on.
package nodestat

import (
	"errors"
	"time"
)

// ErrUnsupported is returned where /proc is not available (not Linux).
var ErrUnsupported = errors.New("nodestat: process statistics need Linux's /proc")

// ProcUsage is what a node's processes used over the interval since the previous
// sample.
type ProcUsage struct {
	// CPUCores is CPU time per second of wall time (1.5: one and a half cores busy),
	// the postmaster's, its children's and that of the children it has reaped.
	CPUCores float64
	// RSS is resident memory in bytes now: each process's private and file-backed
	// pages plus the shared memory segment once (summing every backend's RSS would
	// count shared_buffers once per backend).
	RSS int64
	// ReadOps and WriteOps are read and write system calls per second (/proc's
	// syscr and syscw) of the processes alive at both samples.
	ReadOps, WriteOps float64
	// IO is false when the processes' I/O counters could not be read (another
	// user's processes, without the privilege to read them).
	IO bool
	// Rates is false on a node's first sample (and after its postmaster changed):
	// only RSS is meaningful then.
	Rates bool
}

// ProcMeter measures one node's process tree, sample after sample. The zero value
// is ready to use; it is not safe for concurrent use.
type ProcMeter struct {
	pid   int
	at    time.Time
	cpu   time.Duration
	io    map[int]ioCount
	ready bool
}

// ioCount is one process's cumulative read and write system calls.
type ioCount struct{ r, w int64 }

// Sample reads the tree rooted at the postmaster pid at time now and returns its
// usage since the previous sample.
func (m *ProcMeter) Sample(pid int, now time.Time) (ProcUsage, error) {
	t, err := readTree(pid)
	if err != nil {
		m.ready = false
		return ProcUsage{}, err
	}
	u := ProcUsage{RSS: t.rss, IO: t.io != nil}
	if m.ready && m.pid == pid {
		if dt := now.Sub(m.at).Seconds(); dt > 0 {
			u.Rates = true
			u.CPUCores = max(0, (t.cpu-m.cpu).Seconds()/dt)
			var r, w int64
			for p, c := range t.io {
				if prev, ok := m.io[p]; ok {
					r += max(0, c.r-prev.r)
					w += max(0, c.w-prev.w)
				}
			}
			u.ReadOps, u.WriteOps = float64(r)/dt, float64(w)/dt
		}
	}
	m.pid, m.at, m.cpu, m.io, m.ready = pid, now, t.cpu, t.io, true
	return u, nil
}

// tree is one reading of a process tree.
type tree struct {
	cpu time.Duration // cumulative: live processes plus the children the root reaped
	rss int64
	io  map[int]ioCount // nil when no process's counters were readable
}
