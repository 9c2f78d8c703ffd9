package scenarios

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Workload names.
const (
	// WorkloadBanking is the banking workload (login, balance, transfer, ...).
	WorkloadBanking = "banking"
	// WorkloadTPCB is pgbench's TPC-B-like transaction.
	WorkloadTPCB = "tpcb"
	// WorkloadTPCBSelect is pgbench's select-only transaction (pgbench -S).
	WorkloadTPCBSelect = "tpcb-select"
	// WorkloadScript runs a team's own pgbench-syntax transaction scripts.
	WorkloadScript = "script"
	// WorkloadReplay replays a captured PostgreSQL csvlog.
	WorkloadReplay = "replay"
)

// Cutover strategies.
const (
	StrategyInCluster = "in_cluster"
	StrategyBlueGreen = "blue_green"
)

// BlueGreenSteps lists the blue/green strategy's steps in plan order. Treat it as
// read-only.
var BlueGreenSteps = []string{
	"preflight",
	"create_green",
	"green_sync",
	"switchover",
	"redirect",
	"validate",
	"keep_old_blue",
	"delete_deployment",
}

// StrategySteps returns the steps of a strategy, in plan order (nil for an unknown
// one).
func StrategySteps(strategy string) []string {
	switch strategy {
	case StrategyInCluster, "":
		return PlanSteps
	case StrategyBlueGreen:
		return BlueGreenSteps
	}
	return nil
}

// PlanSteps lists every in-cluster cutover step in the order the plan runs them.
// Cutover.Steps must be a subsequence of the strategy's steps. Treat it as
// read-only.
var PlanSteps = []string{
	"preflight",
	"create_replica",
	"catch_up",
	"forward_writes",
	"switchover",
	"redirect",
	"validate",
	"keep_rollback_target",
	"decommission",
}

// BankingOps lists the banking workload's operation names, as they appear in results
// and in slo.latency[].op. Treat it as read-only.
var BankingOps = []string{"login", "balance", "statement", "transfer", "deposit", "logout", "dashboard", "background_job"}

// BankingMixOps lists the banking operations a session chooses between after login:
// the keys workload.mix accepts. Login and logout bracket each session and are not
// weighted. Treat it as read-only.
var BankingMixOps = []string{"balance", "statement", "transfer", "deposit", "dashboard", "background_job"}

// Enumerations accepted by Validate.
var (
	workloadNames = []string{WorkloadBanking, WorkloadTPCB, WorkloadTPCBSelect, WorkloadScript, WorkloadReplay}
	scriptKinds   = []string{"write", "read"}
	loadModels    = []string{"open", "closed"}
	arrivals      = []string{"poisson", "constant"}
	distributions = []string{"exponential", "constant", "uniform"}
	cutoverKinds  = []string{"planned", "crash"}
	strategies    = []string{StrategyInCluster, StrategyBlueGreen}
	sloPhases     = []string{"all", "before", "during", "after"}
)

// WorkloadOps returns the operation names of the named workload (nil for an unknown
// name, and for a replay, whose operations are the capture's statements). The result
// is a fresh slice. A script workload's operations are named by its scripts (see
// Scenario.Ops).
func WorkloadOps(workload string) []string {
	switch workload {
	case WorkloadBanking:
		return slices.Clone(BankingOps)
	case WorkloadTPCB:
		return []string{"tpcb"}
	case WorkloadTPCBSelect:
		return []string{"select"}
	}
	return nil
}

// DefaultMix returns the default banking mix (weights, not percentages: they need not
// sum to 100).
func DefaultMix() map[string]float64 {
	return map[string]float64{
		"balance":        35,
		"statement":      15,
		"transfer":       20,
		"deposit":        8,
		"dashboard":      20,
		"background_job": 0.05,
	}
}

// DatabaseMetrics are the database metrics rehearse samples, as written in
// slo.database[].metric and result.json's database.series, with their units.
// Treat it as read-only.
var DatabaseMetrics = map[string]string{
	"cpu":                "percent",
	"rss":                "bytes",
	"read_iops":          "ops/s",
	"write_iops":         "ops/s",
	"tps":                "tx/s",
	"rollbacks":          "tx/s",
	"connections_active": "count",
	"connections":        "count",
	"replica_lag_bytes":  "bytes",
	"replica_lag_s":      "seconds",
	"wal_bytes":          "bytes/s",
	"checkpoints":        "count",
	"acu":                "ACU",
	"acu_utilization":    "percent",
	"freeable_memory":    "bytes",
}

// DatabaseStats are the statistics a database SLO can take of a series.
var DatabaseStats = []string{"min", "mean", "p50", "p95", "p99", "max"}

// DatabaseNodes are the node roles a database SLO can name besides a node's name.
var DatabaseNodes = []string{"writer", "reader", "replica", "rollback_target"}

// DefaultLatencySLO is the value each slo.latency entry starts from: every operation,
// every phase, the 99th percentile, and no limit until Max is set.
func DefaultLatencySLO() LatencySLO {
	return LatencySLO{Op: "*", Phase: "all", Percentile: 99}
}

// Defaults returns the complete default scenario. Every call returns fresh maps and
// pointers, so callers may modify the result. Workers is resolved (2 × PoolSize).
func Defaults() Scenario {
	s := defaults()
	s.ApplyPreset(func(string) bool { return false })
	s.resolve()
	return s
}

// defaults is Defaults before derived values are resolved: Parse decodes a file over
// it and resolves afterwards, so that derived values follow the file's settings.
func defaults() Scenario {
	fsync := true
	return Scenario{
		Mode: ModeDry,
		Workload: Workload{
			Name:                WorkloadBanking,
			Customers:           20000,
			AccountsPerCustomer: 2,
			OpeningBalance:      100000,
			ActionsPerLogin:     20,
			Mix:                 DefaultMix(),
			Scale:               10,
			Seed:                1,
			Speed:               1,
		},
		Load: Load{
			Model:           "open",
			Arrival:         "poisson",
			Sessions:        2000,
			ThinkTime:       ThinkTime{Distribution: "exponential", Mean: Duration(4 * time.Second)},
			Duration:        Duration(30 * time.Second),
			PoolSize:        32,
			Connections:     8,
			OpTimeout:       Duration(5 * time.Second),
			Grace:           Duration(5 * time.Second),
			MaxRetries:      3,
			ConnMaxLifetime: Duration(30 * time.Second),
		},
		Target: Target{
			Kind:           TargetLocal,
			Endpoint:       EndpointDNS,
			Fsync:          &fsync,
			MaxConnections: 300,
			SharedBuffers:  "256MB",
			DNSAddr:        "127.0.0.1:0",
			DNSTTL:         Duration(5 * time.Second),
		},
		Telemetry: Telemetry{SampleInterval: Duration(time.Second)},
		Cutover: Cutover{
			Strategy:           StrategyInCluster,
			SwitchoverTimeout:  Duration(300 * time.Second),
			Green:              Green{InstanceClass: "db.serverless"},
			Kind:               "planned",
			Warmup:             Duration(5 * time.Second),
			StepTimeout:        Duration(60 * time.Second),
			CatchUpMaxLagBytes: 1 << 20,
			CatchUpSamples:     3,
			DNSPropagation:     Duration(2 * time.Second),
			Soak:               Duration(5 * time.Second),
			Cycles:             1,
			Settle:             Duration(5 * time.Second),
		},
	}
}

// resolve fills the values that default to a function of other fields.
func (s *Scenario) resolve() {
	for i := range s.SLO.Database {
		d := &s.SLO.Database[i]
		if d.Node == "" {
			d.Node = "writer"
		}
		if d.Phase == "" {
			d.Phase = "all"
		}
		if d.Stat == "" {
			d.Stat = "max"
		}
	}
	for i := range s.Faults {
		if s.Faults[i].Node == "" {
			s.Faults[i].Node = NodeWriter
		}
	}
	for i := range s.Workload.Scripts {
		if s.Workload.Scripts[i].Kind == "" {
			s.Workload.Scripts[i].Kind = "write"
		}
	}
	if s.Load.Workers == 0 && s.Load.PoolSize > 0 {
		s.Load.Workers = 2 * s.Load.PoolSize * max(s.Client.AppInstances, 1)
	}
}

// EffectiveRate is the open model's target arrival rate in actions per second: Rate
// when set, else Sessions / ThinkTime.Mean (each session acts about once per think
// time). Stages, when present, override it over time. It is 0 for the closed model
// without a Rate (connections run as fast as they can) and when it cannot be derived.
func (s *Scenario) EffectiveRate() float64 {
	if s.Load.Rate > 0 {
		return s.Load.Rate
	}
	if s.Load.Model == "closed" {
		return 0
	}
	mean := s.Load.ThinkTime.Mean.D().Seconds()
	if mean <= 0 || s.Load.Sessions <= 0 {
		return 0
	}
	return float64(s.Load.Sessions) / mean
}

// Ops returns the operation names of s's workload: its scripts' names for a script
// workload (each file's base name without extension, made unique as the workload
// makes them), else WorkloadOps.
func (s *Scenario) Ops() []string {
	if s.Workload.Name != WorkloadScript {
		return WorkloadOps(s.Workload.Name)
	}
	files := make([]string, len(s.Workload.Scripts))
	for i, sc := range s.Workload.Scripts {
		files[i] = sc.File
	}
	return ScriptOpNames(files)
}

// ScriptOpNames names a script workload's operations after its files: the base name
// without extension, with _2, _3… appended to repeats (as the workload names them).
func ScriptOpNames(files []string) []string {
	out := make([]string, len(files))
	seen := map[string]int{}
	for i, f := range files {
		base := filepath.Base(f)
		name := strings.TrimSuffix(base, filepath.Ext(base))
		if name == "" || name == "." {
			name = "script"
		}
		seen[name]++
		if n := seen[name]; n > 1 {
			name = fmt.Sprintf("%s_%d", name, n)
		}
		out[i] = name
	}
	return out
}

// Clone returns a deep copy: maps, slices and pointers are not shared with s.
func (s *Scenario) Clone() *Scenario {
	c := *s
	c.Workload.Scripts = slices.Clone(s.Workload.Scripts)
	c.Workload.Invariants = slices.Clone(s.Workload.Invariants)
	if s.Workload.Acknowledged != nil {
		a := *s.Workload.Acknowledged
		c.Workload.Acknowledged = &a
	}
	if s.Workload.Mix != nil {
		c.Workload.Mix = maps.Clone(s.Workload.Mix)
	}
	c.Load.Stages = slices.Clone(s.Load.Stages)
	c.Cutover.Steps = slices.Clone(s.Cutover.Steps)
	c.Notes = slices.Clone(s.Notes)
	c.SLO.Database = slices.Clone(s.SLO.Database)
	if s.Telemetry.Price != nil {
		pr := *s.Telemetry.Price
		c.Telemetry.Price = &pr
	}
	c.Client.Retry.On = slices.Clone(s.Client.Retry.On)
	c.SLO.Latency = slices.Clone(s.SLO.Latency)
	if s.Target.Fsync != nil {
		v := *s.Target.Fsync
		c.Target.Fsync = &v
	}
	if s.SLO.MaxErrorRate != nil {
		v := *s.SLO.MaxErrorRate
		c.SLO.MaxErrorRate = &v
	}
	if s.SLO.MaxAttemptErrorRate != nil {
		v := *s.SLO.MaxAttemptErrorRate
		c.SLO.MaxAttemptErrorRate = &v
	}
	return &c
}
