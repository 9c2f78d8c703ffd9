package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/internal/engine"
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
			if c.Strategy == migrate.StrategyBlueGreen && target != string(scenarios.TargetAurora) && sc.Target.DSN != "" {
				return usageError{fmt.Errorf("cutover.strategy blue_green: target.dsn points at a database rehearse does not manage, so it cannot create a green copy of it; use target.kind local, container or aurora")}
			}
			pc := engine.PlanConfig(sc)
			pc.Rollback = pc.Rollback || rollback
			steps, err := migrate.Describe(pc, target)
			if err != nil {
				return usageError{err}
			}
			state := "enabled"
			if !c.Enabled {
				state = "disabled in this scenario (cutover.enabled: false): `run` will not execute it"
			}
			strategy := c.Strategy
			if strategy == "" {
				strategy = migrate.StrategyInCluster
			}
			fmt.Fprintf(s.out, "Cutover plan for %s: strategy %s, kind %s, target %s, endpoint %s, %s.\n", sc.Name, strategy, c.Kind, target, sc.Target.Endpoint, state)
			fmt.Fprintf(s.out, "Starts %v into the load; each step times out after %v", c.Warmup, c.StepTimeout)
			if strategy == migrate.StrategyBlueGreen {
				fmt.Fprintf(s.out, "; the switchover rolls back after %v (cutover.switchover_timeout)", c.SwitchoverTimeout)
			}
			if c.Cycles > 1 {
				fmt.Fprintf(s.out, ".\n%d cycles, %v apart (cutover.settle): each switches over again, from the writer the cycle before made", c.Cycles, c.Settle)
			}
			fmt.Fprint(s.out, ".\n\n")
			tw := tabwriter.NewWriter(s.out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "#\tSTEP\tCHANGES\tTIMEOUT\tACTION\tDONE WHEN\tUNDO")
			for i, st := range steps {
				changes := "no"
				if st.Mutating {
					changes = "yes"
				}
				undo := st.Undo
				if undo == "" {
					undo = "-"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%s\t%s\t%s\n", i+1, st.Name, changes, st.Timeout, st.Action, st.Check, undo)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(s.out, "\nA dry run (--mode dry) executes only the read-only checks; --mode wet performs the steps. When a step fails, the completed ones are undone in reverse.")
			return nil
		},
	}
	cmd.Flags().StringVar(&target, "target", "", "describe the plan for this target (local, container, aurora)")
	cmd.Flags().BoolVar(&rollback, "rollback", false, "include the failback step")
	return cmd
}
