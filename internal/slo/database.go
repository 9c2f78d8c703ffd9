package slo

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// Node roles a database SLO can name (scenarios.DatabaseNodes).
const (
	roleWriter         = "writer"
	roleReader         = "reader"
	roleReplica        = "replica"
	roleRollbackTarget = "rollback_target"
)

// databaseChecks evaluates each slo.database limit: a statistic of a metric's
// samples on a node in a phase. Roles are resolved from the migration record and
// the database events: the writer is the writer before the cutover for phase
// before, after it for phase after, and whichever node was the writer at each
// sample otherwise; the replica is the node create_replica made; the rollback
// target is the old writer kept as a standby (keep_rollback_target). A node that
// cannot be resolved, or has no series for the metric, fails the check with a
// reason naming the nodes the run had.
func databaseChecks(res *result.Result, limits []scenarios.DatabaseSLO) []result.SLOCheck {
	out := make([]result.SLOCheck, 0, len(limits))
	for _, l := range limits {
		out = append(out, databaseCheck(res, l))
	}
	return out
}

func databaseCheck(res *result.Result, l scenarios.DatabaseSLO) result.SLOCheck {
	node, phase, stat := orDefault(l.Node, roleWriter), orDefault(l.Phase, phaseAll), orDefault(l.Stat, "max")
	unit := scenarios.DatabaseMetrics[l.Metric]
	c := result.SLOCheck{Limit: l.Max, Unit: unit}
	name := func(resolved string) string {
		n := fmt.Sprintf("database %s %s %s", l.Metric, stat, node)
		if resolved != "" && resolved != node {
			n += " (" + resolved + ")"
		}
		n += " " + phase
		if unit != "" {
			n += " (" + unit + ")"
		}
		return n
	}
	c.Name = name("")
	db := res.Database
	if db == nil || len(db.Series) == 0 {
		c.Reason = "no database series were recorded"
		if db != nil && len(db.Missing) > 0 {
			c.Reason += ": " + strings.Join(db.Missing, "; ")
		}
		return c
	}
	ph := phasesOf(res)
	if phase != phaseAll && !ph.ok {
		c.Passed = true
		c.Reason = "not applicable: the run had no " + phase + " phase"
		return c
	}
	pts, resolved, reason := pointsFor(res, ph, l.Metric, node, phase)
	c.Name = name(resolved)
	if reason != "" {
		c.Reason = reason
		return c
	}
	if len(pts) == 0 {
		c.Reason = fmt.Sprintf("no %s samples of %s in phase %s", l.Metric, resolved, phase)
		return c
	}
	c.Value = statistic(pts, stat)
	c.Passed = c.Value <= c.Limit
	return c
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// phases is where the cutover's phases start on the run's timeline.
type phases struct {
	during, after float64
	ok            bool
}

// phasesOf finds the phases as the load's recorder marks them: during from the
// first step that changes the cluster, after from the end of the redirect (or of
// the plan, when it had no redirect).
func phasesOf(res *result.Result) phases {
	m := res.Migration
	if m == nil {
		return phases{}
	}
	p := phases{during: -1, after: -1}
	last := 0.0
	for _, s := range m.Steps {
		if s.Status == "skipped" {
			continue
		}
		last = s.EndS
		if p.during < 0 && s.Name != "preflight" && s.Name != "validate" {
			p.during = s.StartS
		}
		if s.Name == "redirect" && p.during >= 0 {
			p.after = s.EndS
		}
	}
	if p.during < 0 {
		return phases{}
	}
	if p.after < 0 {
		p.after = last
	}
	p.ok = true
	return p
}

// of names the phase of t.
func (p phases) of(t float64) string {
	switch {
	case !p.ok:
		return phaseAll
	case t < p.during:
		return result.PhaseBefore
	case t < p.after:
		return result.PhaseDuring
	}
	return result.PhaseAfter
}

func (p phases) in(t float64, phase string) bool { return phase == phaseAll || p.of(t) == phase }

// pointsFor returns the values of metric on node (a role or a name) in phase, the
// node it resolved to, or why it could not.
func pointsFor(res *result.Result, ph phases, metric, node, phase string) ([]float64, string, string) {
	db := res.Database
	series := map[string]result.Series{}
	for _, s := range db.Series {
		if s.Metric == metric {
			series[s.Node] = s
		}
	}
	values := func(n string, keep func(t float64) bool) ([]float64, string) {
		s, ok := series[n]
		if !ok {
			return nil, fmt.Sprintf("%s has no %s series%s", n, metric, missingFor(db, n, metric))
		}
		var out []float64
		for _, p := range s.Points {
			if ph.in(p[0], phase) && keep(p[0]) {
				out = append(out, p[1])
			}
		}
		return out, ""
	}
	all := func(float64) bool { return true }
	m := res.Migration
	switch node {
	case roleWriter:
		if m != nil && phase == result.PhaseBefore && m.WriterBefore != "" {
			v, why := values(m.WriterBefore, all)
			return v, m.WriterBefore, why
		}
		if m != nil && phase == result.PhaseAfter && m.WriterAfter != "" {
			v, why := values(m.WriterAfter, all)
			return v, m.WriterAfter, why
		}
		// Whichever node was the writer at each sample.
		w := writers(res)
		if len(w) == 0 {
			return nil, "", "no writer is known: " + nodesSentence(res)
		}
		var out []float64
		names := map[string]bool{}
		for _, n := range w.nodes() {
			v, _ := values(n, func(t float64) bool { return w.at(t) == n })
			if len(v) > 0 {
				names[n] = true
			}
			out = append(out, v...)
		}
		return out, strings.Join(slices.Sorted(maps.Keys(names)), "+"), ""
	case roleReplica:
		r := createdReplica(m)
		if r == "" {
			return nil, "", "no replica: the cutover created none (no create_replica step completed); " + nodesSentence(res)
		}
		v, why := values(r, all)
		return v, r, why
	case roleRollbackTarget:
		r := rollbackTarget(m)
		if r == "" {
			return nil, "", "no rollback target: no old writer was kept as a standby (keep_rollback_target did not complete); " + nodesSentence(res)
		}
		v, why := values(r, all)
		return v, r, why
	case roleReader:
		// Every node that was a reader in the phase; the check takes the worst.
		w := writers(res)
		var best []float64
		bestNode := ""
		for _, n := range slices.Sorted(maps.Keys(series)) {
			v, _ := values(n, func(t float64) bool { return w.at(t) != n })
			if len(v) > 0 && (best == nil || slices.Max(v) > slices.Max(best)) {
				best, bestNode = v, n
			}
		}
		if bestNode == "" {
			return nil, "", fmt.Sprintf("no reader has %s samples in phase %s; %s", metric, phase, nodesSentence(res))
		}
		return best, bestNode, ""
	}
	if !nodeExisted(res, node) {
		return nil, node, fmt.Sprintf("unknown node %s: %s", node, nodesSentence(res))
	}
	v, why := values(node, all)
	return v, node, why
}

// writerSpans is who the writer was over the run: from each start, that node.
type writerSpans []struct {
	from float64
	node string
}

func (w writerSpans) at(t float64) string {
	n := ""
	for _, s := range w {
		if s.from <= t {
			n = s.node
		}
	}
	return n
}

func (w writerSpans) nodes() []string {
	var out []string
	for _, s := range w {
		if !slices.Contains(out, s.node) {
			out = append(out, s.node)
		}
	}
	return out
}

// writers reads the writer's changes from the database events (the sampler's
// node events: "present at the start (writer)", "appeared (writer)", "became
// writer"), starting from the migration's writer before.
func writers(res *result.Result) writerSpans {
	var w writerSpans
	if m := res.Migration; m != nil && m.WriterBefore != "" {
		w = append(w, struct {
			from float64
			node string
		}{math.Inf(-1), m.WriterBefore})
	}
	for _, e := range res.Database.Events {
		if e.Event == "became writer" || strings.HasSuffix(e.Event, "(writer)") {
			from := e.TS
			if len(w) == 0 {
				from = math.Inf(-1)
			}
			w = append(w, struct {
				from float64
				node string
			}{from, e.Node})
		}
	}
	return w
}

// createdReplica is the node the cutover's create_replica step made.
func createdReplica(m *result.Migration) string {
	if m == nil {
		return ""
	}
	for _, s := range m.Steps {
		if s.Name == "create_replica" && s.Status == "ok" {
			if r, ok := s.Detail["replica"].(string); ok {
				return r
			}
		}
	}
	return ""
}

// rollbackTarget is the old writer kept as a standby of the new one; after a
// rollback, the replica that became the standby again.
func rollbackTarget(m *result.Migration) string {
	if m == nil {
		return ""
	}
	kept := false
	for _, s := range m.Steps {
		if s.Name == "keep_rollback_target" && s.Status == "ok" {
			kept = true
		}
	}
	switch {
	case !kept:
		return ""
	case m.Outcome == "rolled_back":
		return createdReplica(m)
	}
	return m.WriterBefore
}

// nodeExisted reports whether the run had a node of that name.
func nodeExisted(res *result.Result, node string) bool {
	return slices.Contains(runNodes(res), node)
}

// runNodes lists the nodes the run had: those with series or events.
func runNodes(res *result.Result) []string {
	seen := map[string]bool{}
	for _, s := range res.Database.Series {
		seen[s.Node] = true
	}
	for _, e := range res.Database.Events {
		seen[e.Node] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// nodesSentence lists the nodes that existed, with their roles where known.
func nodesSentence(res *result.Result) string {
	nodes := runNodes(res)
	if len(nodes) == 0 {
		return "the run had no nodes with series"
	}
	m := res.Migration
	parts := make([]string, len(nodes))
	for i, n := range nodes {
		var roles []string
		if m != nil && n == m.WriterBefore {
			roles = append(roles, "writer before")
		}
		if m != nil && n == m.WriterAfter {
			roles = append(roles, "writer after")
		}
		if n == createdReplica(m) {
			roles = append(roles, "replica")
		}
		if n == rollbackTarget(m) {
			roles = append(roles, "rollback target")
		}
		parts[i] = n
		if len(roles) > 0 {
			parts[i] += " (" + strings.Join(roles, ", ") + ")"
		}
	}
	return "the nodes were " + strings.Join(parts, ", ")
}

// missingFor quotes what database.missing says about a node's metric, if anything.
func missingFor(db *result.Database, node, metric string) string {
	var hits []string
	for _, m := range db.Missing {
		if strings.Contains(m, metric) || strings.Contains(m, node) || strings.Contains(m, "denied") {
			hits = append(hits, m)
		}
	}
	if len(hits) == 0 {
		return ""
	}
	return " (" + strings.Join(hits, "; ") + ")"
}

// statistic computes stat (min, mean, p50, p95, p99, max) of values; percentiles
// by the nearest-rank method.
func statistic(values []float64, stat string) float64 {
	v := slices.Sorted(slices.Values(values))
	switch stat {
	case "min":
		return v[0]
	case "mean":
		var sum float64
		for _, x := range v {
			sum += x
		}
		return sum / float64(len(v))
	case "p50", "p95", "p99":
		var p float64
		_, _ = fmt.Sscanf(stat, "p%g", &p)
		i := int(math.Ceil(p/100*float64(len(v)))) - 1
		return v[min(max(i, 0), len(v)-1)]
	}
	return v[len(v)-1]
}
