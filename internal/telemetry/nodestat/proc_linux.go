//go:build linux

package nodestat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times: USER_HZ, which the kernel
// fixes at 100 for user space on every architecture Linux runs PostgreSQL on.
const clockTick = 10 * time.Millisecond

// maxDepth bounds the walk down a tree: a postmaster's children have none that
// matter, but a misread pid must not walk the whole system.
const maxDepth = 3

// readTree reads the process tree rooted at pid.
func readTree(pid int) (tree, error) {
	if pid <= 0 {
		return tree{}, fmt.Errorf("nodestat: no process (pid %d)", pid)
	}
	root, err := readStat(pid)
	if err != nil {
		return tree{}, fmt.Errorf("nodestat: read process %d: %w", pid, err)
	}
	t := tree{cpu: root.cpu + root.reaped, io: map[int]ioCount{}}
	var anon, shared int64
	var walk func(p int, st procStat, depth int)
	walk = func(p int, st procStat, depth int) {
		if m, err := readMem(p); err == nil {
			anon += m.anon
			// Shared memory and mapped files (the server binary, libraries) are the
			// same pages in every backend: count them once.
			shared = max(shared, m.shared)
		}
		if c, err := readIO(p); err == nil {
			t.io[p] = c
		}
		if depth >= maxDepth {
			return
		}
		for _, c := range children(p) {
			cst, err := readStat(c)
			if err != nil {
				continue // it exited since it was listed
			}
			t.cpu += cst.cpu
			walk(c, cst, depth+1)
		}
	}
	walk(pid, root, 0)
	t.rss = anon + shared
	if len(t.io) == 0 {
		t.io = nil
	}
	return t, nil
}

// procStat is what readStat takes from /proc/<pid>/stat.
type procStat struct {
	ppid   int
	cpu    time.Duration // utime + stime
	reaped time.Duration // cutime + cstime: the children it has waited for
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// The command name is in parentheses and may hold spaces and parentheses: the
	// fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14-17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("unexpected /proc/%d/stat: %d fields", pid, len(f)+2)
	}
	n := func(j int) int64 { v, _ := strconv.ParseInt(string(f[j]), 10, 64); return v }
	return procStat{
		ppid:   int(n(1)),
		cpu:    time.Duration(n(11)+n(12)) * clockTick,
		reaped: time.Duration(n(13)+n(14)) * clockTick,
	}, nil
}

// mem is a process's resident memory by kind, in bytes: its own (anonymous) and
// what it shares (mapped files and shared memory).
type mem struct{ anon, shared int64 }

// readMem reads /proc/<pid>/statm, which the kernel writes far more cheaply than
// status: resident and shared pages.
func readMem(pid int) (mem, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return mem{}, err
	}
	f := bytes.Fields(b)
	if len(f) < 3 {
		return mem{}, fmt.Errorf("unexpected /proc/%d/statm", pid)
	}
	resident, _ := strconv.ParseInt(string(f[1]), 10, 64)
	shared, _ := strconv.ParseInt(string(f[2]), 10, 64)
	page := int64(os.Getpagesize())
	return mem{anon: max(0, resident-shared) * page, shared: shared * page}, nil
}

func readIO(pid int) (ioCount, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return ioCount{}, err
	}
	var c ioCount
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseInt(string(f[1]), 10, 64)
		switch string(f[0]) {
		case "syscr:":
			c.r = v
		case "syscw:":
			c.w = v
		}
	}
	return c, nil
}

// children lists pid's child processes: from /proc/<pid>/task/<pid>/children where
// the kernel offers it, else by scanning every process's parent.
func children(pid int) []int {
	p := strconv.Itoa(pid)
	b, err := os.ReadFile("/proc/" + p + "/task/" + p + "/children")
	if err == nil {
		var out []int
		for _, f := range bytes.Fields(b) {
			if c, err := strconv.Atoi(string(f)); err == nil {
				out = append(out, c)
			}
		}
		return out
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(c); err == nil && st.ppid == pid {
			out = append(out, c)
		}
	}
	return out
}
