package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse"
	"github.com/rehearse-dev/rehearse/internal/shard"
	"github.com/rehearse-dev/rehearse/migrate/container"
	"github.com/rehearse-dev/rehearse/report"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

func newRunCmd(s streams) *cobra.Command {
	var f struct {
		out, mode, target, endpoint, dsn string
		image, confirm, awsURL           string
		duration                         string
		metricsAddr, metricsLinger       string
		shard, barrierTimeout            string
		sessions                         int
		rate                             float64
		quiet, keep, rollback            bool
		metricsAllowRemote               bool
	}
	cmd := &cobra.Command{
		Use:   "run SCENARIO.yaml",
		Short: "Run a rehearsal: the scenario's load (and cutover) against PostgreSQL",
		Long: `Run starts the target (by default an embedded PostgreSQL from this machine's
binaries, in a work directory under the output directory), seeds the workload, runs
the load from simulated sessions, checks integrity and writes result.json,
report.md, report.html and latency.hlog to the output directory.

Flags override the scenario file. Ctrl-C stops new arrivals, lets in-flight
operations finish within the grace period and writes the results so far, marked
interrupted (exit 130).`,
		Example: `  rehearse run scenarios/smoke.yaml
  rehearse run scenarios/smoke.yaml --duration 15s --sessions 100000 --out runs/100k
  rehearse run scenarios/tpcb.yaml --dsn postgres://postgres@127.0.0.1:5432/bench --duration 15s
  rehearse run scenarios/smoke.yaml --mode wet --endpoint proxy   # perform the cutover through PgBouncer
  rehearse run scenarios/smoke.yaml --mode wet --rollback          # ... and fail back after validation
  rehearse run scenarios/smoke.yaml --target container --mode wet  # in Docker containers
  rehearse run scenarios/aurora.yaml --target aurora --mode wet --confirm rehearse-demo --aws-endpoint-url http://127.0.0.1:4566
  rehearse run scenarios/smoke.yaml --keep      # leave the embedded server running
  rehearse run scenarios/smoke.yaml --metrics-addr 127.0.0.1:9464 --metrics-linger 30s  # live Prometheus metrics
  rehearse run scenarios/smoke.yaml --metrics-addr 0.0.0.0:9464 --metrics-allow-remote    # ... that other machines can scrape
  rehearse run scenarios/smoke.yaml --mode wet --shard 0/3 --out runs/x/shard-0   # one of three shards (also 1/3, 2/3)`,
		Args: exactArgs(1, "one scenario file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := loadWithMetricsFlags(args[0], f.metricsAllowRemote)
			if err != nil {
				return err
			}
			if err := telemetryFlags(cmd, sc, f.metricsAddr, f.metricsLinger, f.metricsAllowRemote); err != nil {
				return err
			}
			warnRemoteMetrics(s.err, cmd, sc)
			if f.out == "" {
				f.out = rehearse.DefaultOutDir(sc, time.Now())
			}
			opts := []rehearse.Option{
				rehearse.WithOut(f.out), rehearse.WithMode(f.mode), rehearse.WithTarget(f.target),
				rehearse.WithEndpoint(f.endpoint), rehearse.WithDSN(f.dsn), rehearse.WithKeep(f.keep),
				rehearse.WithRollback(f.rollback), rehearse.WithImage(f.image),
				rehearse.WithConfirm(f.confirm), rehearse.WithAWSEndpointURL(f.awsURL),
			}
			if f.duration != "" {
				d, err := scenarios.ParseDuration(f.duration)
				if err != nil {
					return usageError{fmt.Errorf("--duration: %w", err)}
				}
				opts = append(opts, rehearse.WithDuration(d.D()))
			}
			if cmd.Flags().Changed("sessions") {
				opts = append(opts, rehearse.WithSessions(f.sessions))
			}
			if cmd.Flags().Changed("rate") {
				opts = append(opts, rehearse.WithRate(f.rate))
			}
			shardOpts, err := shardFlags(cmd, f.shard, f.barrierTimeout, os.Getenv)
			if err != nil {
				return err
			}
			opts = append(opts, shardOpts...)
			if !f.quiet {
				opts = append(opts, rehearse.WithProgress(s.err), rehearse.WithLog(s.err))
			}
			// --keep says what it kept and where its password is, even with --quiet.
			opts = append(opts, rehearse.WithNotices(s.err))
			res, err := rehearse.Run(cmd.Context(), sc, opts...)
			if res != nil {
				summarize(s.out, res, f.out)
			}
			return flagErrors(cmd, err)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.out, "out", "", "output directory (default runs/<UTC timestamp>-<scenario>)")
	fl.StringVar(&f.mode, "mode", "dry", "dry: load and read-only checks; wet: perform the cutover")
	fl.StringVar(&f.target, "target", "", "local | container | aurora (default: the scenario's, else local)")
	fl.StringVar(&f.endpoint, "endpoint", "", "cluster endpoint mode: dns | proxy (default: the scenario's)")
	fl.StringVar(&f.dsn, "dsn", "", "run against this existing PostgreSQL instead of starting one")
	fl.StringVar(&f.duration, "duration", "", "override load.duration, e.g. 15s or 2m")
	fl.IntVar(&f.sessions, "sessions", 0, "override load.sessions")
	fl.Float64Var(&f.rate, "rate", 0, "override load.rate (actions per second)")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress line or log on stderr")
	fl.BoolVar(&f.keep, "keep", false, "leave the embedded PostgreSQL running and print its DSN")
	fl.StringVar(&f.image, "image", os.Getenv(container.ImageEnv), "PostgreSQL image for --target container (env "+container.ImageEnv+"; default postgres:15, else the image `make image` builds)")
	fl.StringVar(&f.confirm, "confirm", "", "aurora: the cluster id a wet run may change (required with --mode wet)")
	fl.StringVar(&f.awsURL, "aws-endpoint-url", "", "aurora: RDS API endpoint, e.g. the emulator's http://127.0.0.1:4566")
	fl.BoolVar(&f.rollback, "rollback", false, "after validation, rehearse the failback to the old writer")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this loopback host:port while the run lasts, e.g. 127.0.0.1:9464 (default: the scenario's telemetry.metrics_addr, else off)")
	fl.BoolVar(&f.metricsAllowRemote, "metrics-allow-remote", false, "permit a --metrics-addr (or telemetry.metrics_addr) off loopback, e.g. 0.0.0.0:9464, that other machines can reach; the run says so on stderr (default: the scenario's telemetry.metrics_allow_remote)")
	fl.StringVar(&f.metricsLinger, "metrics-linger", "", "keep serving the final metrics this long after the run, e.g. 30s (default: the scenario's telemetry.metrics_linger)")
	fl.StringVar(&f.shard, "shard", "", "run shard INDEX/COUNT of a run spread over COUNT processes or pods against one target, e.g. 0/3 (shard 0 coordinates; default: from "+shard.EnvIndex+" and "+shard.EnvShards+" when set)")
	fl.StringVar(&f.barrierTimeout, "barrier-timeout", "", "with --shard: how long the shards wait for each other at the start (default "+shard.DefaultBarrierTimeout.String()+")")
	return cmd
}

// loadWithMetricsFlags loads the scenario file; --metrics-allow-remote permits the
// file's own telemetry.metrics_addr off loopback.
func loadWithMetricsFlags(path string, allowRemote bool) (*scenarios.Scenario, error) {
	if !allowRemote {
		return scenarios.LoadFile(path)
	}
	return scenarios.LoadFileWith(path, func(sc *scenarios.Scenario) { sc.Telemetry.MetricsAllowRemote = true })
}

// telemetryFlags sets the scenario's telemetry from --metrics-addr,
// --metrics-allow-remote and --metrics-linger, and names the flag in a problem
// with its value.
func telemetryFlags(cmd *cobra.Command, sc *scenarios.Scenario, addr, linger string, allowRemote bool) error {
	fl := cmd.Flags()
	if fl.Changed("metrics-allow-remote") {
		sc.Telemetry.MetricsAllowRemote = allowRemote
	}
	if fl.Changed("metrics-linger") {
		d, err := scenarios.ParseDuration(linger)
		if err != nil {
			return usageError{fmt.Errorf("--metrics-linger %s: %w", linger, err)}
		}
		sc.Telemetry.MetricsLinger = d
	}
	if fl.Changed("metrics-addr") {
		sc.Telemetry.MetricsAddr = addr
	}
	for _, e := range sc.Validate() {
		var fe scenarios.FieldError
		if !errors.As(e, &fe) {
			continue
		}
		switch {
		case fe.Field == "telemetry.metrics_addr" && fl.Changed("metrics-addr"):
			msg := strings.Replace(fe.Msg, "set telemetry.metrics_allow_remote: true (--metrics-allow-remote)", "add --metrics-allow-remote", 1)
			return usageError{fmt.Errorf("--metrics-addr %s: %s", addr, msg)}
		case fe.Field == "telemetry.metrics_addr" && fl.Changed("metrics-allow-remote"):
			// --metrics-allow-remote=false against the file's remote address.
			return usageError{fmt.Errorf("--metrics-allow-remote=false: %s: %s", fe.Field, fe.Msg)}
		case fe.Field == "telemetry.metrics_linger" && fl.Changed("metrics-linger"):
			return usageError{fmt.Errorf("--metrics-linger %s: %s", linger, fe.Msg)}
		}
	}
	return nil
}

// warnRemoteMetrics says on w (stderr, even with --quiet) that the run's metrics
// are served beyond this machine, when they are.
func warnRemoteMetrics(w io.Writer, cmd *cobra.Command, sc *scenarios.Scenario) {
	t := sc.Telemetry
	if !t.MetricsRemote() {
		return
	}
	why := "telemetry.metrics_allow_remote"
	if cmd.Flags().Changed("metrics-allow-remote") {
		why = "--metrics-allow-remote"
	}
	fmt.Fprintf(w, "warning: metrics are exposed beyond this machine at http://%s/metrics (%s): anyone who can reach that address can read this run's metrics\n", t.MetricsAddr, why)
}

// summarize prints the verdict and where the report is.
func summarize(w io.Writer, res *result.Result, out string) {
	v := report.PageVerdict(res)
	rate := fmt.Sprintf("%.1f/s achieved of %.1f/s target", res.Load.AchievedRate, res.Load.TargetRate)
	if res.Load.Model == "closed" {
		rate = fmt.Sprintf("%.1f/s on %d connections (closed loop)", res.Load.AchievedRate, res.Load.PoolSize)
	}
	fmt.Fprintf(w, "%s  %s  %d transactions (%d failed, %d failed attempts, %d ambiguous), %s\n",
		v.Label(), res.Scenario.Name, res.Totals.Transactions, res.Totals.Failed, res.Totals.FailedAttempts, res.Totals.Ambiguous, rate)
	for _, r := range v.Reasons {
		fmt.Fprintf(w, "  - %s\n", r)
	}
	if line := shardLine(res); line != "" {
		fmt.Fprintln(w, line)
	}
	if line := cutoverLine(res); line != "" {
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "report: %s\n", filepath.Join(out, rehearse.HTMLFile))
}

// cutoverLine says in one line what the cutover did and what users felt: the writer
// change, the longest write stall and the lost acknowledged writes.
func cutoverLine(res *result.Result) string {
	m := res.Migration
	if m == nil {
		return ""
	}
	writer := fmt.Sprintf("writer %s → %s", orDash(m.WriterBefore), orDash(m.WriterAfter))
	switch {
	case m.Strategy == "blue_green" && m.Outcome == "completed" && m.WriterAfter == m.WriterBefore:
		// Aurora moves the names: green's writer took blue's.
		writer = fmt.Sprintf("writer moved to green (now named %s; blue's is -old1)", orDash(m.WriterAfter))
	case m.WriterAfter == "" || m.WriterAfter == m.WriterBefore:
		writer = fmt.Sprintf("writer %s (unchanged)", orDash(m.WriterBefore))
	}
	lost := "lost acknowledged writes not checked"
	if res.Integrity.Checked {
		lost = fmt.Sprintf("%d lost acknowledged writes", res.Integrity.LostAcknowledgedWrites)
	}
	recovery := ""
	if m.RecoveryS != nil {
		recovery = fmt.Sprintf(", users recovered %.1f s after it", *m.RecoveryS)
		if !m.Recovered {
			recovery = fmt.Sprintf(", users not recovered by the run's end (%.1f s after it)", *m.RecoveryS)
		}
	}
	line := fmt.Sprintf("cutover %s (%s): %s, %d failed operations, longest write stall %.0f ms%s, %s",
		m.Outcome, res.Mode, writer, res.Totals.Failed, res.Availability.WriteUnavailableMaxMs, recovery, lost)
	if c := res.Availability.Cycles; c != nil {
		line += fmt.Sprintf("\n  %d cycles: write stall min %.0f / p50 %.0f / p90 %.0f / max %.0f ms", c.Count,
			c.WriteUnavailableMs.Min, c.WriteUnavailableMs.P50, c.WriteUnavailableMs.P90, c.WriteUnavailableMs.Max)
		if r := c.RecoveryS; r != nil {
			line += fmt.Sprintf("; recovery p50 %.1f s, max %.1f s", r.P50, r.Max)
		}
	}
	if a := m.Abort; a != nil {
		line += fmt.Sprintf("\n  aborted by a guardrail at %.1f s during %s: %s", a.AtS, a.During, a.Condition)
	}
	for _, g := range m.Guardrails {
		if g.WouldFire && g.AtS != nil {
			line += fmt.Sprintf("\n  guardrail would have fired (dry run) at %.1f s: %s", *g.AtS, g.Condition)
		}
	}
	return line
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
