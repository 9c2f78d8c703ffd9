package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// measured is one process run: its exit, CPU and peak memory.
type measured struct {
	Command string
	Wall    time.Duration
	UserS   float64
	SysS    float64
	MaxRSS  int64 // bytes
	Stdout  string
	Exit    int
}

func (m measured) CPU() float64 { return m.UserS + m.SysS }

// runMeasured runs a command and reads its resource usage from the kernel (the
// child's own rusage: user+sys CPU and peak RSS), so nothing else on the machine is
// counted.
func runMeasured(ctx context.Context, dir string, log io.Writer, name string, args ...string) (measured, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = io.MultiWriter(&out, log)
	m := measured{Command: shellQuote(append([]string{name}, args...))}
	fmt.Fprintf(log, "+ %s\n", m.Command)
	start := time.Now()
	err := cmd.Run()
	m.Wall = time.Since(start)
	m.Stdout = out.String()
	if cmd.ProcessState != nil {
		m.Exit = cmd.ProcessState.ExitCode()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			m.UserS = time.Duration(ru.Utime.Nano()).Seconds()
			m.SysS = time.Duration(ru.Stime.Nano()).Seconds()
			m.MaxRSS = ru.Maxrss * 1024
		}
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return m, fmt.Errorf("%s: %w", m.Command, err)
	}
	return m, nil
}

func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$&|;<>()*?") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
