package scenarios

import (
	"fmt"
	"maps"
	"math"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// reservedConnections is what a local target needs beyond the load's pools:
// superuser_reserved_connections plus the cutover engine's and integrity check's own.
const reservedConnections = 10

var (
	nameRE          = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	sharedBuffersRE = regexp.MustCompile(`^[0-9]+(kB|MB|GB|TB)?$`)
)

// checker collects semantic problems.
type checker struct {
	file string
	errs []error
}

func (c *checker) add(field, format string, args ...any) {
	c.errs = append(c.errs, FieldError{File: c.file, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// oneOf checks an enumerated value.
func (c *checker) oneOf(field, v string, allowed []string) {
	if !slices.Contains(allowed, v) {
		c.add(field, "unknown value %q; use one of: %s", v, strings.Join(allowed, ", "))
	}
}

// positiveInt checks n > 0.
func (c *checker) positiveInt(field string, n int64) {
	if n <= 0 {
		c.add(field, "must be a positive integer, e.g. %s (got %d)", example(field), n)
	}
}

// nonNegativeInt checks n >= 0.
func (c *checker) nonNegativeInt(field string, n int64) {
	if n < 0 {
		c.add(field, "must be zero or a positive integer, e.g. %s (got %d)", example(field), n)
	}
}

// nonNegative checks f >= 0 (and rejects NaN).
func (c *checker) nonNegative(field string, f float64) {
	if !(f >= 0) || math.IsInf(f, 1) {
		c.add(field, "must be zero or a positive number, e.g. %s (got %g)", example(field), f)
	}
}

// fraction checks 0 <= f <= 1.
func (c *checker) fraction(field string, f float64) {
	if !(f >= 0 && f <= 1) {
		c.add(field, "must be a fraction between 0 and 1, e.g. %s (got %g)", example(field), f)
	}
}

// positiveDuration checks d > 0.
func (c *checker) positiveDuration(field string, d Duration) {
	if d <= 0 {
		c.add(field, "must be a positive duration, e.g. %s (got %s)", example(field), formatDuration(d))
	}
}

// nonNegativeDuration checks d >= 0.
func (c *checker) nonNegativeDuration(field string, d Duration) {
	if d < 0 {
		c.add(field, "must not be negative; use 0s for none or e.g. %s (got %s)", example(field), formatDuration(d))
	}
}

// Validate checks the scenario's values and how they fit together, returning every
// problem (each a FieldError, matching ErrInvalid) or nil. It works on any Scenario,
// so callers re-run it after changing fields (e.g. from command-line flags); its
// errors name the field but carry no file position. Workers may be 0 (2 × PoolSize).
func (s *Scenario) Validate() []error {
	c := &checker{file: s.File}
	if s.Name != "" && !nameRE.MatchString(s.Name) {
		c.add("name", "%q cannot name an output directory; use letters, digits, '.', '_' and '-', e.g. %s", s.Name, example("name"))
	}
	s.validateWorkload(c)
	s.validateLoad(c)
	s.validateTarget(c)
	s.validateCutover(c)
	s.validateCycles(c)
	s.validateGuardrails(c)
	s.validateFaults(c)
	s.validateSLO(c)
	s.validateClient(c)
	s.validateTelemetry(c)
	s.validateRun(c)
	return c.errs
}

// isLoopback reports whether host is a loopback IP address or localhost.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isLoopbackIP reports whether host is a loopback IP address.
func isLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// splitListenAddr splits a listen address, host:port with a port number from 0
// (any free port) to 65535; ok is false when it is not one.
func splitListenAddr(addr string) (host string, ok bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", false
	}
	return host, true
}

// MetricsRemote reports whether the metrics are served beyond this machine: a
// metrics address whose host is not loopback (an empty host is every address).
func (t Telemetry) MetricsRemote() bool {
	if t.MetricsAddr == "" {
		return false
	}
	host, _, err := net.SplitHostPort(t.MetricsAddr)
	return err != nil || !isLoopback(host)
}

// validateRun checks how the mode and the target fit the rest of the scenario.
func (s *Scenario) validateRun(c *checker) {
	c.oneOf("mode", string(s.Mode), modes)
	t := &s.Target
	switch {
	case t.Kind == TargetContainer && t.DSN != "":
		c.add("target.dsn", "the container target starts its own containers; drop target.dsn (or use target.kind local with a dsn)")
	case s.Mode == ModeWet && !s.Cutover.Enabled:
		c.add("mode", "a wet run performs the scenario's cutover, but cutover.enabled is false; set cutover.enabled: true or run dry")
	case s.Mode == ModeWet && t.DSN != "" && t.Kind != TargetAurora:
		c.add("target.dsn", "a wet run needs a cluster rehearse manages (target.kind local or container starts one); target.dsn points at a database it cannot fail over")
	}
}

func (s *Scenario) validateWorkload(c *checker) {
	w := &s.Workload
	c.oneOf("workload.name", w.Name, workloadNames)
	c.positiveInt("workload.customers", int64(w.Customers))
	c.positiveInt("workload.accounts_per_customer", int64(w.AccountsPerCustomer))
	c.positiveInt("workload.opening_balance", w.OpeningBalance)
	c.positiveInt("workload.actions_per_login", int64(w.ActionsPerLogin))
	c.positiveInt("workload.scale", int64(w.Scale))
	c.fraction("workload.misrouted_write_fraction", w.MisroutedWriteFraction)
	s.validateScript(c)
	s.validateReplay(c)
	if w.Name != WorkloadBanking {
		return // the mix weights banking operations only; Parse rejects a mix given for other workloads
	}
	if len(w.Mix) == 0 {
		c.add("workload.mix", "must weight at least one operation (%s), e.g. %s", strings.Join(BankingMixOps, ", "), example("workload.mix"))
		return
	}
	var total float64
	before := len(c.errs)
	for _, op := range slices.Sorted(maps.Keys(w.Mix)) {
		weight := w.Mix[op]
		field := "workload.mix." + op
		if !slices.Contains(BankingMixOps, op) {
			msg := "unknown operation; the banking mix weights: " + strings.Join(BankingMixOps, ", ")
			if op == "login" || op == "logout" {
				msg = "login and logout bracket every session and cannot be weighted (see actions_per_login); the mix weights: " + strings.Join(BankingMixOps, ", ")
			}
			c.add(field, "%s", msg)
			continue
		}
		if !(weight >= 0) || math.IsInf(weight, 1) {
			c.add(field, "must be a weight of zero or more, e.g. %s (got %g)", example(field), weight)
			continue
		}
		total += weight
	}
	if total == 0 && len(c.errs) == before {
		c.add("workload.mix", "weights add up to 0; give at least one operation a positive weight, e.g. %s", example("workload.mix"))
	}
}

// validateScript checks the script workload's section; the scripts' own syntax is
// checked when the workload loads them.
func (s *Scenario) validateScript(c *checker) {
	w := &s.Workload
	if w.Name != WorkloadScript {
		setupOK := w.Name == WorkloadReplay // a replay's target may need its schema created first
		for _, f := range []struct {
			field string
			set   bool
		}{{"workload.setup", w.Setup != "" && !setupOK}, {"workload.setup_check", w.SetupCheck != "" && !setupOK}, {"workload.scripts", len(w.Scripts) > 0},
			{"workload.invariants", len(w.Invariants) > 0}, {"workload.acknowledged", w.Acknowledged != nil}} {
			if f.set {
				if f.field == "workload.setup" || f.field == "workload.setup_check" {
					c.add(f.field, "belongs to the script and replay workloads; set workload.name: script or replay, or remove it")
				} else {
					c.add(f.field, "belongs to the script workload; set workload.name: script or remove it")
				}
			}
		}
		return
	}
	if len(w.Scripts) == 0 {
		c.add("workload.scripts", "a script workload needs at least one script, e.g. %s", example("workload.scripts"))
	}
	for i, sc := range w.Scripts {
		f := fmt.Sprintf("workload.scripts[%d]", i)
		if strings.TrimSpace(sc.File) == "" {
			c.add(f+".file", "names no file: give the pgbench script's path, relative to the scenario file")
		}
		if !(sc.Weight > 0) || math.IsInf(sc.Weight, 1) {
			c.add(f+".weight", "must be a positive weight, e.g. 60 (got %g); a script that should not run is removed, not weighted 0", sc.Weight)
		}
		c.oneOf(f+".kind", sc.Kind, scriptKinds)
	}
	if w.SetupCheck != "" && w.Setup == "" {
		c.add("workload.setup_check", "decides whether workload.setup runs, but there is no setup; add workload.setup or remove setup_check")
	}
	names := map[string]int{}
	for i, inv := range w.Invariants {
		f := fmt.Sprintf("workload.invariants[%d]", i)
		if strings.TrimSpace(inv.Name) == "" {
			c.add(f+".name", "must name the invariant, e.g. \"stock conserved\"")
		} else if j, dup := names[inv.Name]; dup {
			c.add(f+".name", "%q repeats workload.invariants[%d]; give each invariant its own name", inv.Name, j)
		} else {
			names[inv.Name] = i
		}
		if strings.TrimSpace(inv.SQL) == "" {
			c.add(f+".sql", "must be a query returning one value, e.g. \"SELECT sum(qty) FROM stock\"")
		}
		if inv.Expect != "unchanged" {
			if _, err := strconv.ParseFloat(inv.Expect, 64); err != nil {
				c.add(f+".expect", "must be unchanged or a number, e.g. 0 (got %q)", inv.Expect)
			}
		}
	}
	if a := w.Acknowledged; a != nil && (strings.TrimSpace(a.Table) == "" || strings.TrimSpace(a.Column) == "") {
		c.add("workload.acknowledged", "needs a table and a column, e.g. {table: orders, column: request_id}")
	}
}

// validateReplay checks the replay workload's section; the capture itself is read
// when the workload loads it.
func (s *Scenario) validateReplay(c *checker) {
	w := &s.Workload
	if w.Name != WorkloadReplay {
		if w.Capture != "" {
			c.add("workload.capture", "belongs to the replay workload; set workload.name: replay or remove it")
		}
		return
	}
	if strings.TrimSpace(w.Capture) == "" {
		c.add("workload.capture", "a replay needs a capture: the path of a PostgreSQL csvlog, relative to the scenario file")
	}
	if !(w.Speed > 0) || math.IsInf(w.Speed, 1) {
		c.add("workload.speed", "must be a positive factor, e.g. 2 replays twice as fast (got %g)", w.Speed)
	}
	if s.Load.Model == "closed" {
		c.add("load.model", "a replay follows its capture's timing (open loop); remove load.model: closed")
	}
}

func (s *Scenario) validateLoad(c *checker) {
	l := &s.Load
	c.oneOf("load.model", l.Model, loadModels)
	c.oneOf("load.arrival", l.Arrival, arrivals)
	c.oneOf("load.think_time.distribution", l.ThinkTime.Distribution, distributions)
	c.positiveInt("load.sessions", int64(l.Sessions))
	c.nonNegative("load.rate", l.Rate)
	if l.Model == "open" {
		c.positiveDuration("load.think_time.mean", l.ThinkTime.Mean)
	} else {
		c.nonNegativeDuration("load.think_time.mean", l.ThinkTime.Mean)
	}
	for i, st := range l.Stages {
		c.positiveDuration(fmt.Sprintf("load.stages[%d].duration", i), st.Duration)
		c.nonNegative(fmt.Sprintf("load.stages[%d].rate", i), st.Rate)
	}
	if l.Model == "closed" && len(l.Stages) > 0 {
		c.add("load.stages", "stages ramp the open model's arrival rate; the closed model runs as fast as its connections allow. Remove stages or set load.model: open")
	}
	c.positiveDuration("load.duration", l.Duration)
	c.positiveInt("load.pool_size", int64(l.PoolSize))
	if l.Workers < 0 {
		c.add("load.workers", "must be zero (2 × pool_size) or a positive integer, e.g. %d (got %d)", 2*max(l.PoolSize, 1), l.Workers)
	}
	c.positiveInt("load.connections", int64(l.Connections))
	c.positiveDuration("load.op_timeout", l.OpTimeout)
	c.positiveDuration("load.conn_max_lifetime", l.ConnMaxLifetime)
	c.nonNegativeDuration("load.grace", l.Grace)
	c.nonNegativeInt("load.max_retries", int64(l.MaxRetries))
}

func (s *Scenario) validateTarget(c *checker) {
	t := &s.Target
	c.oneOf("target.kind", string(t.Kind), targetKinds)
	c.oneOf("target.endpoint", string(t.Endpoint), endpointModes)
	c.positiveInt("target.max_connections", int64(t.MaxConnections))
	c.positiveDuration("target.dns_ttl", t.DNSTTL)
	if host, ok := splitListenAddr(t.DNSAddr); !ok || !isLoopbackIP(host) {
		c.add("target.dns_addr", "must be a loopback host:port with an IP address and a port of 0-65535, e.g. 127.0.0.1:5353 or 127.0.0.1:0 for any free port (got %q): the DNS server serves this run only", t.DNSAddr)
	}
	if !sharedBuffersRE.MatchString(t.SharedBuffers) {
		c.add("target.shared_buffers", "must be a PostgreSQL memory size such as 256MB or 1GB (units kB, MB, GB, TB); got %q", t.SharedBuffers)
	}
	if t.Kind != TargetAurora && t.DSN == "" && t.MaxConnections > 0 {
		// The rehearsal starts the server itself, so its max_connections must cover the
		// load's connections: both endpoints' pools can land on one node.
		inst := max(s.Client.AppInstances, 1)
		need := 2*inst*s.Load.PoolSize + reservedConnections
		what := "2 × load.pool_size"
		if inst > 1 {
			what = fmt.Sprintf("client.app_instances %d × client.pool_size %d × 2 endpoints", inst, s.Load.PoolSize)
		}
		if s.Load.Model == "closed" {
			need, what = s.Load.Connections+reservedConnections, "load.connections"
		}
		if s.Load.PoolSize > 0 && s.Load.Connections > 0 && t.MaxConnections < need {
			c.add("target.max_connections", "is %d but the load needs %s + %d = %d connections; raise it to at least %d or lower the load", t.MaxConnections, what, reservedConnections, need, need)
		}
	}
}

func (s *Scenario) validateCutover(c *checker) {
	cu := &s.Cutover
	c.oneOf("cutover.strategy", cu.Strategy, strategies)
	c.oneOf("cutover.kind", cu.Kind, cutoverKinds)
	c.positiveDuration("cutover.switchover_timeout", cu.SwitchoverTimeout)
	planSteps := StrategySteps(cu.Strategy)
	if planSteps == nil {
		planSteps = PlanSteps
	}
	if cu.Strategy == StrategyBlueGreen && cu.Kind == "crash" {
		c.add("cutover.kind", "a blue/green switchover is planned; kind crash applies to the in_cluster strategy")
	}
	c.nonNegativeDuration("cutover.warmup", cu.Warmup)
	c.positiveDuration("cutover.step_timeout", cu.StepTimeout)
	c.nonNegativeInt("cutover.catch_up_max_lag_bytes", cu.CatchUpMaxLagBytes)
	c.positiveInt("cutover.catch_up_samples", int64(cu.CatchUpSamples))
	c.nonNegativeDuration("cutover.stale_dns_window", cu.StaleDNSWindow)
	c.nonNegativeDuration("cutover.dns_propagation", cu.DNSPropagation)
	c.nonNegativeDuration("cutover.soak", cu.Soak)
	last, lastName := -1, ""
	seen := map[string]bool{}
	for i, step := range cu.Steps {
		field := fmt.Sprintf("cutover.steps[%d]", i)
		idx := slices.Index(planSteps, step)
		switch {
		case idx < 0:
			of := ""
			if cu.Strategy == StrategyBlueGreen {
				of = " for strategy blue_green"
			}
			c.add(field, "unknown step %q%s; steps are, in plan order: %s", step, of, strings.Join(planSteps, ", "))
		case seen[step]:
			c.add(field, "%q is listed twice; list each step once", step)
		case idx < last:
			c.add(field, "%q must come before %q: steps run in plan order (%s)", step, lastName, strings.Join(planSteps, ", "))
		default:
			last, lastName = idx, step
		}
		seen[step] = true
	}
	steps := cu.Steps
	if len(steps) == 0 {
		steps = planSteps
	}
	if slices.Contains(steps, "decommission") && !slices.Contains(steps, "validate") {
		c.add("cutover.steps", "decommission is gated on validate (and soak); add validate before it or drop decommission")
	}
	if slices.Contains(steps, "delete_deployment") && !slices.Contains(steps, "validate") {
		c.add("cutover.steps", "delete_deployment is gated on validate (and soak); add validate before it or drop delete_deployment")
	}
	if cu.Enabled && cu.Strategy == StrategyBlueGreen && s.Target.Kind != TargetAurora && s.Target.DSN != "" {
		c.add("cutover.strategy", "blue_green: target.dsn points at a database rehearse does not manage, so it cannot create a green copy of it or move its names; use target.kind local, container or aurora")
	}
	if cu.Rollback && cu.Strategy == StrategyBlueGreen {
		c.add("cutover.rollback", "a blue/green switchover has no failback to rehearse (the old blue is read-only and lacks green's writes); set rollback: false")
	}
	if cu.Rollback && cu.Strategy != StrategyBlueGreen && !slices.Contains(steps, "keep_rollback_target") {
		c.add("cutover.rollback", "failing back needs the old writer kept as a standby; add keep_rollback_target to cutover.steps or set rollback: false")
	}
	if cu.Enabled && s.Load.Duration > 0 && cu.Warmup >= s.Load.Duration {
		c.add("cutover.warmup", "is %s but the load runs only %s, so the cutover would start after the load stops; shorten the warmup or lengthen load.duration", formatDuration(cu.Warmup), formatDuration(s.Load.Duration))
	}
}

func (s *Scenario) validateSLO(c *checker) {
	o := &s.SLO
	ops := s.Ops()
	type key struct {
		op, phase  string
		percentile float64
	}
	seen := map[key]int{}
	for i, l := range o.Latency {
		prefix := fmt.Sprintf("slo.latency[%d]", i)
		if l.Op != "*" && ops != nil && !slices.Contains(ops, l.Op) {
			c.add(prefix+".op", "unknown operation %q for workload %s; use \"*\" (every operation) or one of: %s", l.Op, s.Workload.Name, strings.Join(ops, ", "))
		}
		c.oneOf(prefix+".phase", l.Phase, sloPhases)
		if !(l.Percentile > 0 && l.Percentile <= 100) {
			c.add(prefix+".percentile", "must be a percentile above 0 and at most 100, e.g. 99 or 99.9 (got %g)", l.Percentile)
		}
		if l.Max <= 0 {
			c.add(prefix+".max", "must be a positive duration: the highest tolerated latency, e.g. %s", example(prefix+".max"))
		}
		k := key{l.Op, l.Phase, l.Percentile}
		if j, dup := seen[k]; dup {
			c.add(prefix, "repeats slo.latency[%d] (op %q, phase %s, p%g); keep one limit per op, phase and percentile", j, l.Op, l.Phase, l.Percentile)
		} else {
			seen[k] = i
		}
	}
	if o.MaxErrorRate != nil {
		c.fraction("slo.max_error_rate", *o.MaxErrorRate)
	}
	if o.MaxAttemptErrorRate != nil {
		c.fraction("slo.max_attempt_error_rate", *o.MaxAttemptErrorRate)
	}
	c.nonNegativeDuration("slo.max_write_unavailable", o.MaxWriteUnavailable)
	c.nonNegativeDuration("slo.max_read_unavailable", o.MaxReadUnavailable)
	c.nonNegativeDuration("slo.max_recovery", o.MaxRecovery)
	c.nonNegativeInt("slo.max_lost_writes", o.MaxLostWrites)
	c.fraction("slo.min_achieved_rate", o.MinAchievedRate)
	c.nonNegative("slo.peak_rate", o.PeakRate)
}

func (s *Scenario) validateTelemetry(c *checker) {
	t := &s.Telemetry
	if t.MetricsAddr != "" {
		host, ok := splitListenAddr(t.MetricsAddr)
		switch {
		case !ok:
			c.add("telemetry.metrics_addr", "must be a loopback host:port such as 127.0.0.1:9464, a port of 0-65535 (got %q)", t.MetricsAddr)
		case !isLoopback(host) && !t.MetricsAllowRemote:
			c.add("telemetry.metrics_addr", "must be a loopback host:port such as 127.0.0.1:9464 (got %q): metrics are served to this machine only; to serve them beyond it, set telemetry.metrics_allow_remote: true (--metrics-allow-remote)", t.MetricsAddr)
		}
	}
	c.nonNegativeDuration("telemetry.metrics_linger", t.MetricsLinger)
	c.positiveDuration("telemetry.sample_interval", t.SampleInterval)
	if p := t.Price; p != nil {
		c.nonNegative("telemetry.price.acu_hour", p.ACUHour)
		c.nonNegative("telemetry.price.provisioned_hour", p.ProvisionedHour)
	}
	metrics := slices.Sorted(maps.Keys(DatabaseMetrics))
	for i, d := range s.SLO.Database {
		f := fmt.Sprintf("slo.database[%d]", i)
		if _, ok := DatabaseMetrics[d.Metric]; !ok {
			c.add(f+".metric", "unknown metric %q; use one of: %s", d.Metric, strings.Join(metrics, ", "))
		}
		c.oneOf(f+".stat", d.Stat, DatabaseStats)
		c.oneOf(f+".phase", d.Phase, sloPhases)
		switch node := strings.TrimSpace(d.Node); {
		case node == "":
			c.add(f+".node", "must name a node: %s, or a node's name", strings.Join(DatabaseNodes, ", "))
		case slices.Contains(DatabaseNodes, node):
		case s.Target.DSN == "" && (s.Target.Kind == TargetLocal || s.Target.Kind == TargetContainer) && !slices.Contains(s.localNodes(), node):
			// The nodes a local or container run has are known (the faults'
			// nodes are checked against them too); Aurora's and a DSN target's
			// names are only known at run time.
			c.add(f+".node", "unknown node %q; use one of: %s, or a node of the %s target: %s", d.Node, strings.Join(DatabaseNodes, ", "), s.Target.Kind, strings.Join(s.localNodes(), ", "))
		}
		c.nonNegative(f+".max", d.Max)
	}
}
