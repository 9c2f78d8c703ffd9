package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/rehearse-dev/rehearse"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// profileCmd runs one scenario in-process through the library entry point,
// rehearse.Run, with the CPU profiler on for the whole run and a heap profile taken
// at its end. The CLI has no profiling flags; this is the way to profile a run.
func profileCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	dsn := fs.String("dsn", "", "PostgreSQL to run against (required)")
	duration := fs.Duration("duration", 15*time.Second, "load duration")
	sessions := fs.Int("sessions", 0, "override the scenario's sessions (0: keep)")
	rate := fs.Float64("rate", 0, "override the scenario's rate (0: keep)")
	out := fs.String("out", "", "output directory for the run (default: a temporary one)")
	cpu := fs.String("cpuprofile", "cpu.pprof", "CPU profile file")
	heap := fs.String("memprofile", "heap.pprof", "heap profile file (\"\": none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *dsn == "" {
		return errors.New("usage: bench profile --dsn DSN [--duration D] [--cpuprofile F] [--memprofile F] SCENARIO.yaml")
	}
	sc, err := scenarios.LoadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	dir := *out
	if dir == "" {
		if dir, err = os.MkdirTemp("", "rehearse-profile-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	opts := []rehearse.Option{rehearse.WithDSN(*dsn), rehearse.WithDuration(*duration), rehearse.WithOut(dir)}
	if *sessions > 0 {
		opts = append(opts, rehearse.WithSessions(*sessions))
	}
	if *rate > 0 {
		opts = append(opts, rehearse.WithRate(*rate))
	}
	f, err := os.Create(*cpu)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	res, runErr := rehearse.Run(ctx, sc, opts...)
	pprof.StopCPUProfile()
	if *heap != "" {
		hf, err := os.Create(*heap)
		if err != nil {
			return err
		}
		runtime.GC()
		if err := pprof.WriteHeapProfile(hf); err != nil {
			hf.Close()
			return err
		}
		if err := hf.Close(); err != nil {
			return err
		}
	}
	if res != nil {
		fmt.Fprintf(stdout, "%d transactions in %.1fs: %.1f/s\n", res.Totals.Transactions, res.DurationS, float64(res.Totals.Transactions)/res.DurationS)
	}
	fmt.Fprintf(stdout, "CPU profile: %s (go tool pprof -top %s)\n", *cpu, *cpu)
	return runErr
}
