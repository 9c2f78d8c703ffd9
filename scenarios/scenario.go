// Package scenarios loads, defaults and validates rehearsal scenario files.
//
// A scenario names the workload, the load profile, the target, the cutover plan and
// the SLOs. Every field has a documented default (see Defaults and `rehearse scenario
// init`); unknown fields are rejected; every problem is reported at once with its
// file:line:column.
package scenarios

import (
	"time"
)

// Scenario is one rehearsal: what traffic, against what, with which cutover, judged by
// which SLOs. It is plain data.
type Scenario struct {
	// Name identifies the scenario in reports and default output directories.
	Name string `yaml:"name"`
	// Description is free text shown in reports.
	Description string `yaml:"description"`
	// Workload chooses the operations and their data.
	Workload Workload `yaml:"workload"`
	// Load is the traffic profile.
	Load Load `yaml:"load"`
	// Client is the application's client stack: pools per app instance, DNS
	// caching, sockets, retries.
	Client Client `yaml:"client"`
	// Target is the database the load goes to.
	Target Target `yaml:"target"`
	// Cutover is the migration plan run under load.
	Cutover Cutover `yaml:"cutover"`
	// SLO holds the limits the run is judged by.
	SLO SLO `yaml:"slo"`
	// Telemetry is what the run publishes and samples besides the load: live
	// Prometheus metrics and the database's own numbers.
	Telemetry Telemetry `yaml:"telemetry"`
	// Faults are injected on the run's timeline: a frozen node, a network
	// blackhole, added latency, reset connections, a crash.
	Faults []Fault `yaml:"faults"`

	// Notes are remarks on the file, such as a deprecated field it used; a run
	// records them in its result.
	Notes []string `yaml:"-"`

	// Mode is dry (default) or wet. It is not read from the file: a wet run is
	// always asked for explicitly (the CLI's --mode, see Overrides).
	Mode Mode `yaml:"-"`

	// File is the path the scenario was read from ("" when parsed from memory).
	File string `yaml:"-"`
	// SHA256 is the hex digest of the file's bytes.
	SHA256 string `yaml:"-"`
}

// Workload selects and sizes the workload.
type Workload struct {
	// Name is banking (default), tpcb (pgbench TPC-B) or tpcb-select (pgbench -S).
	Name string `yaml:"name"`
	// Customers is the number of banking customers seeded (default 20000).
	Customers int `yaml:"customers"`
	// AccountsPerCustomer is the number of accounts each customer owns (default 2).
	AccountsPerCustomer int `yaml:"accounts_per_customer"`
	// OpeningBalance is each account's opening balance in cents (default 100000).
	OpeningBalance int64 `yaml:"opening_balance"`
	// ActionsPerLogin is the mean number of actions a user takes between login and
	// logout (default 20).
	ActionsPerLogin int `yaml:"actions_per_login"`
	// Mix weights the in-session actions by operation name (balance, statement,
	// transfer, deposit, dashboard, background_job). Defaults in Defaults().
	Mix map[string]float64 `yaml:"mix"`
	// Scale is the pgbench scale factor for tpcb workloads (default 10).
	Scale int `yaml:"scale"`
	// MisroutedWriteFraction sends this fraction of writes to the reader endpoint, to
	// show what write forwarding prevents (default 0).
	MisroutedWriteFraction float64 `yaml:"misrouted_write_fraction"`
	// Seed seeds the random choices of the run (default 1).
	Seed uint64 `yaml:"seed"`

	// Setup is a SQL file run on the writer before the load (script and replay
	// workloads), when SetupCheck returns no row. Paths are relative to the scenario
	// file.
	Setup string `yaml:"setup"`
	// SetupCheck is a query; Setup runs only when it returns no row.
	SetupCheck string `yaml:"setup_check"`
	// Scripts are the script workload's pgbench-syntax transaction files, drawn by
	// weight after each think time.
	Scripts []Script `yaml:"scripts"`
	// Invariants are queries returning one value, checked before the load and after
	// it (and in the cutover's validate step).
	Invariants []Invariant `yaml:"invariants"`
	// Acknowledged names the table and column where write scripts store :txid, for
	// the lost-write check on any schema.
	Acknowledged *Acknowledged `yaml:"acknowledged"`

	// Capture is the replay workload's PostgreSQL csvlog, relative to the scenario
	// file.
	Capture string `yaml:"capture"`
	// Speed scales the captured gaps: 2.0 replays twice as fast (default 1).
	Speed float64 `yaml:"speed"`
	// Filter narrows the capture to one database, user or application.
	Filter ReplayFilter `yaml:"filter"`
}

// Script is one transaction script of the script workload.
type Script struct {
	// File is a pgbench script, relative to the scenario file.
	File string `yaml:"file"`
	// Weight is its relative weight (positive).
	Weight float64 `yaml:"weight"`
	// Kind is write (default: the writer endpoint) or read (the reader endpoint).
	Kind string `yaml:"kind"`
}

// Invariant is a query returning one value that must hold across the run.
type Invariant struct {
	// Name names it in the report.
	Name string `yaml:"name"`
	// SQL returns exactly one row with one column.
	SQL string `yaml:"sql"`
	// Expect is unchanged (the value after the load equals the value before) or a
	// number the value must equal.
	Expect string `yaml:"expect"`
}

// Acknowledged names where write scripts store their :txid.
type Acknowledged struct {
	Table  string `yaml:"table"`
	Column string `yaml:"column"`
}

// ReplayFilter narrows a capture; empty fields match everything.
type ReplayFilter struct {
	Database    string `yaml:"database"`
	User        string `yaml:"user"`
	Application string `yaml:"application"`
}

// Load is the traffic profile.
type Load struct {
	// Model is open (arrivals on a schedule, default) or closed (each connection
	// loops as fast as it can, like pgbench).
	Model string `yaml:"model"`
	// Arrival is the open-loop arrival process: poisson (default) or constant.
	Arrival string `yaml:"arrival"`
	// Sessions is the number of simulated user sessions (default 2000).
	Sessions int `yaml:"sessions"`
	// Rate is the total target arrival rate in actions per second. 0 (default) means
	// sessions / think_time.mean.
	Rate float64 `yaml:"rate"`
	// ThinkTime is the pause a user takes between actions.
	ThinkTime ThinkTime `yaml:"think_time"`
	// Stages ramps the rate: each stage moves linearly to its rate over its duration.
	// After the last stage the last rate holds. Empty means a constant rate.
	Stages []Stage `yaml:"stages"`
	// Duration is how long the load runs (default 30s).
	Duration Duration `yaml:"duration"`
	// PoolSize is the connection pool size per endpoint, like an app server's
	// (default 32). An alias of client.pool_size, kept in step with it.
	PoolSize int `yaml:"pool_size"`
	// Workers is the number of goroutines executing due actions (default 2 × pool_size).
	Workers int `yaml:"workers"`
	// Connections is the number of connections looping in the closed model (default 8).
	Connections int `yaml:"connections"`
	// OpTimeout bounds one operation, including waiting for a connection (default 5s).
	OpTimeout Duration `yaml:"op_timeout"`
	// Grace is how long in-flight operations may finish after the load stops (default 5s).
	Grace Duration `yaml:"grace"`
	// MaxRetries bounds retries of serialization failures and deadlocks (default 3).
	MaxRetries int `yaml:"max_retries"`
	// ConnMaxLifetime is how long a pooled connection lives before it is replaced, as
	// app servers recycle connections so that endpoint (DNS) changes reach them
	// (default 30s).
	ConnMaxLifetime Duration `yaml:"conn_max_lifetime"`
}

// ThinkTime is a distribution of pauses.
type ThinkTime struct {
	// Distribution is exponential (default), constant or uniform (0 to 2 × mean).
	Distribution string `yaml:"distribution"`
	// Mean is the mean pause (default 4s).
	Mean Duration `yaml:"mean"`
}

// Stage is one step of a ramp.
type Stage struct {
	// Duration is how long the stage takes.
	Duration Duration `yaml:"duration"`
	// Rate is the target rate (actions/s) reached at the end of the stage.
	Rate float64 `yaml:"rate"`
}

// Target is the database under test.
type Target struct {
	// Kind is local (default: an embedded PostgreSQL started for the run), container
	// or aurora.
	Kind TargetKind `yaml:"kind"`
	// DSN points the run at an existing database instead of starting one.
	DSN string `yaml:"dsn"`
	// Endpoint is the cluster endpoint mode: dns (default) or proxy (PgBouncer).
	Endpoint EndpointMode `yaml:"endpoint"`
	// Fsync keeps fsync on in the embedded server (default true).
	Fsync *bool `yaml:"fsync"`
	// MaxConnections is the embedded server's max_connections (default 300).
	MaxConnections int `yaml:"max_connections"`
	// SharedBuffers is the embedded server's shared_buffers (default 256MB).
	SharedBuffers string `yaml:"shared_buffers"`
	// DNSAddr is where the DNS server that serves the cluster's endpoint names
	// listens: a loopback address (default 127.0.0.1:0, any free port).
	DNSAddr string `yaml:"dns_addr"`
	// DNSTTL is the TTL of the endpoint records, Aurora's 5s by default.
	DNSTTL Duration `yaml:"dns_ttl"`
}

// Cutover is the migration plan run under load.
type Cutover struct {
	// Enabled runs the plan (default false when the section is absent).
	Enabled bool `yaml:"enabled"`
	// Strategy is in_cluster (default: a new replica in the cluster, then a
	// switchover onto it) or blue_green (a green copy kept in sync by logical
	// replication, then a switchover with a timeout, as Aurora Blue/Green
	// Deployments do).
	Strategy string `yaml:"strategy"`
	// SwitchoverTimeout bounds a blue/green switchover; when it runs out the
	// switchover rolls back (default 300s, AWS's).
	SwitchoverTimeout Duration `yaml:"switchover_timeout"`
	// Green describes a blue/green deployment's green environment.
	Green Green `yaml:"green"`
	// Kind is planned (switchover, default) or crash (kill -9 the writer).
	Kind string `yaml:"kind"`
	// Warmup is how long the load runs before the first step (default 5s).
	Warmup Duration `yaml:"warmup"`
	// Steps lists the steps to run, in order. Empty means the full plan.
	Steps []string `yaml:"steps"`
	// StepTimeout bounds each step (default 60s).
	StepTimeout Duration `yaml:"step_timeout"`
	// CatchUpMaxLagBytes is the replication lag that counts as caught up (default
	// 1 MiB: under write load the lag is rarely exactly 0, and the switchover itself
	// waits for the old writer's final LSN, so no acknowledged write depends on it).
	CatchUpMaxLagBytes int64 `yaml:"catch_up_max_lag_bytes"`
	// CatchUpSamples is how many consecutive samples must be under the lag limit
	// (default 3).
	CatchUpSamples int `yaml:"catch_up_samples"`
	// DNSPropagation is how long after the redirect the dns endpoints' records flip
	// to the new writer (default 2s); clients then see the change as their DNS cache
	// expires (target.dns_ttl).
	DNSPropagation Duration `yaml:"dns_propagation"`
	// StaleDNSWindow is deprecated: it sets DNSPropagation. It was how long new
	// connections still reached the old writer after a
	// failover in dns endpoint mode (default 2s).
	StaleDNSWindow Duration `yaml:"stale_dns_window"`
	// Soak is how long to wait after validation before decommission (default 5s).
	Soak Duration `yaml:"soak"`
	// Rollback rehearses the failback after validation (default false).
	Rollback bool `yaml:"rollback"`
	// Synchronous makes the caught-up replica a synchronous standby, as Aurora's
	// shared storage makes every acknowledged write durable on the new instance
	// (default: true for kind crash, false for planned).
	Synchronous *bool `yaml:"synchronous"`
	// Cycles runs the switchover this many times under the same load, alternating
	// direction: switchover, failback onto the old writer, switchover, ... (default
	// 1). Each cycle after the first follows a settle period.
	Cycles int `yaml:"cycles"`
	// Settle is how long the load runs after one cycle before the next (default 5s).
	Settle Duration `yaml:"settle"`
	// AbortIf lists live guardrails, evaluated every second while the cutover runs:
	// a breach stops the plan and undoes it, leaving the original writer serving
	// writes (a dry run only reports which would have fired).
	AbortIf []Guardrail `yaml:"abort_if"`
}

// Green is a blue/green deployment's green environment. Instance class and
// parameter group apply to Aurora; locally green runs the machine's major version.
type Green struct {
	// InstanceClass is the green instances' class (aurora; default db.serverless).
	InstanceClass string `yaml:"instance_class"`
	// EngineVersion is the green engine version (aurora; "" = blue's). Older than
	// blue's is refused.
	EngineVersion string `yaml:"engine_version"`
	// ParameterGroup is the green cluster's parameter group (aurora; "" = blue's).
	ParameterGroup string `yaml:"parameter_group"`
}

// SLO holds the limits a run is judged by. Zero values mean "no limit" except
// MaxLostWrites, which defaults to 0 lost acknowledged writes.
type SLO struct {
	// Latency lists latency percentile limits.
	Latency []LatencySLO `yaml:"latency"`
	// MaxErrorRate is the highest tolerated fraction of operations that failed after
	// the client's retries: what users saw (unset: none).
	MaxErrorRate *float64 `yaml:"max_error_rate"`
	// MaxAttemptErrorRate is the highest tolerated fraction of failed attempts, every
	// retry included: what the database saw (unset: none).
	MaxAttemptErrorRate *float64 `yaml:"max_attempt_error_rate"`
	// MaxWriteUnavailable is the longest tolerated write unavailability window.
	MaxWriteUnavailable Duration `yaml:"max_write_unavailable"`
	// MaxReadUnavailable is the longest tolerated read unavailability window.
	MaxReadUnavailable Duration `yaml:"max_read_unavailable"`
	// MaxRecovery is the longest tolerated recovery after a disruption (each
	// switchover, failback and fault): how long after its end users kept feeling it,
	// until p99 latency and schedule lag were back within 2× their values before
	// the first disruption for 3 s (0 = none set).
	MaxRecovery Duration `yaml:"max_recovery"`
	// MaxLostWrites is the tolerated number of lost acknowledged writes (default 0).
	MaxLostWrites int64 `yaml:"max_lost_writes"`
	// MinAchievedRate is the lowest tolerated achieved/target rate ratio (0 = none set).
	MinAchievedRate float64 `yaml:"min_achieved_rate"`
	// PeakRate is today's peak rate in actions/s, for capacity headroom (0 = unset).
	PeakRate float64 `yaml:"peak_rate"`
	// Database lists limits on the database's own numbers (CPU, replica lag, …)
	// per node and phase.
	Database []DatabaseSLO `yaml:"database"`
}

// DatabaseSLO is one limit on a database metric: a statistic of its samples on a
// node in a phase.
type DatabaseSLO struct {
	// Metric is one of DatabaseMetrics.
	Metric string `yaml:"metric"`
	// Node is writer, reader, replica (the new one), rollback_target, or a node's
	// name (default writer).
	Node string `yaml:"node"`
	// Phase is before, during, after or all (default all).
	Phase string `yaml:"phase"`
	// Stat is min, mean, p50, p95, p99 or max (default max).
	Stat string `yaml:"stat"`
	// Max is the highest tolerated value, in the metric's unit.
	Max float64 `yaml:"max"`
}

// Telemetry configures live metrics and database sampling.
type Telemetry struct {
	// MetricsAddr serves Prometheus metrics while the run lasts (host:port on
	// loopback unless MetricsAllowRemote; "" = off). The CLI's --metrics-addr sets
	// it.
	MetricsAddr string `yaml:"metrics_addr"`
	// MetricsAllowRemote permits a MetricsAddr off loopback (0.0.0.0:9464, a
	// host's address), reachable from other machines: the run says so in its log.
	// The CLI's --metrics-allow-remote sets it.
	MetricsAllowRemote bool `yaml:"metrics_allow_remote"`
	// MetricsLinger keeps serving metrics this long after the run, so a final
	// scrape lands (default 0s).
	MetricsLinger Duration `yaml:"metrics_linger"`
	// SampleInterval is how often the database's numbers are sampled (default 1s).
	SampleInterval Duration `yaml:"sample_interval"`
	// Price estimates the cost of the rehearsed load on Serverless v2 from the ACU
	// series; nil = no cost line.
	Price *Price `yaml:"price"`
}

// Price holds the prices a cost estimate uses, in dollars per hour.
type Price struct {
	// ACUHour is the price of one Aurora capacity unit for an hour.
	ACUHour float64 `yaml:"acu_hour"`
	// ProvisionedHour is the hourly price of the provisioned instance it replaces.
	ProvisionedHour float64 `yaml:"provisioned_hour"`
}

// LatencySLO is one latency limit.
type LatencySLO struct {
	// Op is an operation name or "*" for every operation (default "*").
	Op string `yaml:"op"`
	// Phase is before, during, after or all (default all).
	Phase string `yaml:"phase"`
	// Percentile is the percentile checked, e.g. 99 or 99.9 (default 99).
	Percentile float64 `yaml:"percentile"`
	// Max is the highest tolerated latency at that percentile.
	Max Duration `yaml:"max"`
}

// Duration is a time.Duration written in YAML as a Go duration string ("30s", "2m").
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration as Go does.
func (d Duration) String() string { return time.Duration(d).String() }
