package rehearse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
	"github.com/rehearse-dev/rehearse/workload"
)

// endpoints are the pools the load uses: writes go to writer, reads to reader.
type endpoints struct {
	writer, reader *pgxpool.Pool
	poolSize       int
}

func (e *endpoints) close() {
	e.writer.Close()
	if e.reader != e.writer {
		e.reader.Close()
	}
}

func (e *endpoints) serverVersion(ctx context.Context) (string, error) {
	var v string
	err := e.writer.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v, err
}

// connect opens the writer and reader pools and proves they work, turning the usual
// failures into errors that say what to do.
func connect(ctx context.Context, tgt *target, sc *scenarios.Scenario) (*endpoints, error) {
	size := sc.Load.PoolSize
	if sc.Load.Model == "closed" {
		size = sc.Load.Connections
	}
	writer, err := openPool(ctx, tgt.writerDSN, size, tgt, sc)
	if err != nil {
		return nil, err
	}
	eps := &endpoints{writer: writer, reader: writer, poolSize: size}
	if tgt.readerDSN != tgt.writerDSN {
		if eps.reader, err = openPool(ctx, tgt.readerDSN, size, tgt, sc); err != nil {
			writer.Close()
			return nil, err
		}
	}
	return eps, nil
}

func openPool(ctx context.Context, dsn string, size int, tgt *target, sc *scenarios.Scenario) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx masks the password when it quotes a DSN in a parse error.
		return nil, fmt.Errorf("%w: the DSN is malformed (%v): write it as postgres://USER:PASSWORD@HOST:PORT/DB or as key=value pairs (host=… port=… user=… dbname=…)", ErrInvalidInput, err)
	}
	cfg.MaxConns = int32(size)
	cfg.MaxConnLifetime = sc.Load.ConnMaxLifetime.D()
	cfg.MaxConnLifetimeJitter = cfg.MaxConnLifetime / 5
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	cfg.ConnConfig.DefaultQueryExecMode = tgt.execMode
	if tgt.endpoint == "" {
		// Through an endpoint, the server may reject unknown startup parameters
		// (PgBouncer does); directly, name the application for pg_stat_activity.
		if cfg.ConnConfig.RuntimeParams == nil {
			cfg.ConnConfig.RuntimeParams = map[string]string{}
		}
		cfg.ConnConfig.RuntimeParams["application_name"] = "rehearse"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	if err := warm(ctx, pool, size); err != nil {
		pool.Close()
		return nil, describeConnectError(cfg, err)
	}
	return pool, nil
}

// warm opens the pool's connections before the clock starts, so connection set-up is
// not charged to the first operations.
func warm(ctx context.Context, pool *pgxpool.Pool, n int) error {
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var first error
	for range n {
		wg.Go(func() {
			c, err := pool.Acquire(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
				}
				return
			}
			conns = append(conns, c)
		})
	}
	wg.Wait()
	return first
}

func describeConnectError(cfg *pgxpool.Config, err error) error {
	where := fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000":
			return fmt.Errorf("%w: PostgreSQL at %s rejected user %q: %s. Check the user and password in the DSN (or ~/.pgpass)", ErrInvalidInput, where, cfg.ConnConfig.User, pgErr.Message)
		case "3D000":
			return fmt.Errorf("%w: PostgreSQL at %s has no database %q: create it (createdb %s) or name an existing one in the DSN", ErrInvalidInput, where, cfg.ConnConfig.Database, cfg.ConnConfig.Database)
		case "53300":
			return fmt.Errorf("PostgreSQL at %s has no free connection slots for a pool of %d: raise max_connections or lower load.pool_size: %w", where, int(cfg.MaxConns), err)
		}
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("cannot reach PostgreSQL at %s: connection refused. Is the server running and listening on that address? %w", where, err)
	}
	return fmt.Errorf("cannot connect to PostgreSQL at %s: %w", where, err)
}

// loadRun is what the load phase produced.
type loadRun struct {
	start    time.Time
	stats    loadgen.Stats
	summary  loadgen.Summary
	target   float64
	workers  int
	hlogTmp  string
	sessions int
}

// maxExtension bounds how long the load may outlast the scenario's duration while a
// cutover is still running.
const maxExtension = 30 * time.Minute

func runLoad(ctx context.Context, sc *scenarios.Scenario, wl workload.Workload, eps *endpoints, outDir string, progress, logw io.Writer, cut *cutover) (*loadRun, error) {
	hlogTmp := filepath.Join(outDir, HlogFile+".partial")
	hf, err := os.Create(hlogTmp)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", hlogTmp, err)
	}
	defer hf.Close()
	// The clock starts once the sessions are built (see below); the sink only runs
	// after that.
	var (
		start time.Time
		hw    *result.HlogWriter
	)
	rec := loadgen.NewRecorder(wl.Ops(), func(op string, h *hdr.Histogram, from, to time.Duration) error {
		return hw.WriteInterval(op, start.Add(from), start.Add(to), h)
	})
	l := sc.Load
	// The load stops when the duration has passed and any cutover has settled; until
	// then the schedule holds its last rate.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	cfg := loadgen.Config{
		Workload: wl, Writer: loadgen.NewPgxPool(eps.writer), Reader: loadgen.NewPgxPool(eps.reader),
		Duration:        l.Duration.D() + maxExtension,
		Sessions:        l.Sessions,
		Workers:         l.Workers,
		Think:           loadgen.Think{Dist: l.ThinkTime.Distribution, Mean: l.ThinkTime.Mean.D()},
		OpTimeout:       l.OpTimeout.D(),
		Grace:           l.Grace.D(),
		MaxRetries:      l.MaxRetries,
		MisroutedWrites: sc.Workload.MisroutedWriteFraction,
		Seed:            sc.Workload.Seed,
		Recorder:        rec,
		Progress:        progress,
	}
	var target float64
	if l.Model == "closed" {
		cfg.Workers = l.Connections
		cfg.Sessions = l.Connections
	} else {
		var prof *loadgen.Profile
		cfg.Pacer, prof = schedule(sc)
		target = prof.Expected(l.Duration.D()) / l.Duration.D().Seconds()
	}
	cfg.OnTick = func(el time.Duration) {
		if el >= l.Duration.D() && (cut == nil || cut.settled(el)) {
			stopLoad()
		}
	}
	prepared, err := loadgen.Prepare(cfg)
	if err != nil {
		return nil, err
	}
	start = time.Now()
	if hw, err = result.NewHlogWriter(hf, start); err != nil {
		return nil, err
	}
	since := func() time.Duration { return time.Since(start) }
	if cut != nil {
		cut.start(loadCtx, rec, since)
	}
	if l.Model == "closed" {
		fmt.Fprintf(logw, "running %s closed-loop on %d connections for %v\n", wl.Name(), cfg.Workers, l.Duration)
	} else {
		fmt.Fprintf(logw, "running %s: %d sessions, %.0f actions/s (%s), %d workers, pool %d, for %v\n",
			wl.Name(), cfg.Sessions, target, l.Arrival, cfg.Workers, eps.poolSize, l.Duration)
	}
	stats, err := prepared.Run(loadCtx, start)
	// The run ends by stopLoad, not by loadgen's own (extended) duration; only the
	// caller's context makes it an interruption.
	stats.Interrupted = ctx.Err() != nil
	if cut != nil {
		<-cut.done
	}
	if err != nil {
		return nil, err
	}
	if err := rec.SinkErr(); err != nil {
		fmt.Fprintf(logw, "warning: writing %s: %v\n", HlogFile, err)
	}
	if err := hf.Close(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", HlogFile, err)
	}
	return &loadRun{
		start: start, stats: stats, summary: rec.Summary(stats.Elapsed), target: target,
		workers: cfg.Workers, hlogTmp: hlogTmp, sessions: cfg.Sessions,
	}, nil
}

// schedule is the open-loop arrival schedule of sc: its rate profile (ramp stages, or
// the effective rate held), extended so a cutover can outlast the duration, and a
// constant or seeded Poisson pacer over it.
func schedule(sc *scenarios.Scenario) (loadgen.Pacer, *loadgen.Profile) {
	l := sc.Load
	stages := make([]loadgen.Stage, len(l.Stages))
	for i, s := range l.Stages {
		stages[i] = loadgen.Stage{Duration: s.Duration.D(), Rate: s.Rate}
	}
	startRate := sc.EffectiveRate()
	if len(stages) > 0 {
		startRate = 0
	}
	prof := loadgen.NewProfile(startRate, stages, l.Duration.D()+maxExtension)
	if l.Arrival == "constant" {
		return loadgen.NewConstant(prof), prof
	}
	return loadgen.NewPoisson(prof, sc.Workload.Seed), prof
}

func buildResult(sc *scenarios.Scenario, o *options, rr *loadRun, tgt *target, versions map[string]string, integ result.Integrity) *result.Result {
	end := rr.start.Add(rr.stats.Elapsed)
	sum := rr.summary
	res := &result.Result{
		Schema:      result.SchemaV1,
		Mode:        o.mode,
		Interrupted: rr.stats.Interrupted,
		Scenario:    result.ScenarioInfo{Name: sc.Name, File: sc.File, SHA256: sc.SHA256},
		Target: result.TargetInfo{
			Kind: sc.Target.Kind, EndpointMode: endpointMode(tgt), Versions: versions,
			Workload: sc.Workload.Name,
		},
		StartedAt:  rr.start.UTC(),
		EndedAt:    end.UTC(),
		DurationS:  round3(rr.stats.Elapsed.Seconds()),
		Totals:     sum.Totals,
		Operations: sum.Operations,
		Errors:     sum.Errors,
		Timeline:   sum.Timeline,
		Load: result.LoadInfo{
			Model:            sc.Load.Model,
			Sessions:         rr.sessions,
			TargetRate:       round3(rr.target),
			ScheduleLagP99Ms: sum.LagP99Ms,
			ScheduleLagMaxMs: sum.LagMaxMs,
			PoolSize:         sc.Load.PoolSize,
			Workers:          rr.workers,
			Arrivals:         rr.stats.Arrivals,
		},
		Availability: sum.Availability,
		Integrity:    integ,
		Version:      Version(),
	}
	if sc.Load.Model == "closed" {
		res.Load.PoolSize = sc.Load.Connections
	}
	if s := rr.stats.Elapsed.Seconds(); s > 0 {
		res.Load.AchievedRate = round3(float64(rr.stats.Arrivals) / s)
	}
	if tgt.kind == "dsn" {
		res.Target.Kind = "dsn"
	}
	if res.Operations == nil {
		res.Operations = []result.Operation{}
	}
	if res.Errors == nil {
		res.Errors = []result.ErrorClass{}
	}
	return res
}

// endpointMode is how the load reached the database: through dns or proxy
// endpoints, or "direct" when no cutover put endpoints in front.
func endpointMode(tgt *target) string {
	if tgt.endpoint == "" {
		return "direct"
	}
	return tgt.endpoint
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
