package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse"
	"github.com/rehearse-dev/rehearse/report"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// Exit codes (DESIGN.md).
const (
	exitOK          = 0
	exitRuntime     = 1
	exitInput       = 2
	exitSLO         = 3
	exitInterrupted = 130
)

// streams are the command's standard streams, injected so tests run in-process.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// usageError marks a command-line usage problem (exit 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

// codeError attaches an exit code to an error that has no sentinel of its own
// (e.g. a comparison that found a regression).
type codeError struct {
	code int
	err  error
}

func (c codeError) Error() string { return c.err.Error() }
func (c codeError) Unwrap() error { return c.err }

func newRootCmd(s streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "rehearse",
		Short: "Rehearse zero-downtime PostgreSQL cutovers under simulated user load",
		Long: `rehearse replays banking-style transactional traffic from tens of thousands of
simulated user sessions against PostgreSQL, optionally while a cutover runs, and
records latency histograms, errors by class, unavailability windows and a
data-integrity verdict into result.json, report.md, report.html and latency.hlog.

Exit codes: 0 success and SLOs met; 1 runtime failure; 2 invalid input or usage;
3 an SLO was breached (or compare found a regression); 130 interrupted (results so
far are still written).`,
		Example: `  rehearse run scenarios/smoke.yaml
  rehearse run scenarios/smoke.yaml --duration 15s --out runs/smoke
  rehearse run scenarios/tpcb.yaml --dsn postgres://postgres@127.0.0.1:5432/bench --duration 15s
  rehearse scenario validate scenarios/banking.yaml
  rehearse report compare runs/a/result.json runs/b/result.json`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRunCmd(s), newPlanCmd(s), newScenarioCmd(s), newReportCmd(s), newVersionCmd(s), newCapacityCmd(s), newAuroraEmulatorCmd(s))
	return root
}

// execute runs the CLI and returns the process exit code.
func execute(ctx context.Context, s streams, args []string) int {
	root := newRootCmd(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	code := exitCode(err)
	if err != nil && code != exitSLO {
		fmt.Fprintf(s.err, "rehearse: %v\n", err)
	}
	return code
}

func exitCode(err error) int {
	var ce codeError
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ce):
		return ce.code
	case errors.Is(err, rehearse.ErrInterrupted):
		return exitInterrupted
	case errors.Is(err, rehearse.ErrSLOBreached):
		return exitSLO
	case errors.As(err, &ue), errors.Is(err, rehearse.ErrInvalidInput), errors.Is(err, scenarios.ErrInvalid),
		errors.Is(err, result.ErrNotResult), errors.Is(err, result.ErrSchema), errors.Is(err, report.ErrTolerance):
		return exitInput
	}
	return exitRuntime
}

// exactArgs is cobra.ExactArgs with a usage error (exit 2) that says what is expected.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("expected %s, got %d argument(s)", what, len(args))}
		}
		return nil
	}
}

func newVersionCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print rehearse's version",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintf(s.out, "rehearse %s\n", rehearse.Version())
			return nil
		},
	}
}
