package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/report"
	"github.com/rehearse-dev/rehearse/result"
)

func newReportCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Re-render a result or compare two results",
	}
	var format, out string
	render := &cobra.Command{
		Use:   "render RESULT.json",
		Short: "Render a result.json as html, md or json",
		Example: `  rehearse report render runs/smoke/result.json --format md
  rehearse report render runs/smoke/result.json --format html -o report.html`,
		Args: exactArgs(1, "one result.json"),
		RunE: func(_ *cobra.Command, args []string) error {
			var fn func(io.Writer, *result.Result) error
			switch format {
			case "html":
				fn = report.HTML
			case "md":
				fn = report.Markdown
			case "json":
				fn = result.Encode
			default:
				return usageError{fmt.Errorf("--format %q: use html, md or json", format)}
			}
			render, err := renderer(args[0], format, fn)
			if err != nil {
				return err
			}
			if out == "" {
				return render(s.out)
			}
			return result.WriteFileAtomic(out, render)
		},
	}
	render.Flags().StringVar(&format, "format", "html", "html | md | json")
	render.Flags().StringVarP(&out, "output", "o", "", "write to this file instead of stdout")

	var tol, cout string
	compare := &cobra.Command{
		Use:   "compare BASE.json CANDIDATE.json",
		Short: "Set two runs side by side; exit 3 when the candidate regresses",
		Long: `Compare prints per-operation and per-phase deltas as markdown on stdout (and
writes html with -o), flags regressions beyond the tolerance and exits 3 when
there is one.

Tolerance: comma-separated key=value pairs; keys latency (relative, 10%),
latency_abs (1ms), error_rate (absolute, 0.1%), rate_drop (relative, 5%),
unavailability (100ms). A bare value such as 15% sets latency.`,
		Example: `  rehearse report compare runs/dry/result.json runs/wet/result.json
  rehearse report compare base.json cand.json --tolerance latency=15%,latency_abs=2ms -o compare.html`,
		Args: exactArgs(2, "BASE.json and CANDIDATE.json"),
		RunE: func(_ *cobra.Command, args []string) error {
			t := report.DefaultTolerance()
			if tol != "" {
				var err error
				if t, err = report.ParseTolerance(tol); err != nil {
					return err
				}
			}
			base, err := result.ReadFile(args[0])
			if err != nil {
				return err
			}
			cand, err := result.ReadFile(args[1])
			if err != nil {
				return err
			}
			c := report.Compare(base, cand, t)
			if err := c.Markdown(s.out); err != nil {
				return err
			}
			if cout != "" {
				if err := result.WriteFileAtomic(cout, c.HTML); err != nil {
					return err
				}
			}
			if c.Regressed() {
				return codeError{exitSLO, fmt.Errorf("candidate regressed: %d finding(s)", len(c.Regressions()))}
			}
			return nil
		},
	}
	compare.Flags().StringVar(&tol, "tolerance", "", "allowed regression, e.g. latency=10%,latency_abs=1ms")
	compare.Flags().StringVarP(&cout, "output", "o", "", "also write the comparison as html to this file")
	cmd.AddCommand(render, compare, newMergeCmd(s))
	return cmd
}

// renderer reads a result file, a run's or a capacity search's, and returns the
// function that renders it in format.
func renderer(path, format string, run func(io.Writer, *result.Result) error) (func(io.Writer) error, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", result.ErrNotResult, err)
	}
	if schema, err := result.SchemaOf(b); err == nil && schema == result.SchemaCapacityV1 {
		c, err := result.DecodeCapacity(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		fns := map[string]func(io.Writer, *result.CapacityResult) error{
			"html": report.CapacityHTML, "md": report.CapacityMarkdown, "json": result.EncodeCapacity,
		}
		return func(w io.Writer) error { return fns[format](w, c) }, nil
	}
	res, err := result.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return func(w io.Writer) error { return run(w, res) }, nil
}
