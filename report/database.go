package report

import (
	"cmp"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/rehearse-dev/rehearse/result"
)

// dbFamily is one chart of the Database section: metrics that share a unit, one
// line per node (and a dashed one for the family's second metric).
type dbFamily struct {
	id, title, axis string
	metrics         []string
	// single is the title when only the first metric has series.
	single string
}

// dbFamilies are the Database section's charts, in page order. Serverless v2
// capacity has a panel of its own (serverlessPanel).
var dbFamilies = []dbFamily{
	{"cpu", "CPU", "CPU %", []string{"cpu"}, ""},
	{"connections", "Connections: all and active (dashed)", "connections", []string{"connections", "connections_active"}, "Connections"},
	{"replica-lag-s", "Replication lag per replica (seconds)", "lag (s)", []string{"replica_lag_s"}, ""},
	{"replica-lag-bytes", "Replication lag per replica (bytes of WAL)", "lag (bytes)", []string{"replica_lag_bytes"}, ""},
	{"tps", "Transactions per second: all and rolled back (dashed)", "tx/s", []string{"tps", "rollbacks"}, "Transactions per second"},
	{"wal", "WAL written per second", "bytes/s", []string{"wal_bytes"}, ""},
	{"iops", "I/O operations per second: reads and writes (dashed)", "ops/s", []string{"read_iops", "write_iops"}, "Read I/O operations per second"},
	{"memory", "Memory: resident and freeable (dashed)", "bytes", []string{"rss", "freeable_memory"}, "Resident memory"},
	{"checkpoints", "Checkpoints since the start", "checkpoints", []string{"checkpoints"}, ""},
}

// dbMetricNames says in words what each metric is, for tables.
var dbMetricNames = map[string]string{
	"cpu": "CPU", "rss": "resident memory", "read_iops": "read IOPS", "write_iops": "write IOPS",
	"tps": "transactions/s", "rollbacks": "rollbacks/s", "connections": "connections",
	"connections_active": "active connections", "replica_lag_bytes": "replica lag (bytes)",
	"replica_lag_s": "replica lag (s)", "wal_bytes": "WAL bytes/s", "checkpoints": "checkpoints",
	"acu": "capacity (ACU)", "acu_utilization": "ACU utilization", "freeable_memory": "freeable memory",
}

// cutoverPhases returns where the during and after phases start on res's
// timeline, as the load's phases do: during at the first step that changes the
// cluster, after at the end of the redirect (or of the plan, when it had none).
// ok is false when no such step ran.
func cutoverPhases(res *result.Result) (during, after float64, ok bool) {
	m := res.Migration
	if m == nil {
		return 0, 0, false
	}
	during, after = -1, -1
	last := 0.0
	for _, s := range m.Steps {
		if s.Status == "skipped" {
			continue
		}
		last = s.EndS
		if during < 0 && s.Name != "preflight" && s.Name != "validate" {
			during = s.StartS
		}
		if s.Name == "redirect" && during >= 0 {
			after = s.EndS
		}
	}
	if during < 0 {
		return 0, 0, false
	}
	if after < 0 {
		after = last
	}
	return during, after, true
}

// phaseAt names the phase of a time on res's timeline ("all" without a cutover).
func phaseAt(t, during, after float64, ok bool) string {
	switch {
	case !ok:
		return phaseAll
	case t < during:
		return result.PhaseBefore
	case t < after:
		return result.PhaseDuring
	default:
		return result.PhaseAfter
	}
}

// dbNodes orders the nodes of the database series: the writer before the cutover,
// the writer after it, then the others by name.
func dbNodes(res *result.Result) []string {
	seen := map[string]bool{}
	var names []string
	for _, s := range res.Database.Series {
		if !seen[s.Node] {
			seen[s.Node] = true
			names = append(names, s.Node)
		}
	}
	rank := func(n string) int {
		if m := res.Migration; m != nil {
			switch n {
			case m.WriterBefore:
				return 0
			case m.WriterAfter:
				return 1
			}
		}
		return 2
	}
	slices.SortStableFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b)) })
	return names
}

// nodeRole says what a node was to the cutover: the writer throughout, the old
// writer or the new one ("" for any other node).
func nodeRole(res *result.Result, node string) string {
	m := res.Migration
	switch {
	case m == nil:
		return ""
	case node == m.WriterBefore && node == m.WriterAfter:
		return "writer"
	case node == m.WriterBefore:
		return "old writer"
	case node == m.WriterAfter:
		return "new writer"
	}
	return ""
}

// nodeLabel names a node with its role: "node2 (new writer)".
func nodeLabel(res *result.Result, node string) string {
	if r := nodeRole(res, node); r != "" {
		return node + " (" + r + ")"
	}
	return node
}

// dbColors gives each node its colour, the same in every chart.
func dbColors(res *result.Result) map[string]string {
	out := map[string]string{}
	for i, n := range dbNodes(res) {
		out[n] = palette[i%len(palette)]
	}
	return out
}

// dbSeries returns the series of metric, in node order.
func dbSeries(res *result.Result, metric string) []result.Series {
	var out []result.Series
	for _, n := range dbNodes(res) {
		for _, s := range res.Database.Series {
			if s.Node == n && s.Metric == metric {
				out = append(out, s)
			}
		}
	}
	return out
}

// dbEvents are the database events worth marking on the charts: what happened
// during the run, not the nodes that were there from the start.
func dbEvents(res *result.Result) []result.DBEvent {
	var out []result.DBEvent
	for _, e := range res.Database.Events {
		if !strings.HasPrefix(e.Event, "present at the start") {
			out = append(out, e)
		}
	}
	return out
}

// dbStat is one series' statistics over one phase.
type dbStat struct {
	Metric, Unit, Node, Phase string
	N                         int
	Min, Mean, P95, Max       float64
	Emulated                  bool
}

// dbStats computes each series' statistics per phase (or over the run without a
// cutover), in the order of the charts.
func dbStats(res *result.Result) []dbStat {
	during, after, ok := cutoverPhases(res)
	var order []string
	for _, f := range dbFamilies {
		order = append(order, f.metrics...)
	}
	order = append(order, "acu", "acu_utilization")
	var out []dbStat
	for _, metric := range order {
		for _, s := range dbSeries(res, metric) {
			by := map[string][]float64{}
			for _, p := range s.Points {
				ph := phaseAt(p[0], during, after, ok)
				by[ph] = append(by[ph], p[1])
			}
			for _, ph := range []string{result.PhaseBefore, result.PhaseDuring, result.PhaseAfter, phaseAll} {
				v := by[ph]
				if len(v) == 0 {
					continue
				}
				slices.Sort(v)
				var sum float64
				for _, x := range v {
					sum += x
				}
				out = append(out, dbStat{Metric: metric, Unit: s.Unit, Node: s.Node, Phase: ph, N: len(v),
					Min: v[0], Mean: sum / float64(len(v)), P95: nearestRank(v, 95), Max: v[len(v)-1], Emulated: s.Emulated})
			}
		}
	}
	return out
}

// nearestRank is the p-th percentile of sorted values by the nearest-rank method.
func nearestRank(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// fmtDB formats a database value in its unit.
func fmtDB(v float64, unit string) string {
	switch unit {
	case "bytes", "bytes/s":
		suffix := strings.TrimPrefix(unit, "bytes")
		return fmtBytes(v) + suffix
	case "percent":
		return strconv.FormatFloat(v, 'f', 1, 64) + "%"
	case "seconds":
		return fmtDuration(v)
	case "count":
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		prec := 2
		switch {
		case math.Abs(v) >= 100:
			prec = 0
		case math.Abs(v) >= 10:
			prec = 1
		}
		return strconv.FormatFloat(v, 'f', prec, 64) + " " + unit
	}
}

// fmtBytes formats a byte count: 512 B, 1.5 MB (powers of 1024).
func fmtBytes(v float64) string {
	units := []string{"B", "KB", "MB", "GB", "TB"}
	i := 0
	for math.Abs(v) >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatFloat(v, 'f', 0, 64) + " B"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
}

// serverlessRows summarises the ACU series: the highest capacity, the mean after
// the cutover and how long each node ran at its maximum.
func serverlessRows(res *result.Result) []kv {
	during, after, ok := cutoverPhases(res)
	var rows []kv
	util := map[string]result.Series{}
	for _, s := range dbSeries(res, "acu_utilization") {
		util[s.Node] = s
	}
	for _, s := range dbSeries(res, "acu") {
		name := nodeLabel(res, s.Node)
		peak, sum, n := 0.0, 0.0, 0
		for _, p := range s.Points {
			peak = math.Max(peak, p[1])
			if !ok || phaseAt(p[0], during, after, ok) == result.PhaseAfter {
				sum += p[1]
				n++
			}
		}
		rows = append(rows, kv{name + ": highest capacity", fmtDB(peak, "ACU")})
		if n > 0 {
			label := name + ": mean capacity after the cutover"
			if !ok {
				label = name + ": mean capacity"
			}
			rows = append(rows, kv{label, fmtDB(sum/float64(n), "ACU")})
		}
		if u, found := util[s.Node]; found {
			step := seriesGap(u) / 2.5
			at := 0
			for _, p := range u.Points {
				if p[1] >= 99.5 {
					at++
				}
			}
			rows = append(rows, kv{name + ": time at the maximum ACU", fmtDuration(float64(at) * step)})
		} else {
			rows = append(rows, kv{name + ": time at the maximum ACU", "unknown (no ACUUtilization series)"})
		}
	}
	if c := res.Database.Cost; c != nil {
		rows = append(rows,
			kv{"estimated cost on Serverless v2", fmt.Sprintf("$%.2f per hour (%.2f ACU × $%g)", c.ServerlessPerHour, c.MeanACU, c.ACUHour)},
			kv{"the provisioned instance it replaces", fmt.Sprintf("$%.2f per hour", c.ProvisionedPerHour)})
	}
	return rows
}

// databaseHTML renders the Database section's body: what is missing, the charts,
// the Serverless v2 panel, the events and the per-phase table.
func databaseHTML(res *result.Result) string {
	db := res.Database
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<section id="database">`)
	p(`<p class="sub">The database's own numbers, sampled per node on the run's timeline: one line per node, the cutover's steps as bands, numbered marks for the events listed below.`)
	if emulatedAny(db) {
		p(` Series marked emulated were derived by the RDS API emulator from the local cluster it runs on (capacity estimated from CPU and memory), not measured by AWS.`)
	}
	p(`</p>`)
	if len(db.Missing) > 0 {
		p(`<p class="bad">Not collected:</p><ul class="missing">`)
		for _, m := range db.Missing {
			p(`<li>%s</li>`, esc(m))
		}
		p(`</ul>`)
	}
	if len(db.Series) == 0 {
		p(`<p class="na">No database series were recorded.</p>`)
	}
	for _, f := range dbFamilies {
		n := 0
		for _, m := range f.metrics {
			n += len(dbSeries(res, m))
		}
		if n == 0 {
			continue
		}
		p(`<figure><figcaption>%s</figcaption>%s</figure>`, esc(familyTitle(res, f)), dbChart(res, f))
	}
	if len(dbSeries(res, "acu")) > 0 {
		p(`<h3>Serverless v2</h3><figure><figcaption>Capacity against the load</figcaption>%s</figure>`, serverlessChart(res))
		p(`<table class="kv">`)
		for _, r := range serverlessRows(res) {
			p(`<tr><th>%s</th><td>%s</td></tr>`, esc(r.K), esc(r.V))
		}
		p(`</table>`)
		if c := db.Cost; c != nil {
			p(`<p class="sub">%s</p>`, esc(c.Note))
		}
	}
	if ev := dbEvents(res); len(ev) > 0 {
		p(`<h3>Events</h3><table><tr><th class="n">#</th><th class="n">time</th><th>node</th><th>event</th></tr>`)
		for i, e := range ev {
			p(`<tr><td class="n">%d</td><td class="n">%s</td><td>%s</td><td>%s</td></tr>`, i+1, esc(fmtSec(e.TS)), esc(e.Node), esc(e.Event))
		}
		p(`</table>`)
	}
	if st := dbStats(res); len(st) > 0 {
		p(`<h3>Per phase</h3><table><tr><th>metric</th><th>node</th><th>phase</th><th class="n">samples</th><th class="n">min</th><th class="n">mean</th><th class="n">p95</th><th class="n">max</th></tr>`)
		for _, s := range st {
			name := dbMetricNames[s.Metric]
			if s.Emulated {
				name += " (emulated)"
			}
			p(`<tr><td>%s</td><td>%s</td><td>%s</td><td class="n">%d</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s</td></tr>`,
				esc(name), esc(nodeLabel(res, s.Node)), esc(s.Phase), s.N,
				esc(fmtDB(s.Min, s.Unit)), esc(fmtDB(s.Mean, s.Unit)), esc(fmtDB(s.P95, s.Unit)), esc(fmtDB(s.Max, s.Unit)))
		}
		p(`</table>`)
	}
	p(`</section>`)
	return b.String()
}

func emulatedAny(db *result.Database) bool {
	for _, s := range db.Series {
		if s.Emulated {
			return true
		}
	}
	return false
}

// databaseSection is the Database section for the HTML report ("" when the
// result has no database numbers).
func databaseSection(res *result.Result) template.HTML {
	if res.Database == nil {
		return ""
	}
	return template.HTML(databaseHTML(res)) //nolint:gosec // built from escaped parts
}

// mdDatabase writes the Database section: what is missing, the Serverless v2
// summary, the events and each series per phase.
func mdDatabase(w io.Writer, res *result.Result) {
	db := res.Database
	if db == nil {
		return
	}
	fmt.Fprintf(w, "\n## Database\n\nThe database's own numbers, sampled per node on the run's timeline (the charts are in report.html).\n")
	if emulatedAny(db) {
		fmt.Fprintf(w, "Series marked emulated were derived by the RDS API emulator from the local cluster it runs on, not measured by AWS.\n")
	}
	if len(db.Missing) > 0 {
		fmt.Fprintf(w, "\nNot collected:\n\n")
		for _, m := range db.Missing {
			fmt.Fprintf(w, "- %s\n", mdText(m))
		}
	}
	if len(dbSeries(res, "acu")) > 0 {
		fmt.Fprintf(w, "\n### Serverless v2\n\n")
		mdKV(w, serverlessRows(res))
		if c := db.Cost; c != nil {
			fmt.Fprintf(w, "\n%s\n", mdText(c.Note))
		}
	}
	if ev := dbEvents(res); len(ev) > 0 {
		fmt.Fprintf(w, "\n### Events\n\n")
		mdTable(w, []string{"time", "node", "event"}, "--:|---|---")
		for _, e := range ev {
			mdRow(w, fmtSec(e.TS), e.Node, e.Event)
		}
	}
	st := dbStats(res)
	if len(st) == 0 {
		fmt.Fprintf(w, "\nNo database series were recorded.\n")
		return
	}
	fmt.Fprintf(w, "\n### Per phase\n\n")
	mdTable(w, []string{"metric", "node", "phase", "samples", "min", "mean", "p95", "max"}, "---|---|---|--:|--:|--:|--:|--:")
	for _, s := range st {
		name := dbMetricNames[s.Metric]
		if s.Emulated {
			name += " (emulated)"
		}
		mdRow(w, name, nodeLabel(res, s.Node), s.Phase, strconv.Itoa(s.N), fmtDB(s.Min, s.Unit), fmtDB(s.Mean, s.Unit), fmtDB(s.P95, s.Unit), fmtDB(s.Max, s.Unit))
	}
}
