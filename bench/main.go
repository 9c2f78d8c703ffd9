// Command bench measures rehearse against pgbench on one fresh local PostgreSQL and
// writes BENCHMARKS.md; `make bench` runs it. `bench profile` profiles one run
// in-process (see profile.go).
//
//	go run ./bench run [flags]                      the full comparison (make bench)
//	go run ./bench profile --dsn DSN SCENARIO.yaml  CPU and heap profile of one run
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: bench run|profile [flags]")
	}
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:], stdout, stderr)
	case "profile":
		return profileCmd(ctx, args[1:], stdout)
	}
	return fmt.Errorf("unknown command %q: use run or profile", args[0])
}
