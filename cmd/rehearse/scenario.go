package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/internal/engine"
	"github.com/rehearse-dev/rehearse/scenarios"
)

func newScenarioCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scenario",
		Short: "Validate scenario files or start a new one",
	}
	validate := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check scenario files; report every problem at once, as file:line:col",
		Example: `  rehearse scenario validate scenarios/banking.yaml
  rehearse scenario validate scenarios/*.yaml`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{fmt.Errorf("expected one or more scenario files")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			invalid := 0
			for _, path := range args {
				sc, err := scenarios.LoadFile(path)
				if err == nil {
					// The workload's own files: scripts' syntax, a capture's format.
					_, err = engine.NewWorkload(cmd.Context(), sc)
				}
				if err != nil {
					fmt.Fprintln(s.err, err)
					invalid++
					continue
				}
				fmt.Fprintf(s.out, "%s: ok (%s, %s workload, %d sessions, %s)\n", path, sc.Name, sc.Workload.Name, sc.Load.Sessions, sc.Load.Duration)
			}
			if invalid > 0 {
				return fmt.Errorf("%w: %d of %d file(s) invalid", scenarios.ErrInvalid, invalid, len(args))
			}
			return nil
		},
	}
	var wl string
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Print a commented starter scenario with every field and its default",
		Example: `  rehearse scenario init > scenarios/mine.yaml
  rehearse scenario init --workload script > scenarios/orders.yaml   # your own pgbench scripts
  rehearse scenario init --workload replay > scenarios/replay.yaml   # a captured csvlog`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			starters := map[string]string{"": scenarios.StarterYAML, "banking": scenarios.StarterYAML,
				"script": scenarios.StarterScriptYAML, "replay": scenarios.StarterReplayYAML}
			text, ok := starters[wl]
			if !ok {
				return usageError{fmt.Errorf("--workload %s: starters exist for banking, script and replay", wl)}
			}
			_, err := fmt.Fprint(s.out, text)
			return err
		},
	}
	initCmd.Flags().StringVar(&wl, "workload", "", "print a starter for this workload: banking (default), script or replay")
	cmd.AddCommand(validate, initCmd)
	return cmd
}
