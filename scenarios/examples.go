package scenarios

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// examples gives an example value, written as in YAML, for fields whose default is
// zero or not a useful example. Keys are normalized paths (see normalizePath).
var examples = map[string]string{
	"name":                              "banking",
	"description":                       `"nightly rehearsal"`,
	"workload.name":                     "banking",
	"workload.mix":                      "{balance: 35, transfer: 20}",
	"workload.mix.*":                    "20",
	"workload.misrouted_write_fraction": "0.01",
	"workload.scripts":                  "[{file: sql/place_order.sql, weight: 60, kind: write}]",
	"workload.capture":                  "capture/postgresql.csv",
	"load.rate":                         "500",
	"load.stages":                       "[{duration: 30s, rate: 500}]",
	"load.stages[].duration":            "30s",
	"load.stages[].rate":                "500",
	"target.dsn":                        `"postgres://app@127.0.0.1:5432/bank"`,
	"cutover.steps":                     "[preflight, create_replica, catch_up]",
	"cutover.steps[]":                   "preflight",
	"cutover.catch_up_max_lag_bytes":    "1048576",
	"cutover.enabled":                   "true",
	"cutover.rollback":                  "true",
	"slo.latency":                       `[{op: "*", phase: during, percentile: 99, max: 2s}]`,
	"slo.latency[].op":                  "transfer",
	"slo.latency[].phase":               "during",
	"slo.latency[].percentile":          "99",
	"slo.latency[].max":                 "1s",
	"slo.max_error_rate":                "0.01",
	"slo.max_attempt_error_rate":        "0.05",
	"slo.max_write_unavailable":         "5s",
	"slo.max_read_unavailable":          "5s",
	"slo.max_lost_writes":               "0",
	"slo.min_achieved_rate":             "0.95",
	"slo.peak_rate":                     "4000",
	"slo.max_recovery":                  "10s",
	"telemetry.metrics_addr":            "127.0.0.1:9464",
	"telemetry.metrics_linger":          "30s",
	"telemetry.metrics_allow_remote":    "true",
	"cutover.settle":                    "5s",
	"cutover.abort_if":                  "[{metric: p99, window: 5s, max: 2s}]",
	"faults[].for":                      "5s",
	"faults[].jitter":                   "10ms",
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

// normalizePath turns "load.stages[2].rate" into "load.stages[].rate" and a mix key
// into "workload.mix.*".
func normalizePath(path string) string {
	p := indexRE.ReplaceAllString(path, "[]")
	if rest, ok := strings.CutPrefix(p, "workload.mix."); ok && rest != "" {
		return "workload.mix.*"
	}
	return p
}

// example returns an example value for the field at path: an explicit one, else the
// field's default, else a generic one.
func example(path string) string {
	p := normalizePath(path)
	if e, ok := examples[p]; ok {
		return e
	}
	if e, ok := defaultExample(p); ok {
		return e
	}
	return "a value"
}

// exampleKey returns an example key for the map at path.
func exampleKey(path string) string {
	if normalizePath(path) == "workload.mix" {
		return "transfer"
	}
	return "name"
}

// defaultExample formats the non-zero default of the field at normalized path p.
func defaultExample(p string) (string, bool) {
	def := Defaults()
	v := reflect.ValueOf(def)
	for part := range strings.SplitSeq(p, ".") {
		if strings.Contains(part, "[") {
			return "", false
		}
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return "", false
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return "", false
		}
		found := false
		for _, f := range fieldsOf(v.Type()) {
			if f.name == part {
				v, found = v.Field(f.index), true
				break
			}
		}
		if !found {
			return "", false
		}
	}
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "", false
		}
		v = v.Elem()
	}
	if v.IsZero() {
		return "", false
	}
	if v.Type() == durationType {
		return formatDuration(Duration(v.Int())), true
	}
	switch v.Kind() {
	case reflect.String:
		return v.String(), true
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), true
	case reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10), true
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64), true
	case reflect.Bool:
		return fmt.Sprint(v.Bool()), true
	}
	return "", false
}

// formatDuration writes d as a person would: "1m" rather than Go's "1m0s".
func formatDuration(d Duration) string {
	out := d.String()
	if strings.HasSuffix(out, "m0s") {
		out = strings.TrimSuffix(out, "0s")
	}
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	return out
}
