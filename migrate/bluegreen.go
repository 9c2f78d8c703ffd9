package migrate

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Cutover strategies.
const (
	// StrategyInCluster adds a replica to the cluster and switches over onto it.
	StrategyInCluster = "in_cluster"
	// StrategyBlueGreen copies the cluster into a green environment kept in sync by
	// logical replication and switches over onto it, as Aurora Blue/Green
	// Deployments do.
	StrategyBlueGreen = "blue_green"
)

// Blue/green step names (preflight, switchover, redirect and validate are shared
// with the in-cluster plan).
const (
	StepCreateGreen      = "create_green"
	StepGreenSync        = "green_sync"
	StepKeepOldBlue      = "keep_old_blue"
	StepDeleteDeployment = "delete_deployment"
)

// BlueGreenSteps is the blue/green plan, in order.
var BlueGreenSteps = []string{StepPreflight, StepCreateGreen, StepGreenSync, StepSwitchover,
	StepRedirect, StepValidate, StepKeepOldBlue, StepDeleteDeployment}

// OldSuffix is what a switchover appends to the old blue environment's names, as
// AWS renames mydb to mydb-old1.
const OldSuffix = "-old1"

// Errors of a blue/green deployment; match them with errors.Is.
var (
	// ErrNoBlueGreen means the provider cannot run a blue/green deployment.
	ErrNoBlueGreen = errors.New("the target cannot run a blue/green deployment")
	// ErrDDLOnBlue means DDL ran on blue after green was created: logical
	// replication does not carry it, so the switchover refuses.
	ErrDDLOnBlue = errors.New("DDL ran on blue since green was created")
	// ErrSwitchoverRolledBack means the switchover did not complete and was rolled
	// back: blue takes writes again and the endpoints stay on blue.
	ErrSwitchoverRolledBack = errors.New("the switchover was rolled back")
	// ErrSwitchoverTimeout means the switchover ran out of its timeout (it is then
	// rolled back too).
	ErrSwitchoverTimeout = errors.New("the switchover timed out")
)

// GreenSpec is what the green environment should be.
type GreenSpec struct {
	// InstanceClass is the green instances' class (Aurora).
	InstanceClass string
	// EngineVersion is the green engine version ("" = blue's).
	EngineVersion string
	// ParameterGroup is the green cluster's parameter group (Aurora; "" = blue's).
	ParameterGroup string
}

// Deployment is a blue/green deployment as the provider reports it.
type Deployment struct {
	// ID is the deployment's identifier (bgd-...).
	ID string
	// Blue and Green name the two environments (cluster identifiers or ARNs).
	Blue, Green string
	// GreenWriter is the green writer's node or instance ID.
	GreenWriter string
	// GreenVersion is the green engine version.
	GreenVersion string
	// Status is the deployment's status (AWS's: PROVISIONING, AVAILABLE, ...).
	Status string
	// Detail holds provider-specific facts (names, API calls, copy sizes).
	Detail map[string]any
}

// GreenSync is how far green is behind blue.
type GreenSync struct {
	// Status is the deployment's status where the provider has one.
	Status string
	// Tables is how many tables are replicated; Ready how many finished their
	// initial copy (pg_subscription_rel state 'r'); -1 when the provider cannot tell.
	Tables, Ready int
	// NotReady names tables still copying (a few).
	NotReady []string
	// Switchable is true when the provider says green can be switched over to
	// (every table copied, replication healthy).
	Switchable bool
	// Lag is the replication lag: blue's current WAL position against what green
	// confirmed (ReplayLSN).
	Lag Lag
}

// SequenceSync is one sequence set on green at the switchover.
type SequenceSync struct {
	// Name is the sequence's qualified name.
	Name string
	// Blue is blue's last value; Green what green's was set to (at least Blue).
	Blue, Green int64
}

// BlueGreenSwitchover is what a blue/green switchover did.
type BlueGreenSwitchover struct {
	// Promotion is the writer change: From and To, the lag when writes were
	// blocked (LagBytes), the final LSN green applied, and Stall (how long blue
	// refused writes).
	Promotion
	// Timeout is the switchover timeout; Duration how long the switchover took.
	Timeout, Duration time.Duration
	// Sequences are the sequences set on green.
	Sequences []SequenceSync
	// BlockedDDL lists the DDL that made the switchover refuse.
	BlockedDDL []string
	// RolledBack is true when the switchover started and was rolled back.
	RolledBack bool
	// Switched is true once green took over (the point of no return): writes go
	// to green, also when a later part of the switchover failed.
	Switched bool
	// Renamed maps each old name to its new one (blue's to -old1, green's to blue's).
	Renamed map[string]string
}

// BlueGreen is a provider that can run a blue/green deployment: a green copy of
// the cluster kept in sync by logical replication, and a switchover onto it. It is
// an optional capability, checked by type assertion.
type BlueGreen interface {
	// PreflightBlueGreen runs the read-only checks a blue/green deployment needs:
	// what the guardrails check and what logical replication cannot carry.
	PreflightBlueGreen(ctx context.Context, spec GreenSpec) ([]Check, error)
	// PlanGreen says, read-only, what CreateGreen would do.
	PlanGreen(ctx context.Context, spec GreenSpec) (map[string]any, error)
	// CreateGreen creates the green environment and starts replicating into it.
	CreateGreen(ctx context.Context, spec GreenSpec) (Deployment, error)
	// GreenSync measures how far green is behind.
	GreenSync(ctx context.Context) (GreenSync, error)
	// SwitchoverGreen blocks writes on blue, waits until green has everything,
	// syncs the sequences and moves blue's names to green (blue's get OldSuffix),
	// within timeout. When it cannot finish in time it rolls back: blue takes
	// writes again and the endpoints stay on blue (RolledBack, an error wrapping
	// ErrSwitchoverRolledBack).
	SwitchoverGreen(ctx context.Context, timeout time.Duration) (BlueGreenSwitchover, error)
	// KeepOldBlue checks that the old blue serves reads under its OldSuffix names.
	KeepOldBlue(ctx context.Context) (map[string]any, error)
	// DeleteDeployment deletes the deployment: before a switchover it removes
	// green (the undo of CreateGreen); after one, what the deployment left on the
	// old blue.
	DeleteDeployment(ctx context.Context) (map[string]any, error)
}

// CompareVersions compares two PostgreSQL versions ("15.18", "16.4", "16") by
// their numbers: -1, 0 or 1. Missing parts count as 0; parts that are not numbers
// compare as 0 too.
func CompareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
	}
	return 0
}
