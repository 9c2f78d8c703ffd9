package main

import (
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
)

// supervise initialises PGDATA when it is empty and runs the server.
func supervise(args []string, log func(string, ...any)) int {
	if err := initData(log); err != nil {
		log("%v", err)
		return 1
	}

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGCHLD)
	sv := &supervisor{args: args, log: log}
	if exists(holdFile) {
		log("hold file %s present: waiting for `rehearse-pg start` or `rejoin`", holdFile)
	} else {
		sv.start()
		if sv.child == 0 {
			return 1
		}
	}
	for sig := range sigs {
		switch sig {
		case syscall.SIGCHLD:
			if code, exit := sv.reap(); exit {
				return code
			}
		case syscall.SIGUSR1:
			if sv.child == 0 && !sv.stopping {
				sv.start()
			}
		default:
			if exit := sv.forward(sig); exit {
				return 0
			}
		}
	}
	return 0
}

// supervisor is PID 1's view of the server it runs.
type supervisor struct {
	args []string
	log  func(string, ...any)
	// child is the postmaster's pid, 0 when it is not running.
	child int
	// stopping is set once a signal that stops the server was forwarded: the
	// supervisor then exits with the server, hold file or not.
	stopping bool
}

// start starts the server as the postgres user. On failure it logs why and child
// stays 0.
func (sv *supervisor) start() {
	cmd := exec.Command(filepath.Join(pgBin, "postgres"), append([]string{"-D", pgdata()}, sv.args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Dir = "/"
	cmd, err := asPostgres(cmd)
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		sv.log("start postgres: %v", err)
		return
	}
	// Never cmd.Wait: reap collects every child with wait4(-1).
	sv.child = cmd.Process.Pid
	sv.log("postgres started (pid %d)", sv.child)
}

// reap collects every child that has exited, orphans included: as PID 1 the
// supervisor inherits them. When the postmaster is among them it reports the
// server's exit status and true, unless the hold file exists and no stopping signal
// was forwarded (the server was stopped with `rehearse-pg stop`): then the
// supervisor stays up for a later start.
func (sv *supervisor) reap() (code int, exit bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return 0, false
		}
		if pid != sv.child {
			continue
		}
		sv.child = 0
		code := ws.ExitStatus()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		if !sv.stopping && exists(holdFile) {
			sv.log("postgres exited (status %d); held", code)
			continue
		}
		sv.log("postgres exited (status %d)", code)
		return code, true
	}
}

// forward passes SIGTERM, SIGINT, SIGQUIT or SIGHUP on to the server. With no
// server running a stopping signal has nothing left to stop and the supervisor
// exits (true), while SIGHUP is ignored.
func (sv *supervisor) forward(sig os.Signal) (exit bool) {
	if sv.child == 0 {
		return sig != syscall.SIGHUP
	}
	if sig != syscall.SIGHUP {
		sv.stopping = true
	}
	_ = syscall.Kill(sv.child, sig.(syscall.Signal))
	return false
}
