package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/scenarios"
)

func newPlanCmd(s streams) *cobra.Command {
	var target string
	var rollback bool
	cmd := &cobra.Command{
		Use:   "plan SCENARIO.yaml",
		Short: "Print the cutover plan: each step's action and check, without running anything",
		Example: `  rehearse plan scenarios/smoke.yaml
  rehearse plan scenarios/aurora.yaml --target aurora`,
		Args: exactArgs(1, "one scenario file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := scenarios.LoadFile(args[0])
			if err != nil {
				return err
			}
			if target == "" {
				target = string(sc.Target.Kind)
			}
			c := sc.Cutover
			steps, err := migrate.Describe(migrate.Config{
				Steps: c.Steps, Kind: c.Kind, StepTimeout: c.StepTimeout.D(),
				CatchUpMaxLagBytes: c.CatchUpMaxLagBytes, CatchUpSamples: c.CatchUpSamples,
				Soak: c.Soak.D(), Rollback: c.Rollback || rollback,
			}, target)
			if err != nil {
				return usageError{err}
			}
			state := "enabled"
			if !c.Enabled {
				state = "disabled in this scenario (cutover.enabled: false): `run` will not execute it"
			}
			fmt.Fprintf(s.out, "Cutover plan for %s: kind %s, target %s, endpoint %s, %s.\n", sc.Name, c.Kind, target, sc.Target.Endpoint, state)
			fmt.Fprintf(s.out, "Starts %v into the load; each step times out after %v.\n\n", c.Warmup, c.StepTimeout)
			tw := tabwriter.NewWriter(s.out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "#\tSTEP\tCHANGES\tACTION\tDONE WHEN")
			for i, st := range steps {
				changes := "no"
				if st.Mutating {
					changes = "yes"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i+1, st.Name, changes, st.Action, st.Check)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(s.out, "\nA dry run (--mode dry) executes only the read-only checks; --mode wet performs the steps.")
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "target", "", "describe the plan for this target (local, container, aurora)")
	cmd.Flags().BoolVar(&rollback, "rollback", false, "include the failback step")
	return cmd
}
