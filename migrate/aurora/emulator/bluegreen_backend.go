package emulator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rehearse-dev/rehearse/migrate"
)

// BlueGreenBackend is a Backend that can host a blue/green deployment of its
// cluster: a green copy kept in sync by logical replication, a switchover onto it
// that makes green's nodes the cluster's (its endpoints then reach green), and the
// deletion of the other environment. Green's node names are blue's with
// "-green-<suffix>". LocalBackend is one, over migrate/local.
type BlueGreenBackend interface {
	Backend
	// PreflightBlueGreen runs the checks the deployment needs (wal_level logical,
	// which Aurora's rds.logical_replication sets, among them).
	PreflightBlueGreen(ctx context.Context, spec migrate.GreenSpec) ([]migrate.Check, error)
	// CreateGreen creates green; its Detail["green_nodes"] ([]string) lists green's
	// nodes, the writer first.
	CreateGreen(ctx context.Context, spec migrate.GreenSpec) (migrate.Deployment, error)
	// GreenSync says how far green is behind.
	GreenSync(ctx context.Context) (migrate.GreenSync, error)
	// SwitchoverGreen switches over within timeout or rolls back.
	SwitchoverGreen(ctx context.Context, timeout time.Duration) (migrate.BlueGreenSwitchover, error)
	// DeleteDeployment removes the other environment: green before the switchover,
	// the old blue after it.
	DeleteDeployment(ctx context.Context) (map[string]any, error)
	// DeploymentAddr is the host:port of a node of the other environment ("" when
	// unknown).
	DeploymentAddr(node string) string
}

var _ BlueGreenBackend = (*LocalBackend)(nil)

// withLogicalWAL makes a node configuration's WAL carry logical decoding, as a
// cluster whose parameter group sets rds.logical_replication to 1: the emulator's
// cluster can then host a blue/green deployment without a restart.
func withLogicalWAL(conf map[string]string) map[string]string {
	out := map[string]string{"wal_level": "logical"}
	for k, v := range conf {
		out[k] = v
	}
	return out
}

// PreflightBlueGreen implements BlueGreenBackend.
func (l *LocalBackend) PreflightBlueGreen(ctx context.Context, spec migrate.GreenSpec) ([]migrate.Check, error) {
	return l.c.PreflightBlueGreen(ctx, spec)
}

// CreateGreen implements BlueGreenBackend.
func (l *LocalBackend) CreateGreen(ctx context.Context, spec migrate.GreenSpec) (migrate.Deployment, error) {
	return l.c.CreateGreen(ctx, spec)
}

// GreenSync implements BlueGreenBackend.
func (l *LocalBackend) GreenSync(ctx context.Context) (migrate.GreenSync, error) {
	return l.c.GreenSync(ctx)
}

// SwitchoverGreen implements BlueGreenBackend.
func (l *LocalBackend) SwitchoverGreen(ctx context.Context, timeout time.Duration) (migrate.BlueGreenSwitchover, error) {
	return l.c.SwitchoverGreen(ctx, timeout)
}

// DeleteDeployment implements BlueGreenBackend.
func (l *LocalBackend) DeleteDeployment(ctx context.Context) (map[string]any, error) {
	return l.c.DeleteDeployment(ctx)
}

// DeploymentAddr implements BlueGreenBackend.
func (l *LocalBackend) DeploymentAddr(node string) string {
	for _, n := range l.c.DeploymentNodes() {
		if n.Name() == node {
			return n.Addr()
		}
	}
	return ""
}

// MemoryBlueGreen is a MemoryBackend that hosts blue/green deployments without
// databases: green copies the nodes at once and is switchable after Syncs calls to
// GreenSync; the switchover makes green's nodes the cluster's, or fails with
// FailSwitchover (rolled back). It is for tests of the API.
type MemoryBlueGreen struct {
	*MemoryBackend
	// Syncs is how many GreenSync calls report green still copying.
	Syncs int
	// FailSwitchover, when set, makes the switchover roll back with it.
	FailSwitchover error
	// Incompatible makes the preflight report wal_level not logical.
	Incompatible bool

	bmu      sync.Mutex
	green    []string
	synced   int
	switched bool
}

var _ BlueGreenBackend = (*MemoryBlueGreen)(nil)

// NewMemoryBlueGreen returns a MemoryBlueGreen with one node, the writer node1.
func NewMemoryBlueGreen() *MemoryBlueGreen {
	return &MemoryBlueGreen{MemoryBackend: NewMemoryBackend()}
}

// PreflightBlueGreen implements BlueGreenBackend.
func (m *MemoryBlueGreen) PreflightBlueGreen(ctx context.Context, spec migrate.GreenSpec) ([]migrate.Check, error) {
	wal := "logical"
	if m.Incompatible {
		wal = "replica"
	}
	return []migrate.Check{{Name: "wal_level is logical (rds.logical_replication)", OK: wal == "logical", Detail: "wal_level=" + wal}}, nil
}

// CreateGreen implements BlueGreenBackend.
func (m *MemoryBlueGreen) CreateGreen(ctx context.Context, spec migrate.GreenSpec) (migrate.Deployment, error) {
	m.mu.Lock()
	nodes := append([]string{m.writer}, without(m.nodes, m.writer)...)
	m.mu.Unlock()
	m.bmu.Lock()
	defer m.bmu.Unlock()
	if m.green != nil {
		return migrate.Deployment{}, errors.New("a deployment exists")
	}
	m.green = nil
	for _, n := range nodes {
		m.green = append(m.green, n+"-green-mem001")
	}
	m.synced, m.switched = 0, false
	return migrate.Deployment{ID: "bgd-memory", GreenWriter: m.green[0], Status: "AVAILABLE",
		Detail: map[string]any{"green_nodes": append([]string(nil), m.green...)}}, nil
}

func without(s []string, x string) []string {
	var out []string
	for _, v := range s {
		if v != x {
			out = append(out, v)
		}
	}
	return out
}

// GreenSync implements BlueGreenBackend.
func (m *MemoryBlueGreen) GreenSync(ctx context.Context) (migrate.GreenSync, error) {
	m.bmu.Lock()
	defer m.bmu.Unlock()
	if m.green == nil {
		return migrate.GreenSync{}, errors.New("no deployment")
	}
	m.synced++
	return migrate.GreenSync{Tables: 1, Ready: 1, Switchable: m.synced > m.Syncs}, nil
}

// SwitchoverGreen implements BlueGreenBackend.
func (m *MemoryBlueGreen) SwitchoverGreen(ctx context.Context, timeout time.Duration) (migrate.BlueGreenSwitchover, error) {
	m.bmu.Lock()
	defer m.bmu.Unlock()
	if m.FailSwitchover != nil {
		return migrate.BlueGreenSwitchover{RolledBack: true, Timeout: timeout}, fmt.Errorf("%w: %w", migrate.ErrSwitchoverRolledBack, m.FailSwitchover)
	}
	m.mu.Lock()
	old := append([]string(nil), m.nodes...)
	from := m.writer
	m.nodes, m.writer = append([]string(nil), m.green...), m.green[0]
	m.mu.Unlock()
	m.green, m.switched = old, true
	return migrate.BlueGreenSwitchover{Promotion: migrate.Promotion{From: from, To: m.writer}, Switched: true, Timeout: timeout}, nil
}

// DeleteDeployment implements BlueGreenBackend.
func (m *MemoryBlueGreen) DeleteDeployment(ctx context.Context) (map[string]any, error) {
	m.bmu.Lock()
	defer m.bmu.Unlock()
	removed := m.green
	m.green = nil
	return map[string]any{"removed": removed}, nil
}

// DeploymentAddr implements BlueGreenBackend.
func (m *MemoryBlueGreen) DeploymentAddr(node string) string {
	m.bmu.Lock()
	defer m.bmu.Unlock()
	for i, n := range m.green {
		if n == node {
			return fmt.Sprintf("127.0.0.1:%d", 6432+i)
		}
	}
	return ""
}

// blueNodeOf is the blue node a green node copies (node1-green-abc -> node1).
func blueNodeOf(green string) string {
	if i := strings.Index(green, "-green-"); i >= 0 {
		return green[:i]
	}
	return green
}
