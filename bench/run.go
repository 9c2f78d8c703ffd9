package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate/local"
	"github.com/rehearse-dev/rehearse/result"
)

// settings are the run command's flags.
type settings struct {
	rehearse      string
	work          string
	out           string
	analysis      string
	micro         string
	duration      time.Duration
	reps          int
	scale         int
	sessions      []int
	sessionRate   float64
	sessionDur    time.Duration
	bankingRate   float64
	maxConns      int
	keepServer    bool
	cutover       bool
	commandPrefix string
}

func parseRunFlags(args []string) (settings, error) {
	var s settings
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&s.rehearse, "rehearse", "bin/rehearse", "the rehearse binary to measure")
	fs.StringVar(&s.work, "work", "", "work directory (server data, run outputs, pgbench logs); default: a new temporary directory")
	fs.StringVar(&s.out, "out", "BENCHMARKS.md", "the report to write")
	fs.StringVar(&s.analysis, "analysis", "bench/analysis.md", "hand-written analysis appended to the report verbatim")
	fs.StringVar(&s.micro, "micro", "", "output of `go test -bench` to include (optional)")
	fs.DurationVar(&s.duration, "duration", 15*time.Second, "length of each pgbench and rehearse run")
	fs.IntVar(&s.reps, "reps", 3, "repetitions of each tool per workload (alternating)")
	fs.IntVar(&s.scale, "scale", 10, "pgbench scale factor")
	sess := fs.String("sessions", "10000,100000,1000000", "simulated session counts for the memory runs")
	fs.Float64Var(&s.sessionRate, "session-rate", 1000, "target arrival rate (actions/s) of the memory and schedule runs")
	fs.DurationVar(&s.sessionDur, "session-duration", 20*time.Second, "length of each memory and schedule run")
	fs.Float64Var(&s.bankingRate, "banking-rate", 2000, "arrival rate (actions/s) of the banking open-loop CPU runs (0: none)")
	fs.IntVar(&s.maxConns, "max-connections", 200, "the server's max_connections")
	fs.BoolVar(&s.keepServer, "keep", false, "leave the server and work directory in place")
	fs.BoolVar(&s.cutover, "cutover", true, "also rehearse wet cutovers of the smoke scenario through both endpoint modes")
	fs.StringVar(&s.commandPrefix, "command", "make bench", "how this run was started, for the report")
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	for _, f := range strings.Split(*sess, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return s, fmt.Errorf("--sessions: %q is not a positive integer", f)
		}
		s.sessions = append(s.sessions, n)
	}
	if s.reps < 1 {
		return s, errors.New("--reps must be at least 1")
	}
	return s, nil
}

// sample is one tool's run of one workload.
type sample struct {
	tool   string
	m      measured
	tx     int64
	secs   float64
	tps    float64
	latAvg float64 // ms
	p50    float64 // ms
	p99    float64 // ms
	// perStatement is pgbench's -r report (statement → average ms).
	perStatement []stmtLatency
	failed       int64
}

type stmtLatency struct {
	ms  float64
	sql string
}

// cpuPer1000 is the tool's CPU seconds (user+sys) per 1,000 transactions.
func (s sample) cpuPer1000() float64 {
	if s.tx == 0 {
		return 0
	}
	return s.m.CPU() / float64(s.tx) * 1000
}

// comparison is one workload measured with both tools.
type comparison struct {
	name        string
	conns       int
	pgbenchArgs []string
	scenario    string
	pgbench     []sample
	rehearse    []sample
}

// bench is one whole `make bench` run.
type bench struct {
	s        settings
	log      io.Writer
	root     string // repository root (the working directory)
	work     string
	bin      local.Binaries
	dsn      string
	started  time.Time
	loadBeg  string
	loadEnd  string
	comps    []*comparison
	sessions []sessionRun
	banking  []sessionRun
	cutovers []cutoverRun
	notes    []string
}

// runCmd is the run command: it measures both tools on a fresh server and writes
// the report.
func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseRunFlags(args)
	if err != nil {
		return err
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	b := &bench{s: s, log: stderr, root: root, started: time.Now().UTC(), loadBeg: loadavg()}
	if _, err := os.Stat(s.rehearse); err != nil {
		return fmt.Errorf("no rehearse binary at %s (run make build): %w", s.rehearse, err)
	}
	if err := b.makeWork(); err != nil {
		return err
	}
	if !s.keepServer && s.work == "" {
		defer os.RemoveAll(b.work)
	}

	node, err := b.startServer(ctx)
	if err != nil {
		return err
	}
	defer b.stopServer(ctx, node)

	if err := b.initPgbench(ctx); err != nil {
		return err
	}
	if err := b.measureAll(ctx); err != nil {
		return err
	}
	b.loadEnd = loadavg()
	return b.writeReport(stdout)
}

// makeWork sets b.work to the absolute path of the work directory, --work or a new
// temporary directory, and creates it.
func (b *bench) makeWork() error {
	var err error
	b.work = b.s.work
	if b.work == "" {
		if b.work, err = os.MkdirTemp("", "rehearse-bench-"); err != nil {
			return err
		}
	}
	if b.work, err = filepath.Abs(b.work); err != nil {
		return err
	}
	if err := os.MkdirAll(b.work, 0o755); err != nil {
		return err
	}
	// The server runs as an unprivileged user when we are root: it must be able to
	// reach its data directory.
	_ = os.Chmod(b.work, 0o755)
	return nil
}

// stopServer stops the server at the end of the run, with a minute's grace even
// when ctx is cancelled, or leaves it running with --keep.
func (b *bench) stopServer(ctx context.Context, node *local.Node) {
	if b.s.keepServer {
		fmt.Fprintf(b.log, "server kept running: %s\n", b.dsn)
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := node.Close(cctx); err != nil {
		fmt.Fprintf(b.log, "warning: stopping PostgreSQL: %v\n", err)
	}
}

// measureAll runs every measurement the report has, one after another on the one
// server: both tools on each workload, the session-count runs and, with --cutover,
// a wet cutover through each endpoint mode.
func (b *bench) measureAll(ctx context.Context) error {
	b.comps = []*comparison{
		{name: "TPC-B", conns: 8, pgbenchArgs: []string{"-c", "8", "-j", "2", "-M", "prepared"}, scenario: "scenarios/tpcb.yaml"},
		{name: "select-only", conns: 32, pgbenchArgs: []string{"-S", "-c", "32", "-j", "2", "-M", "prepared"}, scenario: "scenarios/tpcb-select.yaml"},
	}
	for _, c := range b.comps {
		if err := b.compare(ctx, c); err != nil {
			return err
		}
	}
	for _, n := range b.s.sessions {
		r, err := b.sessionRun(ctx, n, b.s.sessionRate, fmt.Sprintf("rehearse-sessions-%d", n))
		if err != nil {
			return err
		}
		b.sessions = append(b.sessions, r)
	}
	if b.s.bankingRate > 0 {
		// The open loop's CPU per action: repeated, as the comparisons are, to see
		// its spread on a shared machine.
		for rep := range b.s.reps {
			r, err := b.sessionRun(ctx, bankingSessions, b.s.bankingRate, fmt.Sprintf("rehearse-banking-%d", rep+1))
			if err != nil {
				return err
			}
			b.banking = append(b.banking, r)
		}
	}
	if b.s.cutover {
		for _, mode := range []string{"proxy", "dns"} {
			r, err := b.cutover(ctx, mode)
			if err != nil {
				return err
			}
			b.cutovers = append(b.cutovers, r)
		}
	}
	return nil
}

// writeReport renders the report, with the micro-benchmarks and the hand-written
// analysis when there are any, and writes it to --out atomically.
func (b *bench) writeReport(stdout io.Writer) error {
	s := b.s
	var micro string
	if s.micro != "" {
		data, err := os.ReadFile(s.micro)
		if err != nil {
			return fmt.Errorf("reading micro-benchmarks: %w", err)
		}
		micro = string(data)
	}
	var analysis string
	if data, err := os.ReadFile(s.analysis); err == nil {
		analysis = string(data)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var md bytes.Buffer
	b.render(&md, micro, analysis)
	if err := result.WriteFileAtomic(s.out, func(w io.Writer) error { _, err := w.Write(md.Bytes()); return err }); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", s.out)
	return nil
}

func (b *bench) startServer(ctx context.Context) (*local.Node, error) {
	bin, err := local.FindBinaries(ctx, "")
	if err != nil {
		return nil, err
	}
	b.bin = bin
	fmt.Fprintf(b.log, "starting PostgreSQL %s in %s (fsync on)\n", bin.Version, b.work)
	node, err := local.InitPrimary(ctx, local.Config{
		Dir: filepath.Join(b.work, "pg"), Name: "bench", Fsync: true,
		MaxConnections: b.s.maxConns, Log: b.log, Bin: bin,
	})
	if err != nil {
		return nil, err
	}
	b.dsn = node.DSN(local.Database)
	return node, nil
}

func (b *bench) pgbench() string { return b.bin.Path("pgbench") }

func (b *bench) initPgbench(ctx context.Context) error {
	m, err := runMeasured(ctx, b.work, b.log, b.pgbench(), "-i", "-s", strconv.Itoa(b.s.scale), "-q", b.dsn)
	if err != nil {
		return err
	}
	if m.Exit != 0 {
		return fmt.Errorf("pgbench -i failed:\n%s", m.Stdout)
	}
	return nil
}

// checkpoint flushes dirty pages so that each run starts from the same state rather
// than paying for its predecessor's writes.
func (b *bench) checkpoint(ctx context.Context) {
	conn, err := pgx.Connect(ctx, b.dsn)
	if err != nil {
		fmt.Fprintf(b.log, "warning: checkpoint: %v\n", err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		fmt.Fprintf(b.log, "warning: checkpoint: %v\n", err)
	}
}

// compare runs pgbench and rehearse alternately, reps times each, swapping which goes
// first every repetition so neither always runs on a warmer (or more bloated) table.
func (b *bench) compare(ctx context.Context, c *comparison) error {
	for rep := range b.s.reps {
		order := []string{"pgbench", "rehearse"}
		if rep%2 == 1 {
			order = []string{"rehearse", "pgbench"}
		}
		for _, tool := range order {
			b.checkpoint(ctx)
			var (
				s   sample
				err error
			)
			if tool == "pgbench" {
				s, err = b.runPgbench(ctx, c, rep)
				c.pgbench = append(c.pgbench, s)
			} else {
				s, err = b.runRehearse(ctx, c, rep)
				c.rehearse = append(c.rehearse, s)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(b.log, "%s %s rep %d: %.0f tps, %.3f CPU s/1000 tx\n", c.name, tool, rep+1, s.tps, s.cpuPer1000())
		}
	}
	return nil
}

func (b *bench) runPgbench(ctx context.Context, c *comparison, rep int) (sample, error) {
	dir := filepath.Join(b.work, fmt.Sprintf("pgbench-%s-%d", safe(c.name), rep+1))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sample{}, err
	}
	args := append([]string{}, c.pgbenchArgs...)
	// -r: per-statement latencies; -l with a 10 % sample: per-transaction latencies
	// for percentiles, cheap enough not to slow pgbench down noticeably.
	args = append(args, "-T", strconv.Itoa(int(b.s.duration.Seconds())), "-r",
		"-l", "--sampling-rate", "0.1", "--log-prefix", filepath.Join(dir, "pgbench_log"), "-n", b.dsn)
	m, err := runMeasured(ctx, dir, b.log, b.pgbench(), args...)
	if err != nil {
		return sample{}, err
	}
	if m.Exit != 0 {
		return sample{}, fmt.Errorf("pgbench failed (exit %d):\n%s", m.Exit, m.Stdout)
	}
	s, err := parsePgbench(m.Stdout)
	if err != nil {
		return sample{}, err
	}
	s.m = m
	s.secs = b.s.duration.Seconds()
	lats, err := readPgbenchLogs(dir)
	if err != nil {
		return sample{}, err
	}
	s.p50, s.p99 = percentile(lats, 50), percentile(lats, 99)
	return s, nil
}

func safe(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "-")) }

func (b *bench) runRehearse(ctx context.Context, c *comparison, rep int) (sample, error) {
	out := filepath.Join(b.work, fmt.Sprintf("rehearse-%s-%d", safe(c.name), rep+1))
	m, err := runMeasured(ctx, b.root, b.log, b.s.rehearse, "run", c.scenario, "--dsn", b.dsn,
		"--duration", b.s.duration.String(), "--quiet", "--out", out)
	if err != nil {
		return sample{}, err
	}
	res, err := readResult(out, m)
	if err != nil {
		return sample{}, err
	}
	s := sample{tool: "rehearse", m: m, tx: res.Totals.Succeeded, secs: res.DurationS, failed: res.Totals.Failed + res.Totals.Ambiguous}
	if s.secs > 0 {
		s.tps = float64(s.tx) / s.secs
		// Closed loop: mean latency by Little's law, as pgbench computes its average.
		s.latAvg = float64(c.conns) / s.tps * 1000
	}
	if len(res.Operations) > 0 {
		s.p50, s.p99 = res.Operations[0].LatencyMs.P50, res.Operations[0].LatencyMs.P99
	}
	return s, nil
}

func readResult(dir string, m measured) (*result.Result, error) {
	data, err := os.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil {
		return nil, fmt.Errorf("rehearse wrote no result (exit %d):\n%s", m.Exit, m.Stdout)
	}
	var res result.Result
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("reading %s/result.json: %w", dir, err)
	}
	return &res, nil
}

// sessionRun is one open-loop run with many simulated sessions.
type sessionRun struct {
	sessions int
	m        measured
	target   float64
	achieved float64
	lagP99   float64
	lagMax   float64
	tx       int64
	failed   int64
	p99      float64
}

// bankingSessions is the simulated sessions of the banking CPU runs.
const bankingSessions = 10000

// actionsPerCPU is the open loop's succeeded actions per CPU-second of the whole
// rehearse process.
func (r sessionRun) actionsPerCPU() float64 {
	if r.m.CPU() == 0 {
		return 0
	}
	return float64(r.tx) / r.m.CPU()
}

func (b *bench) sessionRun(ctx context.Context, n int, rate float64, name string) (sessionRun, error) {
	b.checkpoint(ctx)
	out := filepath.Join(b.work, name)
	m, err := runMeasured(ctx, b.root, b.log, b.s.rehearse, "run", "bench/open.yaml", "--dsn", b.dsn,
		"--sessions", strconv.Itoa(n), "--rate", strconv.FormatFloat(rate, 'f', -1, 64),
		"--duration", b.s.sessionDur.String(), "--quiet", "--out", out)
	if err != nil {
		return sessionRun{}, err
	}
	res, err := readResult(out, m)
	if err != nil {
		return sessionRun{}, err
	}
	r := sessionRun{
		sessions: n, m: m, target: res.Load.TargetRate, achieved: res.Load.AchievedRate,
		lagP99: res.Load.ScheduleLagP99Ms, lagMax: res.Load.ScheduleLagMaxMs,
		tx: res.Totals.Succeeded, failed: res.Totals.Failed + res.Totals.Ambiguous,
	}
	for _, op := range res.Operations {
		r.p99 = max(r.p99, op.LatencyMs.P99)
	}
	fmt.Fprintf(b.log, "%d sessions: max RSS %.0f MB, %.1f/%.1f arrivals/s, lag p99 %.3f ms, %.0f actions per CPU-second\n", n, float64(m.MaxRSS)/1e6, r.achieved, r.target, r.lagP99, r.actionsPerCPU())
	return r, nil
}
