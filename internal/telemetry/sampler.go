package telemetry

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/internal/telemetry/nodestat"
	"github.com/rehearse-dev/rehearse/result"
)

// Node is one database node as the sampler reads it.
type Node struct {
	// Name is the provider's name for it (node1, an instance identifier).
	Name string
	// Writer is true for the cluster's writer.
	Writer bool
	// DSN reaches the node itself, not an endpoint ("": no server statistics).
	DSN string
	// PID is its postmaster's pid on this machine (0: no process statistics).
	PID int
	// Container is its Docker container's ID ("": not in a container).
	Container string
}

// NodeLister lists a cluster's nodes as they are now: a cutover creates and
// removes them, so the sampler asks again every time.
type NodeLister interface {
	Nodes(ctx context.Context) ([]Node, error)
}

// containerReader reads a container's counters (Docker).
type containerReader interface {
	Counters(ctx context.Context, id string) (ContainerCounters, error)
}

// SamplerConfig configures a Sampler.
type SamplerConfig struct {
	// Nodes lists the nodes to sample.
	Nodes NodeLister
	// Interval is the time between samples (telemetry.sample_interval).
	Interval time.Duration
	// Since is the offset from the run's start (the shared timeline).
	Since func() time.Duration
	// Containers reads containers' counters (nil: none).
	Containers containerReader
	// Metrics gets every sample as a gauge (nil: none).
	Metrics *Metrics
	// HostCPUs is the CPUs the host has, which CPU percentages are of (0:
	// runtime.NumCPU()).
	HostCPUs int
}

// Sampler samples PostgreSQL nodes every interval: their server statistics
// through SQL, their processes through /proc or the Docker engine.
type Sampler struct {
	cfg   SamplerConfig
	rec   *dbRecorder
	nodes map[string]*nodeState
	first bool
}

// nodeState is what the sampler keeps between a node's samples.
type nodeState struct {
	conn      *pgx.Conn
	dsn       string
	pg        nodestat.PGMeter
	proc      nodestat.ProcMeter
	cont      ContainerCounters
	contID    string
	contReady bool
	// pgOK, procOK and contOK say whether a source ever answered: one that never
	// did is named in database.missing, with its last error.
	pgOK, procOK, contOK       bool
	pgErr, procErr, contErr    error
	wantPG, wantProc, wantCont bool
}

// NewSampler returns a sampler; Run starts it.
func NewSampler(cfg SamplerConfig) *Sampler {
	if cfg.HostCPUs <= 0 {
		cfg.HostCPUs = runtime.NumCPU()
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	return &Sampler{cfg: cfg, rec: newDBRecorder(cfg.Metrics), nodes: map[string]*nodeState{}, first: true}
}

// Run samples at every multiple of the interval on the run's clock, from now until
// ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	defer s.closeConns()
	next := s.cfg.Since()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.sample(ctx)
		// The next multiple of the interval still ahead: a slow sample skips
		// slots rather than bunching samples up.
		now := s.cfg.Since()
		for next <= now {
			next += s.cfg.Interval
		}
		t.Reset(next - now)
	}
}

// sample takes one sample of every node.
func (s *Sampler) sample(ctx context.Context) {
	at := s.cfg.Since().Seconds()
	lctx, cancel := context.WithTimeout(ctx, s.cfg.Interval)
	nodes, err := s.cfg.Nodes.Nodes(lctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			s.rec.note(fmt.Sprintf("the node list was unavailable at %.0f s (%v): no sample then", at, err))
		}
		return
	}
	roles := map[string]string{}
	for _, n := range nodes {
		roles[n.Name] = role(n.Writer)
	}
	s.rec.nodes(at, roles, s.first)
	s.first = false
	for name, st := range s.nodes {
		if _, ok := roles[name]; !ok {
			st.close()
			delete(s.nodes, name)
		}
	}
	// Nodes are sampled side by side, each within the interval: a node that is
	// restarting must not hold the others' samples back.
	sctx, cancel := context.WithTimeout(ctx, s.cfg.Interval)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range nodes {
		st := s.nodes[n.Name]
		if st == nil {
			st = &nodeState{}
			s.nodes[n.Name] = st
		}
		wg.Go(func() { s.sampleNode(sctx, n, st, at) })
	}
	wg.Wait()
}

func role(writer bool) string {
	if writer {
		return RoleWriter
	}
	return RoleReader
}

// sampleNode reads one node's sources and records their points at t.
func (s *Sampler) sampleNode(ctx context.Context, n Node, st *nodeState, t float64) {
	r := role(n.Writer)
	now := time.Now()
	if n.DSN != "" {
		st.wantPG = true
		if u, err := st.sampleSQL(ctx, n.DSN, now); err != nil {
			st.pgErr = err
		} else {
			st.pgOK = true
			s.recordPG(n.Name, r, t, u)
		}
	}
	if n.PID > 0 {
		st.wantProc = true
		if u, err := st.proc.Sample(n.PID, now); err != nil {
			st.procErr = err
		} else {
			st.procOK = true
			s.rec.point(n.Name, r, "rss", t, float64(u.RSS), false)
			if u.Rates {
				s.rec.point(n.Name, r, "cpu", t, 100*u.CPUCores/float64(s.cfg.HostCPUs), false)
				if u.IO {
					s.rec.point(n.Name, r, "read_iops", t, u.ReadOps, false)
					s.rec.point(n.Name, r, "write_iops", t, u.WriteOps, false)
				}
			}
			if !u.IO {
				s.rec.note(fmt.Sprintf("read_iops and write_iops of %s: its processes' I/O counters (/proc/<pid>/io) are not readable by this user", n.Name))
			}
		}
	}
	if n.Container != "" && s.cfg.Containers != nil {
		st.wantCont = true
		c, err := s.cfg.Containers.Counters(ctx, n.Container)
		if err != nil {
			st.contErr = err
			return
		}
		if st.contReady && st.contID == n.Container && c.Read.Equal(st.cont.Read) {
			return // the engine has sent no newer sample since the last one
		}
		st.contOK = true
		s.rec.point(n.Name, r, "rss", t, float64(c.Memory), false)
		if st.contReady && st.contID == n.Container && c.System > st.cont.System && c.CPU >= st.cont.CPU {
			s.rec.point(n.Name, r, "cpu", t, 100*float64(c.CPU-st.cont.CPU)/float64(c.System-st.cont.System), false)
			if dt := c.Read.Sub(st.cont.Read).Seconds(); c.IO && st.cont.IO && dt > 0 {
				s.rec.point(n.Name, r, "read_iops", t, float64(c.Reads-min(c.Reads, st.cont.Reads))/dt, false)
				s.rec.point(n.Name, r, "write_iops", t, float64(c.Writes-min(c.Writes, st.cont.Writes))/dt, false)
			}
		}
		if !c.IO {
			s.rec.note(fmt.Sprintf("read_iops and write_iops of %s: the Docker engine reports no block I/O operation counts for its container (io_serviced_recursive is empty, as on cgroup v2)", n.Name))
		}
		st.cont, st.contID, st.contReady = c, n.Container, true
	}
}

// recordPG records a node's server statistics.
func (s *Sampler) recordPG(node, r string, t float64, u nodestat.PGUsage) {
	s.rec.point(node, r, "connections", t, float64(u.Connections), false)
	s.rec.point(node, r, "connections_active", t, float64(u.Active), false)
	s.rec.point(node, r, "checkpoints", t, float64(u.Checkpoints), false)
	if u.Rates {
		s.rec.point(node, r, "tps", t, u.TPS, false)
		s.rec.point(node, r, "rollbacks", t, u.Rollbacks, false)
		if !u.InRecovery {
			s.rec.point(node, r, "wal_bytes", t, u.WALBytes, false)
		}
	}
	for _, rl := range u.Replicas {
		// Lag is the replica's: the series is named by the replica, not the writer
		// that measured it. Other WAL senders (pg_basebackup copying a new node)
		// are no node.
		rr, ok := s.rec.roleOf(rl.Name)
		if !ok {
			continue
		}
		s.rec.point(rl.Name, rr, "replica_lag_bytes", t, float64(rl.Bytes), false)
		s.rec.point(rl.Name, rr, "replica_lag_s", t, rl.Seconds, false)
	}
}

// sampleSQL reads the server's statistics over the node's own connection,
// connecting (again) when needed.
func (st *nodeState) sampleSQL(ctx context.Context, dsn string, now time.Time) (nodestat.PGUsage, error) {
	if st.conn != nil && (st.dsn != dsn || st.conn.IsClosed()) {
		st.close()
	}
	if st.conn == nil {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nodestat.PGUsage{}, err
		}
		cfg.RuntimeParams["application_name"] = "rehearse-telemetry"
		// The simple protocol: nothing is prepared on a node that may restart or be
		// replaced between samples.
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return nodestat.PGUsage{}, err
		}
		st.conn, st.dsn = conn, dsn
	}
	u, err := st.pg.Sample(ctx, st.conn, now)
	if err != nil {
		st.close() // a broken connection (the node restarted): connect afresh next time
	}
	return u, err
}

func (st *nodeState) close() {
	if st.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = st.conn.Close(ctx)
		cancel()
		st.conn = nil
	}
}

func (s *Sampler) closeConns() {
	for _, st := range s.nodes {
		st.close()
	}
}

// Database is what was sampled up to until seconds of the run (everything when
// until is negative). Call it after Run has returned.
func (s *Sampler) Database(until float64) *result.Database {
	for name, st := range s.nodes {
		for _, src := range []struct {
			want, ok bool
			err      error
			what     string
		}{
			{st.wantPG, st.pgOK, st.pgErr, "server statistics (tps, rollbacks, connections, replica lag, WAL, checkpoints)"},
			{st.wantProc, st.procOK, st.procErr, "process statistics (cpu, rss, read_iops, write_iops)"},
			{st.wantCont, st.contOK, st.contErr, "container statistics (cpu, rss, read_iops, write_iops)"},
		} {
			if src.want && !src.ok {
				s.rec.note(fmt.Sprintf("%s of %s: never read: %v", src.what, name, src.err))
			}
		}
	}
	return s.rec.database(until)
}
