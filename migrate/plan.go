package migrate

import (
	"fmt"
	"time"
)

// Step names, in plan order.
const (
	StepPreflight          = "preflight"
	StepCreateReplica      = "create_replica"
	StepCatchUp            = "catch_up"
	StepForwardWrites      = "forward_writes"
	StepSwitchover         = "switchover"
	StepRedirect           = "redirect"
	StepValidate           = "validate"
	StepKeepRollbackTarget = "keep_rollback_target"
	StepRollback           = "rollback"
	StepDecommission       = "decommission"
	// StepSettle waits between two cycles of a cutover that runs several.
	StepSettle = "settle"
)

// AllSteps is the full plan, in order (rollback runs only when asked for).
var AllSteps = []string{StepPreflight, StepCreateReplica, StepCatchUp, StepForwardWrites,
	StepSwitchover, StepRedirect, StepValidate, StepKeepRollbackTarget, StepDecommission}

// Kinds of cutover.
const (
	// Planned is a switchover: the old writer stops cleanly first.
	Planned = "planned"
	// Crash kills the writer (kill -9) under load and fails over.
	Crash = "crash"
)

// Config is a plan's shape and thresholds (from the scenario's cutover section).
type Config struct {
	// Steps to run, a subsequence of AllSteps; empty means all.
	Steps []string
	// Kind is Planned or Crash.
	Kind string
	// StepTimeout bounds each step (decommission: on top of Soak).
	StepTimeout time.Duration
	// CatchUpMaxLagBytes is the lag that counts as caught up.
	CatchUpMaxLagBytes int64
	// CatchUpSamples is how many consecutive samples must be under the limit.
	CatchUpSamples int
	// Soak is how long decommission waits after validation.
	Soak time.Duration
	// Rollback fails back to the old writer after validation.
	Rollback bool
	// Synchronous makes the caught-up replica a synchronous standby where the
	// provider can (crash safety without shared storage).
	Synchronous bool
	// Poll paces lag sampling and other waits (default 100 ms).
	Poll time.Duration
	// Strategy is StrategyInCluster (the default) or StrategyBlueGreen.
	Strategy string
	// SwitchoverTimeout bounds a blue/green switchover (default 300 s, AWS's); it
	// rolls back when the time runs out.
	SwitchoverTimeout time.Duration
	// Green is the blue/green deployment's green environment.
	Green GreenSpec
	// Cycles is how many times the switchover runs under the same load, alternating
	// direction (switchover, failback onto the old writer, ...); 0 or 1 is once.
	Cycles int
	// Settle is how long the plan waits after one cycle before the next (default 5 s).
	Settle time.Duration
}

// DefaultSettle is the wait between two cycles when the plan sets none.
const DefaultSettle = 5 * time.Second

// StepInfo describes one step for `rehearse plan`: what it does and when it is done.
type StepInfo struct {
	Name     string
	Action   string
	Check    string
	Mutating bool
	// Timeout bounds the step.
	Timeout time.Duration
	// Undo says what undoes the step when a later one fails ("" when nothing).
	Undo string
	// Cycle is the cutover cycle the step belongs to (0: none, or a single cycle).
	Cycle int
}

// Describe returns the plan's steps with their actions and checks, for provider kind
// (local, container, aurora), without running anything.
func Describe(cfg Config, kind string) ([]StepInfo, error) {
	steps, err := cfg.plan()
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	out := make([]StepInfo, 0, len(steps))
	for _, ps := range steps {
		s := ps.name
		info := StepInfo{Name: s, Cycle: ps.cycle, Mutating: mutating(s)}
		info.Action, info.Check = describeStep(s, cfg, kind)
		if ps.cycle >= 2 {
			info.Action, info.Check = describeCycleStep(s, ps.cycle, cfg, kind, info.Action, info.Check)
		}
		info.Timeout = cfg.stepTimeout(s)
		info.Undo = undoOf(s, cfg, kind)
		out = append(out, info)
	}
	return out, nil
}

// steps resolves the configured steps, adding rollback after keep_rollback_target.
func (c Config) steps() ([]string, error) {
	all := AllSteps
	switch c.Strategy {
	case "", StrategyInCluster:
	case StrategyBlueGreen:
		all = BlueGreenSteps
		if c.Rollback {
			return nil, fmt.Errorf("rollback applies to the %s strategy: after a blue/green switchover the old blue is read-only under its %s names and has none of green's writes, so there is no failback to rehearse", StrategyInCluster, OldSuffix)
		}
		if c.Kind == Crash {
			return nil, fmt.Errorf("a blue/green switchover is planned; kind %s applies to the %s strategy", Crash, StrategyInCluster)
		}
	default:
		return nil, fmt.Errorf("unknown cutover strategy %q: use %s or %s", c.Strategy, StrategyInCluster, StrategyBlueGreen)
	}
	want := c.Steps
	if len(want) == 0 {
		want = all
	}
	var out []string
	for _, s := range want {
		if indexOf(all, s) < 0 {
			return nil, fmt.Errorf("unknown cutover step %q: use one of %v", s, all)
		}
		out = append(out, s)
		if s == StepKeepRollbackTarget && c.Rollback {
			out = append(out, StepRollback)
		}
	}
	if c.Rollback && indexOf(out, StepRollback) < 0 {
		return nil, fmt.Errorf("rollback needs the %s step in the plan", StepKeepRollbackTarget)
	}
	return out, nil
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// mutating reports whether a step changes the cluster (phases start at the first).
func mutating(step string) bool {
	switch step {
	case StepPreflight, StepValidate, StepGreenSync, StepKeepOldBlue, StepSettle:
		return false
	}
	return true
}

func describeStep(step string, cfg Config, kind string) (action, check string) {
	if cfg.Strategy == StrategyBlueGreen {
		return describeBlueGreenStep(step, cfg, kind)
	}
	aurora := kind == "aurora"
	switch step {
	case StepPreflight:
		if aurora {
			return "DescribeDBClusters: writer, members, engine version, Serverless v2 scaling, write forwarding status, endpoints",
				"the writer is available and the version supports local write forwarding"
		}
		return "read the writer's role, version and settings",
			"the writer is not in recovery; data checksums or wal_log_hints are on; a WAL sender and a replication slot are free"
	case StepCreateReplica:
		if aurora {
			return "ModifyDBCluster ServerlessV2ScalingConfiguration (if missing), CreateDBInstance db.serverless promotion tier 0",
				"the instance is available (DBInstanceAvailable waiter)"
		}
		return "pg_basebackup -R with a new replication slot, under load, then start the replica",
			"the writer's pg_stat_replication shows the replica streaming"
	case StepCatchUp:
		src := "pg_stat_replication / pg_wal_lsn_diff on the writer"
		if aurora {
			src = "aurora_replica_status()"
		}
		return fmt.Sprintf("sample replication lag (%s)", src),
			fmt.Sprintf("lag ≤ %d bytes for %d consecutive samples", cfg.CatchUpMaxLagBytes, cfg.CatchUpSamples)
	case StepForwardWrites:
		if aurora {
			return "ModifyDBCluster EnableLocalWriteForwarding", "LocalWriteForwardingStatus is enabled"
		}
		return "enable write forwarding at the endpoints (emulated: reader-endpoint connections are served by the writer)",
			"the reader endpoint forwards to the writer"
	case StepSwitchover:
		if cfg.Kind == Crash {
			return "kill -9 the writer under load, then promote the replica", "the replica is a writer (not in recovery)"
		}
		if aurora {
			return "FailoverDBCluster TargetDBInstanceIdentifier=the new replica (retried on InvalidDBClusterStateFault)",
				"the target IsClusterWriter and the cluster is available"
		}
		return "hold the endpoints, fast-shut down the writer, wait until the replica replayed its final LSN, pg_promote",
			"the replica is promoted and not in recovery"
	case StepRedirect:
		if aurora {
			return "let the cluster endpoints follow the new writer (DNS)", "the writer endpoint reaches the new writer"
		}
		return "repoint the endpoints at the new writer (dns: after the stale window; proxy: repoint and RESUME)",
			"a connection through the writer endpoint reaches the new writer"
	case StepValidate:
		return "integrity check (acknowledged writes present, money conserved) and a health write through the writer endpoint",
			"all checks pass"
	case StepKeepRollbackTarget:
		if aurora {
			return "keep the old writer in the cluster as a reader", "it is available as a reader"
		}
		return "restart the old writer as a standby of the new one (pg_rewind where diverged)", "it streams from the new writer"
	case StepRollback:
		return "fail back to the old writer (switchover and redirect)", "the old writer is the writer again"
	case StepSettle:
		return fmt.Sprintf("let the load run %v after the cycle before the next switchover", cfg.Settle),
			"the settle period is over"
	case StepDecommission:
		if aurora {
			return fmt.Sprintf("after a %v soak, DeleteDBInstance the instance no longer needed", cfg.Soak),
				"the instance is deleted (DBInstanceDeleted waiter)"
		}
		return fmt.Sprintf("after a %v soak, stop and remove the node no longer needed and drop its slot", cfg.Soak),
			"the node is gone"
	}
	return "", ""
}
