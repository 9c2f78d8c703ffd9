package main

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// errNoTPS is returned when pgbench's output has no tps line.
var errNoTPS = errors.New("pgbench output has no tps line")

// parsePgbench reads pgbench's summary: transactions, tps (without initial connection
// time), average latency and the -r per-statement latencies.
func parsePgbench(out string) (sample, error) {
	s := sample{tool: "pgbench"}
	inStatements := false
	for _, line := range strings.Split(out, "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "number of transactions actually processed:"):
			f := strings.Fields(strings.TrimPrefix(t, "number of transactions actually processed:"))
			if len(f) > 0 {
				n, _ := strconv.ParseInt(strings.Split(f[0], "/")[0], 10, 64)
				s.tx = n
			}
		case strings.HasPrefix(t, "number of failed transactions:"):
			f := strings.Fields(strings.TrimPrefix(t, "number of failed transactions:"))
			if len(f) > 0 {
				s.failed, _ = strconv.ParseInt(f[0], 10, 64)
			}
		case strings.HasPrefix(t, "latency average ="):
			f := strings.Fields(strings.TrimPrefix(t, "latency average ="))
			if len(f) > 0 {
				s.latAvg, _ = strconv.ParseFloat(f[0], 64)
			}
		case strings.HasPrefix(t, "tps =") && s.tps == 0:
			f := strings.Fields(strings.TrimPrefix(t, "tps ="))
			if len(f) > 0 {
				s.tps, _ = strconv.ParseFloat(f[0], 64)
			}
		case strings.HasPrefix(t, "statement latencies"):
			inStatements = true
		case inStatements && t != "":
			f := strings.Fields(t)
			if len(f) < 2 {
				continue
			}
			ms, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				inStatements = false
				continue
			}
			cmd := f[1:]
			if _, err := strconv.Atoi(cmd[0]); err == nil && len(cmd) > 1 {
				cmd = cmd[1:] // the failures column
			}
			sql := strings.Join(cmd, " ")
			if strings.HasPrefix(sql, `\set`) {
				continue
			}
			s.perStatement = append(s.perStatement, stmtLatency{ms: ms, sql: sql})
		}
	}
	if s.tps == 0 {
		return s, fmt.Errorf("%w:\n%s", errNoTPS, out)
	}
	return s, nil
}

// readPgbenchLogs reads the per-transaction latencies (ms) from pgbench's -l logs in
// dir: "client_id transaction_no time script_no time_epoch time_us", time in µs.
func readPgbenchLogs(dir string) ([]float64, error) {
	files, err := filepath.Glob(filepath.Join(dir, "pgbench_log.*"))
	if err != nil {
		return nil, err
	}
	var lats []float64
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseFloat(fields[2], 64)
			if err != nil {
				continue
			}
			lats = append(lats, us/1000)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
	}
	slices.Sort(lats)
	return lats, nil
}

// percentile returns the p-th percentile of sorted values (nearest rank).
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// median returns the median of xs.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func field(ss []sample, f func(sample) float64) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}
