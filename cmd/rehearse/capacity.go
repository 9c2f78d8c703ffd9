package main

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse"
	"github.com/rehearse-dev/rehearse/report"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

func newCapacityCmd(s streams) *cobra.Command {
	var f struct {
		out, target, endpoint, dsn string
		step, hold, warmup, maxLag string
		from, to, peak             float64
		refine                     int
		withCutover, quiet         bool
	}
	cmd := &cobra.Command{
		Use:   "capacity SCENARIO.yaml",
		Short: "Find the highest rate that still meets the SLOs, and the headroom over the peak",
		Long: `Capacity runs the scenario's workload open-loop at increasing arrival rates,
holding each rate for --hold (the first --warmup of each step is left out of its
numbers), and judges every step by the scenario's SLOs. Without --to it climbs
until a step breaches an SLO or saturates the database (the achieved rate falls
behind the target, or the schedule lag p99 grows past --max-lag, 100 ms), at most
200 steps or 1,000,000/s; with --to it stops there too. It then optionally bisects
(--refine) between the last good and the first bad rate.

It reports the max sustainable rate (the highest step that met every SLO) and
whether that is the limit (limit_found: a step breached or saturated) or only a
lower bound ("at least N/s": every step asked for passed), the knee of the latency
curve (none when p99 rose less than 2× across the steps: a flat curve), and the
headroom over the scenario's declared peak (slo.peak_rate, or --peak). It writes
result.json (schema rehearse/capacity/v1), report.md and report.html (a
latency-versus-throughput chart with the SLO limits) to the output directory, with
each step's latency.hlog under steps/.

The target starts once (embedded PostgreSQL, containers, or --dsn) and is set up
once; the scenario's cutover is not run. With --with-cutover every step starts a
fresh cluster and runs the cutover for real, to find the highest rate at which the
cutover still meets its SLOs.

Defaults: --from 25% of the scenario's rate, no --to (climb to the limit), --step
x1.5, --hold 15s, --warmup 2s. Sessions scale with the rate.

Exit codes: 0 the sustainable rate is at or above the peak (without a peak: some
rate was sustainable); 3 it is below (or no rate was); 2 invalid input; 1 runtime
failure; 130 interrupted (the steps so far are written).`,
		Example: `  rehearse capacity scenarios/smoke.yaml --out runs/cap
  rehearse capacity scenarios/smoke.yaml --to 600                 # is 600/s sustainable? ("at least 600/s")
  rehearse capacity scenarios/smoke.yaml --peak 1500 --from 500 --step 250 --hold 20s
  rehearse capacity scenarios/smoke.yaml --step x2 --refine 2      # coarse climb, then bisect
  rehearse capacity scenarios/smoke.yaml --with-cutover --hold 30s # the cutover in every step
  rehearse capacity scenarios/tpcb.yaml --dsn postgres://postgres@127.0.0.1:5432/bench`,
		Args: exactArgs(1, "one scenario file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := scenarios.LoadFile(args[0])
			if err != nil {
				return err
			}
			warnRemoteMetrics(s.err, cmd, sc)
			cfg := rehearse.CapacityConfig{From: f.from, To: f.to, Peak: f.peak, Refine: f.refine, WithCutover: f.withCutover}
			fl := cmd.Flags()
			for _, v := range []struct {
				name string
				val  float64
			}{{"from", f.from}, {"to", f.to}, {"peak", f.peak}} {
				// In the library 0 means "the default"; typed on the command line it
				// is a rate, and a bad one.
				if fl.Changed(v.name) && v.val == 0 {
					return usageError{fmt.Errorf("--%s 0: must be a positive rate in actions/s", v.name)}
				}
			}
			if f.step != "" {
				if cfg.Step, err = rehearse.ParseRateStep(f.step); err != nil {
					return flagErrors(cmd, err)
				}
			}
			var maxLag time.Duration
			for _, d := range []struct {
				name, val string
				dst       *time.Duration
			}{{"hold", f.hold, &cfg.Hold}, {"warmup", f.warmup, &cfg.Warmup}, {"max-lag", f.maxLag, &maxLag}} {
				if d.val == "" {
					continue
				}
				v, err := scenarios.ParseDuration(d.val)
				if err != nil {
					return usageError{fmt.Errorf("--%s: %w", d.name, err)}
				}
				if v <= 0 {
					return usageError{fmt.Errorf("--%s %s: must be a positive duration, e.g. 15s", d.name, d.val)}
				}
				*d.dst = v.D()
			}
			cfg.MaxLagMs = float64(maxLag.Microseconds()) / 1000
			if f.out == "" {
				f.out = rehearse.DefaultOutDir(sc, time.Now())
			}
			opts := []rehearse.Option{
				rehearse.WithOut(f.out), rehearse.WithTarget(f.target), rehearse.WithEndpoint(f.endpoint), rehearse.WithDSN(f.dsn),
			}
			if !f.quiet {
				opts = append(opts, rehearse.WithProgress(s.err), rehearse.WithLog(s.err))
			}
			res, err := rehearse.Capacity(cmd.Context(), sc, cfg, opts...)
			if res != nil {
				summarizeCapacity(s.out, res, f.out)
			}
			return flagErrors(cmd, err)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.out, "out", "", "output directory (default runs/<UTC timestamp>-<scenario>)")
	fl.StringVar(&f.target, "target", "", "local | container (default: the scenario's, else local)")
	fl.StringVar(&f.endpoint, "endpoint", "", "cluster endpoint mode with --with-cutover: dns | proxy (default: the scenario's)")
	fl.StringVar(&f.dsn, "dsn", "", "run against this existing PostgreSQL instead of starting one")
	fl.Float64Var(&f.from, "from", 0, "first rate, actions/s (default 25% of the scenario's rate)")
	fl.Float64Var(&f.to, "to", 0, "highest rate tried, actions/s (default: climb until a step breaches or saturates)")
	fl.StringVar(&f.step, "step", "", `climb by an increment ("250") or a factor ("x1.5", the default)`)
	fl.StringVar(&f.hold, "hold", "", "how long each step holds its rate, whole seconds (default 15s)")
	fl.StringVar(&f.warmup, "warmup", "", "start of each step left out of its numbers (default 2s)")
	fl.StringVar(&f.maxLag, "max-lag", "", "schedule lag p99 above which a step counts as saturated (default 100ms)")
	fl.IntVar(&f.refine, "refine", 0, "after the climb stops, bisect this many times between the last good and first bad rate")
	fl.Float64Var(&f.peak, "peak", 0, "today's peak rate, actions/s (default: the scenario's slo.peak_rate)")
	fl.BoolVar(&f.withCutover, "with-cutover", false, "run the scenario's cutover in every step, on a fresh cluster each")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress or log on stderr")
	return cmd
}

// summarizeCapacity prints the verdict and where the report is.
func summarizeCapacity(w io.Writer, res *result.CapacityResult, out string) {
	k := res.Capacity
	fmt.Fprintln(w, report.CapacityVerdict(res))
	if k.KneeRate != nil && *k.KneeRate > 0 {
		fmt.Fprintf(w, "  knee of the latency curve at %.0f/s\n", *k.KneeRate)
	}
	if k.StoppedBecause != "" {
		fmt.Fprintf(w, "  stopped: %s\n", k.StoppedBecause)
	}
	fmt.Fprintf(w, "report: %s\n", filepath.Join(out, rehearse.HTMLFile))
}
