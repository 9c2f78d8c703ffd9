package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse"
	"github.com/rehearse-dev/rehearse/report"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

func newMergeCmd(s streams) *cobra.Command {
	var out, wait string
	cmd := &cobra.Command{
		Use:   "merge DIR... --out MERGED",
		Short: "Merge the shards of a sharded run into one exact result",
		Long: `Merge reads the output directories of the shards of one run (rehearse run
--shard INDEX/COUNT), or a directory holding them, and writes one result in the
same schema, with "shards" set, to --out: result.json, report.md, report.html and
latency.hlog.

Percentiles come from the sum of the shards' histograms (exact, not an average of
percentiles); the timeline is summed per second on the run's shared clock; errors
and attempts are summed; unavailability windows are computed again from the sum of
the shards' per-millisecond series; the cutover, the integrity check and the
database's numbers are the coordinator's (shard 0); the SLOs are evaluated on the
merged numbers. A shard that is missing (it died, or its directory was not given)
marks the result "incomplete".

With --wait, the merge first waits until every shard's result is there (or the
coordinator's, naming the shards it lost), as a merge Job started alongside the
shards must; when the time runs out it merges those present, marked incomplete.

Results of different runs, scenarios or shard counts are refused (exit 2). Exit 3
when the merged result breaches an SLO.`,
		Example: `  rehearse report merge runs/x/shard-0 runs/x/shard-1 runs/x/shard-2 --out runs/x/merged
  rehearse report merge runs/x --out runs/x/merged     # every shard directory under runs/x
  rehearse report merge /results --out /results/merged --wait 6h  # a merge Job beside the shards`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("expected the shards' output directories, got none")}
			}
			if out == "" {
				return usageError{fmt.Errorf("--out: the merged result needs an output directory")}
			}
			var opts []rehearse.MergeOption
			if cmd.Flags().Changed("wait") {
				d, err := scenarios.ParseDuration(wait)
				if err != nil || d.D() <= 0 {
					return usageError{fmt.Errorf("--wait %s: must be a positive duration such as 30m or 6h", wait)}
				}
				opts = append(opts, rehearse.MergeWait(d.D()), rehearse.MergeLog(s.err))
			}
			res, err := rehearse.Merge(cmd.Context(), args, out, opts...)
			if res != nil {
				mergeSummary(s, res, out)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "output directory of the merged result (required)")
	cmd.Flags().StringVar(&wait, "wait", "", "wait up to this long for the shards' results to appear (a merge Job started with the shards), e.g. 6h")
	return cmd
}

// mergeSummary prints the merged verdict and where the report is.
func mergeSummary(s streams, res *result.Result, out string) {
	v := report.PageVerdict(res)
	state := ""
	if res.Incomplete {
		state = " (incomplete)"
	}
	fmt.Fprintf(s.out, "%s  %s  %d shards of %d%s: %d sessions, %d transactions (%d failed, %d ambiguous), %.1f/s achieved of %.1f/s target\n",
		v.Label(), res.Scenario.Name, res.Shards, res.Sharding.Count, state, res.Load.Sessions, res.Totals.Transactions,
		res.Totals.Failed, res.Totals.Ambiguous, res.Load.AchievedRate, res.Load.TargetRate)
	for _, r := range v.Reasons {
		fmt.Fprintf(s.out, "  - %s\n", r)
	}
	for _, l := range res.Sharding.Missing {
		fmt.Fprintf(s.out, "  - shard %d missing: %s\n", l.Index, l.Reason)
	}
	if line := cutoverLine(res); line != "" {
		fmt.Fprintln(s.out, line)
	}
	fmt.Fprintf(s.out, "report: %s\n", filepath.Join(out, rehearse.HTMLFile))
}
