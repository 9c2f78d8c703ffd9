package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// fieldFlags maps the scenario fields and capacity settings a flag sets to that
// flag. The library's errors name fields; the CLI names the flag the user typed.
var fieldFlags = map[string]string{
	"mode":                  "mode",
	"target.kind":           "target",
	"target.endpoint":       "endpoint",
	"target.dsn":            "dsn",
	"load.duration":         "duration",
	"load.sessions":         "sessions",
	"load.rate":             "rate",
	"cutover.rollback":      "rollback",
	"capacity.from":         "from",
	"capacity.to":           "to",
	"capacity.step":         "step",
	"capacity.hold":         "hold",
	"capacity.warmup":       "warmup",
	"capacity.refine":       "refine",
	"capacity.peak":         "peak",
	"capacity.max_lag":      "max-lag",
	"capacity.with_cutover": "with-cutover",
}

// secretFlags are never echoed back in a message.
var secretFlags = []string{"dsn"}

// flagErrors rewrites the field problems in err that come from flags the user set
// so that they name the flag and its value ("--sessions 0: must be a positive
// integer"), and names the flags for other fields the messages mention. Problems
// from the scenario file keep their file:line:col. err is returned unchanged when it
// has no field problems.
func flagErrors(cmd *cobra.Command, err error) error {
	var se *scenarios.Errors
	if err == nil || !errors.As(err, &se) {
		return err
	}
	fromFlag := func(field string) (string, bool) {
		name, ok := fieldFlags[field]
		if !ok || cmd.Flags().Lookup(name) == nil {
			return "", false
		}
		// Capacity settings come only from flags (or their defaults).
		return name, cmd.Flags().Changed(name) || strings.HasPrefix(field, "capacity.")
	}
	lines := make([]string, 0, len(se.List))
	for _, fe := range se.List {
		name, ok := fromFlag(fe.Field)
		if !ok {
			lines = append(lines, fe.Error())
			continue
		}
		msg := fe.Msg
		for field := range fieldFlags {
			if other, ok := fromFlag(field); ok && strings.Contains(msg, field) {
				msg = strings.ReplaceAll(msg, field, "--"+other)
			}
		}
		flag := "--" + name
		if f := cmd.Flags().Lookup(name); cmd.Flags().Changed(name) && !slices.Contains(secretFlags, name) && f.Value.Type() != "bool" {
			flag += " " + f.Value.String()
		}
		lines = append(lines, flag+": "+msg)
	}
	return usageError{fmt.Errorf("%s", strings.Join(lines, "\n"))}
}
