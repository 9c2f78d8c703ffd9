package engine

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/rehearse-dev/rehearse/internal/telemetry"
	"github.com/rehearse-dev/rehearse/loadgen"
	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/container"
	"github.com/rehearse-dev/rehearse/migrate/local"
	"github.com/rehearse-dev/rehearse/result"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// auroraPoll is the shortest interval at which a run lists an Aurora cluster's
// instances: the RDS API throttles callers that poll it every second.
const auroraPoll = 5 * time.Second

// stepTelemetry is a step's telemetry: its live metrics and their server (when
// telemetry.metrics_addr is set) and the database sampler.
type stepTelemetry struct {
	sc      *scenarios.Scenario
	tgt     Target
	log     io.Writer
	metrics *telemetry.Metrics // nil without a metrics address
	server  *telemetry.Server

	mu       sync.Mutex
	cancel   context.CancelFunc
	done     chan struct{}
	database func(ctx context.Context, until float64) *result.Database
}

// startTelemetry opens the step's metrics server, before any load: a taken or
// unusable address is an error naming it.
func (r *Rehearsal) startTelemetry(sc *scenarios.Scenario) (*stepTelemetry, error) {
	t := &stepTelemetry{sc: sc, tgt: r.tgt, log: r.log}
	addr := sc.Telemetry.MetricsAddr
	if addr == "" {
		return t, nil
	}
	info := telemetry.RunInfo{Scenario: sc.Name, Mode: string(sc.Mode), Target: string(r.tgt.Kind()), Workload: sc.Workload.Name,
		Sessions: sc.Load.Sessions, TargetRate: sc.EffectiveRate()}
	if sc.Load.Model == "closed" {
		info.Sessions, info.TargetRate = sc.Load.Connections, 0
	}
	t.metrics = telemetry.NewMetrics(info)
	srv, err := telemetry.Listen(addr, t.metrics)
	if err != nil {
		return nil, fmt.Errorf("telemetry.metrics_addr (--metrics-addr): %w", err)
	}
	t.server = srv
	if sc.Telemetry.MetricsRemote() {
		fmt.Fprintf(r.log, "serving Prometheus metrics on http://%s/metrics, exposed beyond this machine (telemetry.metrics_allow_remote)\n", srv.Addr())
	} else {
		fmt.Fprintf(r.log, "serving Prometheus metrics on http://%s/metrics\n", srv.Addr())
	}
	return t, nil
}

// sink passes the recorder's interval histograms to the latency metrics as well.
func (t *stepTelemetry) sink(next loadgen.IntervalSink) loadgen.IntervalSink {
	if t.metrics == nil {
		return next
	}
	return func(op string, h *hdr.Histogram, from, to time.Duration) error {
		t.metrics.Interval(op, h)
		return next(op, h, from, to)
	}
}

// attach feeds the load's metrics from the recorder: its summary when scraped,
// recomputed once per flush, and the busy sessions of the progress line.
func (t *stepTelemetry) attach(cfg *loadgen.Config, rec *loadgen.Recorder, since func() time.Duration) {
	if t.metrics == nil {
		return
	}
	cfg.Progress = t.metrics.AttachLoad(rec, since, cfg.Progress)
	next := cfg.OnTick
	cfg.OnTick = func(d time.Duration) {
		t.metrics.Flushed()
		if next != nil {
			next(d)
		}
	}
}

// onEvent records a cutover step's event (a cutover listener): the current step
// and its status.
func (t *stepTelemetry) onEvent(ev migrate.Event) {
	if t.metrics != nil {
		t.metrics.CutoverEvent(ev.Step, ev.Status)
	}
}

// phase records the run's phase as it follows the disruptions (a recorder's
// phase listener).
func (t *stepTelemetry) phase(p string) {
	if t.metrics != nil {
		t.metrics.Phase(p)
	}
}

// fault counts an injected fault event (a node killed, a network cut).
func (t *stepTelemetry) fault(kind string) {
	if t.metrics != nil {
		t.metrics.Fault(kind)
	}
}

// guardrail counts a guardrail event: the limit crossed and the action taken.
func (t *stepTelemetry) guardrail(name, action string) {
	if t.metrics != nil {
		t.metrics.Guardrail(name, action)
	}
}

// start starts sampling the database on the run's clock.
func (t *stepTelemetry) start(ctx context.Context, since func() time.Duration) {
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	interval := t.sc.Telemetry.SampleInterval.D()
	var run func(context.Context)
	if a, ok := t.tgt.(*auroraTarget); ok {
		s := telemetry.NewAuroraSampler(telemetry.AuroraConfig{
			Monitor: a.p.Monitor(), Start: time.Now().Add(-since()), Since: since,
			Interval: max(interval, auroraPoll), Metrics: t.metrics,
		})
		run = s.Run
		t.database = s.Finish
	} else {
		lister := nodeLister{tgt: t.tgt}
		if _, ok := t.tgt.(*containerTarget); ok {
			if d, err := telemetry.NewDocker(); err == nil {
				lister.docker = d
			} else {
				fmt.Fprintf(t.log, "warning: container statistics: %v\n", err)
			}
		}
		cfg := telemetry.SamplerConfig{Nodes: lister, Interval: interval, Since: since, Metrics: t.metrics}
		if lister.docker != nil {
			cfg.Containers = lister.docker
		}
		docker := lister.docker
		s := telemetry.NewSampler(cfg)
		run = func(ctx context.Context) {
			s.Run(ctx)
			if docker != nil {
				_ = docker.Close()
			}
		}
		t.database = func(_ context.Context, until float64) *result.Database { return s.Database(until) }
	}
	go func() {
		defer close(done)
		run(sctx)
	}()
	t.mu.Lock()
	t.cancel, t.done = cancel, done
	t.mu.Unlock()
}

// stop ends the sampling and waits for it.
func (t *stepTelemetry) stop() {
	t.mu.Lock()
	cancel, done := t.cancel, t.done
	t.cancel = nil
	t.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// finish puts the database's numbers into res (up to the end of its timeline),
// with the cost estimate when the scenario has prices, then keeps serving the
// final metrics for telemetry.metrics_linger and closes the server.
func (t *stepTelemetry) finish(ctx context.Context, res *result.Result) {
	t.stop()
	end := res.DurationS
	if n := len(res.Timeline); n > 0 {
		end = max(end, res.Timeline[n-1].TS+1)
	}
	if t.database != nil {
		db := t.database(context.WithoutCancel(ctx), end)
		if p := t.sc.Telemetry.Price; p != nil {
			writer := ""
			if res.Migration != nil {
				writer = res.Migration.WriterAfter
			}
			if writer == "" {
				writer = lastWriter(db)
			}
			var why string
			if db.Cost, why = telemetry.Cost(db, writer, *p); why != "" {
				db.Missing = append(db.Missing, why)
			}
		}
		res.Database = db
	}
	if t.metrics != nil {
		t.metrics.Freeze(time.Duration(res.DurationS * float64(time.Second)))
	}
	if linger := t.sc.Telemetry.MetricsLinger.D(); t.server != nil && linger > 0 {
		fmt.Fprintf(t.log, "serving the final metrics on http://%s/metrics for %v (telemetry.metrics_linger)\n", t.server.Addr(), linger)
		tm := time.NewTimer(linger)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
		}
	}
	t.close()
}

// close stops the sampler and the server (without lingering), once.
func (t *stepTelemetry) close() {
	t.stop()
	if t.metrics != nil {
		t.metrics.Close()
	}
	if t.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := t.server.Close(ctx); err != nil {
			fmt.Fprintf(t.log, "warning: stopping the metrics server: %v\n", err)
		}
		t.server = nil
	}
}

// lastWriter is the node the database events last name the writer.
func lastWriter(db *result.Database) string {
	w := ""
	for _, e := range db.Events {
		if e.Event == telemetry.EventBecameWrite || e.Event == telemetry.EventPresent+" ("+telemetry.RoleWriter+")" ||
			e.Event == telemetry.EventAppeared+" ("+telemetry.RoleWriter+")" {
			w = e.Node
		}
	}
	return w
}

// nodeLister lists a target's nodes for the sampler: the provider's topology, with
// how to reach each node itself.
type nodeLister struct {
	tgt    Target
	docker *telemetry.Docker // containers: finds each node's container
}

func (l nodeLister) Nodes(ctx context.Context) ([]telemetry.Node, error) {
	switch t := l.tgt.(type) {
	case *localNode:
		n := t.node
		return []telemetry.Node{{Name: n.Name(), Writer: true, DSN: n.DSN(local.Database), PID: n.PID()}}, nil
	case *localCluster:
		topo, err := t.cluster.Describe(ctx)
		if err != nil {
			return nil, err
		}
		handles := map[string]*local.Node{}
		for _, n := range t.cluster.Nodes() {
			handles[n.Name()] = n
		}
		return nodesOf(topo, func(id string) (string, int, string) {
			if n := handles[id]; n != nil {
				return n.DSN(local.Database), n.PID(), ""
			}
			return "", 0, ""
		}), nil
	case *containerTarget:
		topo, err := t.cl.Describe(ctx)
		if err != nil {
			return nil, err
		}
		var ids map[string]string
		if l.docker != nil {
			// Without them the nodes are still sampled through SQL.
			ids, _ = l.docker.Labelled(ctx, container.LabelRun+"="+t.cl.RunID(), container.LabelNode)
		}
		return nodesOf(topo, func(id string) (string, int, string) {
			dsn := ""
			if addr, err := t.cl.NodeAddr(id); err == nil {
				dsn = t.cl.DSN(addr, container.Database)
			}
			return dsn, 0, ids[id]
		}), nil
	case *dsnTarget:
		return []telemetry.Node{{Name: dsnNode(t.dsn), Writer: true, DSN: t.dsn}}, nil
	}
	return nil, fmt.Errorf("telemetry: no sampler for a %s target", l.tgt.Kind())
}

// nodesOf turns a topology into the sampler's nodes; reach says how to reach one.
func nodesOf(topo migrate.Topology, reach func(id string) (dsn string, pid int, container string)) []telemetry.Node {
	out := make([]telemetry.Node, 0, len(topo.Nodes))
	for _, n := range topo.Nodes {
		dsn, pid, c := reach(n.ID)
		out = append(out, telemetry.Node{Name: n.ID, Writer: n.ID == topo.Writer, DSN: dsn, PID: pid, Container: c})
	}
	return out
}

// dsnNode names the node of a DSN target by its host and port.
func dsnNode(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Host != "" {
		return u.Host
	}
	return "database"
}
