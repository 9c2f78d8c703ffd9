// Command rehearse rehearses zero-downtime PostgreSQL cutovers under simulated user
// load and writes a report a team can sign its migration off on.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// testcontainers-go reads this once, from the environment only; Ryuk (its reaper)
	// cannot be pulled here, and rehearse removes what it creates itself.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, streams{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}
