package report

import (
	"bytes"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/result"
)

// withDatabase adds database numbers to the wet sample: pg-primary writes until
// the switchover (15.3-17.4 s), pg-replica-1 (created at 11.8 s) after it, with a
// Serverless v2 capacity series on the new writer, events, a cost line and a
// series that could not be collected.
func withDatabase(res *result.Result) *result.Result {
	series := func(node, metric, unit string, from, to float64, f func(t float64) float64) result.Series {
		s := result.Series{Node: node, Metric: metric, Unit: unit, Points: [][2]float64{}}
		for t := from; t <= to; t++ {
			s.Points = append(s.Points, [2]float64{t, math.Round(f(t)*1000) / 1000})
		}
		return s
	}
	primary, replica := "pg-primary", "pg-replica-1"
	writerUntil := func(node string, switched float64, busy, idle float64) func(float64) float64 {
		return func(t float64) float64 {
			w := t < switched
			if node == replica {
				w = !w
			}
			if w {
				return busy + 5*math.Sin(t)
			}
			return idle
		}
	}
	acu := series(replica, "acu", "ACU", 12, 39, func(t float64) float64 {
		if t < 17 {
			return 0.5
		}
		return math.Min(4, 0.5+(t-17)/2)
	})
	acu.Emulated = true
	util := series(replica, "acu_utilization", "percent", 12, 39, func(t float64) float64 { return 100 * math.Min(4, math.Max(0.5, 0.5+(t-17)/2)) / 4 })
	util.Emulated = true
	res.Database = &result.Database{
		Series: []result.Series{
			acu, util,
			series(primary, "connections", "count", 0, 33, writerUntil(primary, 17, 32, 4)),
			series(replica, "connections", "count", 12, 39, writerUntil(replica, 17, 32, 4)),
			series(primary, "cpu", "percent", 1, 33, writerUntil(primary, 17, 45, 5)),
			series(replica, "cpu", "percent", 13, 39, writerUntil(replica, 17, 55, 3)),
			series(replica, "replica_lag_s", "seconds", 12, 16, func(t float64) float64 { return 2 / (t - 11) }),
			series(primary, "replica_lag_s", "seconds", 22, 33, func(t float64) float64 { return 0.01 * (t - 21) }),
			series(primary, "tps", "tx/s", 1, 33, writerUntil(primary, 17, 400, 40)),
			series(replica, "tps", "tx/s", 13, 39, writerUntil(replica, 17, 420, 0)),
			series(primary, "wal_bytes", "bytes/s", 1, 16, func(t float64) float64 { return 2 << 20 }),
		},
		Events: []result.DBEvent{
			{TS: 0, Node: primary, Event: "present at the start (writer)"},
			{TS: 12, Node: replica, Event: "appeared (reader)"},
			{TS: 17, Node: primary, Event: "became reader"},
			{TS: 17, Node: replica, Event: "became writer"},
			{TS: 34, Node: primary, Event: "disappeared"},
		},
		Missing: []string{"read_iops and write_iops of pg-replica-1: its processes' I/O counters (/proc/<pid>/io) are not readable by this user"},
		Cost: &result.Cost{ACUHour: 0.12, ProvisionedHour: 0.29, MeanACU: 3.1, ServerlessPerHour: 0.37, ProvisionedPerHour: 0.29,
			Note: "An estimate from the rehearsal, not a quote."},
	}
	return res
}

func TestDatabaseMarkdownGolden(t *testing.T) {
	var b bytes.Buffer
	if err := Markdown(&b, withDatabase(sample(t, "sample-wet.json"))); err != nil {
		t.Fatal(err)
	}
	golden(t, "golden/report-database.md", b.Bytes())
}

func TestDatabaseChartsGolden(t *testing.T) {
	res := withDatabase(sample(t, "sample-wet.json"))
	charts := map[string]string{"cpu": dbChart(res, dbFamilies[0]), "connections": dbChart(res, dbFamilies[1]), "serverless": serverlessChart(res)}
	for name, svg := range charts {
		t.Run(name, func(t *testing.T) {
			wellFormed(t, svg)
			if strings.Contains(svg, "NaN") || strings.Contains(svg, "Inf") {
				t.Error("SVG contains NaN or Inf")
			}
			n := 0
			for _, m := range dataPoints.FindAllStringSubmatch(svg, -1) {
				k, _ := strconv.Atoi(m[1])
				n += k
			}
			if n == 0 {
				t.Error("no line has points")
			}
			golden(t, "golden/chart-db-"+name+".svg", []byte(svg))
		})
	}
}

func TestDatabaseSectionInHTML(t *testing.T) {
	external := regexp.MustCompile(`(?i)(<script|<link|<img|<iframe|@import|url\(|src=|https?://)`)
	empty := sample(t, "sample-wet.json")
	empty.Database = &result.Database{Series: []result.Series{}, Events: []result.DBEvent{}, Missing: []string{"cloudwatch:GetMetricData was denied: no CloudWatch series"}}
	tests := []struct {
		name        string
		res         *result.Result
		want, avoid []string
	}{
		{"series", withDatabase(sample(t, "sample-wet.json")),
			[]string{`<section id="database">`, `id="chart-db-cpu"`, `id="chart-db-connections"`, `id="chart-db-replica-lag-s"`, `id="chart-db-tps"`,
				`id="chart-db-wal"`, `id="chart-db-serverless"`, "pg-replica-1 (new writer)", "(emulated)", "Serverless v2", "$0.37 per hour",
				"Not collected:", "became writer", "<th>phase</th>"},
			[]string{`id="chart-db-iops"`, `id="chart-db-memory"`}},
		{"nothing collected", empty,
			[]string{`<section id="database">`, "Not collected:", "cloudwatch:GetMetricData was denied", "No database series were recorded."},
			[]string{`id="chart-db-`, "Serverless v2"}},
		{"no database section", sample(t, "sample-wet.json"), nil, []string{`<section id="database">`, "<h2>Database</h2>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := HTML(&b, tt.res); err != nil {
				t.Fatal(err)
			}
			page := b.String()
			for _, w := range tt.want {
				if !strings.Contains(page, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, a := range tt.avoid {
				if strings.Contains(page, a) {
					t.Errorf("page has %q", a)
				}
			}
			if m := external.FindString(strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, "")); m != "" {
				t.Errorf("page references something outside itself: %q", m)
			}
		})
	}
}

func TestCutoverPhases(t *testing.T) {
	res := sample(t, "sample-wet.json")
	during, after, ok := cutoverPhases(res)
	if !ok || during != 5.2 || after != 19.6 {
		t.Errorf("phases during %v after %v (%v), want 5.2 and 19.6", during, after, ok)
	}
	res.Migration = nil
	if _, _, ok := cutoverPhases(res); ok {
		t.Error("phases without a cutover")
	}
}

func TestFmtDB(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		unit string
		want string
	}{
		{12.345, "percent", "12.3%"}, {3 << 20, "bytes", "3.0 MB"}, {512, "bytes/s", "512 B/s"},
		{0.25, "seconds", "250 ms"}, {31, "count", "31"}, {420.4, "tx/s", "420 tx/s"}, {1.5, "ACU", "1.50 ACU"},
	} {
		if got := fmtDB(tt.v, tt.unit); got != tt.want {
			t.Errorf("fmtDB(%v, %s) = %q, want %q", tt.v, tt.unit, got, tt.want)
		}
	}
}
