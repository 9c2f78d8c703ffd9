package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/aurora"
	"github.com/rehearse-dev/rehearse/migrate/aurora/emulator"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// auroraTarget is an Aurora cluster reached through the RDS API (or the emulator):
// no server is started; the load goes to the cluster endpoints it reports. The DSN
// supplies user, password, database and TLS; the cluster endpoint always follows the
// writer, so integrity checks go through it.
type auroraTarget struct {
	p              *aurora.Provider
	writer, reader string
	calls          *callLog
	faults         *auroraHost
}

func openAurora(ctx context.Context, sc *scenarios.Scenario, cfg TargetConfig) (*auroraTarget, error) {
	calls := &callLog{}
	// The emulator's databases admit their own password only: a run as the same
	// OS user finds its file from the RDS API's address.
	passfile, _ := emulator.FindCredentials(cfg.AWSEndpointURL)
	p, err := aurora.New(ctx, aurora.Config{
		ClusterID: cfg.AuroraCluster, EndpointURL: cfg.AWSEndpointURL, DSN: sc.Target.DSN, PassFile: passfile,
		OnCall: calls.add, Log: cfg.Log,
	})
	if err != nil {
		if errors.Is(err, aurora.ErrInvalidConfig) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
		}
		return nil, err
	}
	w, r, err := p.Endpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("aurora cluster %s: %w", cfg.AuroraCluster, err)
	}
	if err := checkAuroraBlueGreen(ctx, sc, p); err != nil {
		return nil, err
	}
	if err := checkAuroraFaults(ctx, sc, p); err != nil {
		return nil, err
	}
	return &auroraTarget{p: p, writer: p.DSN(w), reader: p.DSN(r), calls: calls, faults: newAuroraHost(p)}, nil
}

// Aurora's bounds of a blue/green switchover's timeout (SwitchoverTimeout).
const (
	auroraMinSwitchoverTimeout = 30 * time.Second
	auroraMaxSwitchoverTimeout = time.Hour
)

// checkAuroraBlueGreen refuses what RDS would refuse of a blue/green cutover before
// it starts: a switchover timeout out of its range, a green engine version older
// than the cluster's.
func checkAuroraBlueGreen(ctx context.Context, sc *scenarios.Scenario, p *aurora.Provider) error {
	if !blueGreen(sc) {
		return nil
	}
	if d := sc.Cutover.SwitchoverTimeout.D(); d < auroraMinSwitchoverTimeout || d > auroraMaxSwitchoverTimeout {
		return fmt.Errorf("%w: cutover.switchover_timeout %v: Aurora takes %v to %v", ErrInvalidInput, d, auroraMinSwitchoverTimeout, auroraMaxSwitchoverTimeout)
	}
	topo, err := p.Describe(ctx)
	if err != nil {
		return fmt.Errorf("aurora cluster %s: %w", p.ClusterID(), err)
	}
	if len(topo.Nodes) > 0 {
		return checkGreenVersion(sc, topo.Nodes[0].Version)
	}
	return nil
}

func (t *auroraTarget) Kind() scenarios.TargetKind             { return scenarios.TargetAurora }
func (t *auroraTarget) EndpointMode() scenarios.EndpointMode   { return scenarios.EndpointDNS }
func (t *auroraTarget) Endpoints() (string, string)            { return t.writer, t.reader }
func (t *auroraTarget) DNSServer() string                      { return "" }
func (t *auroraTarget) ExecMode() pgx.QueryExecMode            { return pgx.QueryExecModeCacheStatement }
func (t *auroraTarget) Provider() migrate.Provider             { return t.p }
func (t *auroraTarget) DirectWriterDSN(context.Context) string { return t.writer }
func (t *auroraTarget) StartClock(since func() time.Duration)  { t.calls.setClock(since) }

// Close releases the API client; the cluster is never stopped by a run.
func (t *auroraTarget) Close(ctx context.Context, _ bool, _ io.Writer) { _ = t.p.Close(ctx) }

func (t *auroraTarget) Notes() []string {
	return []string{
		"Endpoints: the Aurora cluster's writer and reader endpoints as DescribeDBClusters reports them. Against the RDS API emulator these are Aurora-like DNS endpoints over local PostgreSQL, and write forwarding is an emulation at the endpoint.",
		t.calls.note(),
	}
}

// callLog keeps the RDS API calls with their times on the run's timeline.
type callLog struct {
	mu    sync.Mutex
	since func() time.Duration
	rows  []string
}

func (l *callLog) add(c aurora.Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := 0.0
	if l.since != nil {
		t = l.since().Seconds()
	}
	l.rows = append(l.rows, fmt.Sprintf("t=%.3fs %s", t, c))
}

func (l *callLog) setClock(since func() time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.since = since
}

func (l *callLog) note() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return "RDS API calls (time on the run's timeline, result, duration): " + strings.Join(l.rows, "; ")
}
