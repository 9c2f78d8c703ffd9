package emulator

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/migrate"
	"github.com/rehearse-dev/rehearse/migrate/internal/bluegreen"
)

// Blue/green deployment statuses (DescribeBlueGreenDeployments), and the statuses
// of their members (SwitchoverDetails).
const (
	bgProvisioning     = "PROVISIONING"
	bgAvailable        = "AVAILABLE"
	bgSwitching        = "SWITCHOVER_IN_PROGRESS"
	bgSwitched         = "SWITCHOVER_COMPLETED"
	bgInvalid          = "INVALID_CONFIGURATION"
	bgSwitchoverFailed = "SWITCHOVER_FAILED"
	bgDeleting         = "DELETING"
)

// minSwitchoverTimeout is the smallest SwitchoverTimeout RDS accepts, in seconds.
const minSwitchoverTimeout = 30

// blueGreens are the emulator's blue/green deployments (the zero value has none).
type blueGreens struct {
	byID  map[string]*deployment
	order []string
}

// deployment is one blue/green deployment of the hosted cluster. Before the
// switchover green holds green's instances (in the cluster <cluster>-green-<sfx>);
// after it old holds the old blue's (in <cluster>-old1), and the hosted cluster's
// instances lead to green's nodes.
type deployment struct {
	id, name      string
	status        string
	details       string
	greenCluster  string
	engineVersion string // green's (the cluster's after the switchover)
	oldVersion    string
	paramGroup    string
	created       time.Time
	// pairs are the blue and green instance identifiers, blue's writer first.
	pairs        [][2]string
	memberStatus string
	green        []*instance
	old          []*instance
	switched     bool
	// built is set once the backend created green (there is something to delete).
	built bool
}

// blueGreenCall answers the blue/green actions, and DescribeDBClusters and
// DescribeDBInstances for a deployment's green and -old1 resources; ok is false for
// every other call.
func (s *Server) blueGreenCall(action string, f map[string][]string) (body any, err *apiError, ok bool) {
	switch action {
	case "CreateBlueGreenDeployment":
		body, err = s.createBlueGreen(f)
	case "DescribeBlueGreenDeployments":
		body, err = s.describeBlueGreens(f)
	case "SwitchoverBlueGreenDeployment":
		body, err = s.switchoverBlueGreen(f)
	case "DeleteBlueGreenDeployment":
		body, err = s.deleteBlueGreen(f)
	case "DescribeDBClusters":
		return s.describeDeploymentCluster(first(f, "DBClusterIdentifier"))
	case "DescribeDBInstances":
		return s.describeDeploymentInstance(first(f, "DBInstanceIdentifier"))
	default:
		return nil, nil, false
	}
	return body, err, true
}

func (s *Server) clusterARN(id string) string {
	return fmt.Sprintf("arn:aws:rds:%s:%s:cluster:%s", s.opts.Region, Account, id)
}

func (s *Server) instanceARN(id string) string {
	return fmt.Sprintf("arn:aws:rds:%s:%s:db:%s", s.opts.Region, Account, id)
}

// bgBackend is the backend's blue/green capability.
func (s *Server) bgBackend() (BlueGreenBackend, *apiError) {
	b, ok := s.b.(BlueGreenBackend)
	if !ok {
		return nil, fault(400, "SourceClusterNotSupportedFault", "the emulator's backend cannot host a blue/green deployment")
	}
	return b, nil
}

func (s *Server) createBlueGreen(f map[string][]string) (any, *apiError) {
	name, source := first(f, "BlueGreenDeploymentName"), first(f, "Source")
	switch {
	case name == "":
		return nil, fault(400, "MissingParameter", "BlueGreenDeploymentName is required")
	case source == "":
		return nil, fault(400, "MissingParameter", "Source is required")
	case source != s.clusterARN(s.opts.ClusterID):
		return nil, fault(404, "DBClusterNotFoundFault", "DBCluster %s not found (this emulator hosts %s; give its ARN %s)", source, s.opts.ClusterID, s.clusterARN(s.opts.ClusterID))
	case first(f, "TargetDBInstanceClass") != "":
		return nil, fault(400, "InvalidParameterCombination", "TargetDBInstanceClass doesn't apply to Aurora DB clusters: modify the green instances after the deployment is created")
	}
	b, e := s.bgBackend()
	if e != nil {
		return nil, e
	}
	target := first(f, "TargetEngineVersion")
	s.mu.Lock()
	defer s.mu.Unlock()
	if target != "" && migrate.CompareVersions(target, s.opts.EngineVersion) < 0 {
		return nil, fault(400, "InvalidParameterCombination", "The target engine version %s is older than the source's %s: a blue/green deployment can't downgrade", target, s.opts.EngineVersion)
	}
	for _, id := range s.bg.order {
		d := s.bg.byID[id]
		switch {
		case d.name == name:
			return nil, fault(400, "BlueGreenDeploymentAlreadyExistsFault", "A blue/green deployment named %s already exists (%s)", name, d.id)
		case !d.switched && d.status != bgDeleting:
			return nil, fault(400, "BlueGreenDeploymentAlreadyExistsFault", "DB cluster %s is already the source of blue/green deployment %s", s.opts.ClusterID, d.id)
		}
	}
	if busy := s.busyLocked(); busy != "" {
		return nil, fault(400, "InvalidDBClusterStateFault", "cannot create a blue/green deployment now: %s", busy)
	}
	suffix := bluegreen.RandomID(6)
	d := &deployment{id: "bgd-" + bluegreen.RandomID(16), name: name, status: bgProvisioning, memberStatus: bgProvisioning,
		greenCluster: s.opts.ClusterID + "-green-" + suffix, engineVersion: s.opts.EngineVersion, oldVersion: s.opts.EngineVersion,
		paramGroup: first(f, "TargetDBClusterParameterGroupName"), created: s.opts.Now()}
	if target != "" {
		d.engineVersion = target
	}
	w := s.writerLocked()
	ids := append([]string{w}, without(s.order, w)...)
	for _, id := range ids {
		in := s.instances[id]
		g := &instance{id: id + "-green-" + suffix, class: in.class, status: "creating", tier: in.tier, created: d.created}
		d.green = append(d.green, g)
		d.pairs = append(d.pairs, [2]string{id, g.id})
	}
	if s.bg.byID == nil {
		s.bg.byID = map[string]*deployment{}
	}
	s.bg.byID[d.id] = d
	s.bg.order = append(s.bg.order, d.id)
	spec := migrate.GreenSpec{EngineVersion: target, ParameterGroup: d.paramGroup}
	s.background("blue/green deployment "+d.id, func(ctx context.Context) error { return s.provision(ctx, b, d, spec) })
	return xmlBGResult{Deployment: s.deploymentLocked(d)}, nil
}

// provision creates green on the backend and waits until it is switchable: the
// deployment becomes AVAILABLE, or INVALID_CONFIGURATION with the reason, as RDS
// reports incompatible parameters after accepting the request.
func (s *Server) provision(ctx context.Context, b BlueGreenBackend, d *deployment, spec migrate.GreenSpec) error {
	invalid := func(format string, args ...any) error {
		s.mu.Lock()
		d.status, d.memberStatus, d.details = bgInvalid, bgInvalid, fmt.Sprintf(format, args...)
		for _, g := range d.green {
			g.status = "failed"
		}
		s.mu.Unlock()
		fmt.Fprintf(s.opts.Log, "blue/green deployment %s: %s: %s\n", d.id, bgInvalid, d.details)
		return nil
	}
	checks, err := b.PreflightBlueGreen(ctx, spec)
	if err != nil {
		return invalid("Creation of blue/green deployment failed: %v", err)
	}
	var bad []string
	for _, c := range checks {
		if !c.OK && !c.Warning && strings.HasPrefix(c.Name, "wal_level") {
			bad = append(bad, "rds.logical_replication")
		}
	}
	if len(bad) > 0 {
		return invalid("Creation of blue/green deployment failed due to incompatible parameter(s): %v. Set rds.logical_replication to 1 in the source's DB cluster parameter group and reboot, then delete and recreate the blue/green deployment.", bad)
	}
	dep, err := b.CreateGreen(ctx, spec)
	if err != nil {
		return invalid("Creation of blue/green deployment failed: %v", err)
	}
	nodes, _ := dep.Detail["green_nodes"].([]string)
	s.mu.Lock()
	d.built = true
	for i, p := range d.pairs {
		blueNode := s.instances[p[0]].node
		for _, n := range nodes {
			if blueNodeOf(n) == blueNode {
				d.green[i].node = n
			}
		}
		d.green[i].status = "backing-up"
	}
	s.mu.Unlock()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if gs, err := b.GreenSync(ctx); err == nil && gs.Switchable {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	s.mu.Lock()
	d.status, d.memberStatus = bgAvailable, bgAvailable
	for _, g := range d.green {
		g.status = "available"
	}
	s.mu.Unlock()
	fmt.Fprintf(s.opts.Log, "blue/green deployment %s: %s -> %s\n", d.id, bgProvisioning, bgAvailable)
	return nil
}

func (s *Server) describeBlueGreens(f map[string][]string) (any, *apiError) {
	id := first(f, "BlueGreenDeploymentIdentifier")
	filters := map[string][]string{}
	for i := 1; ; i++ {
		n := first(f, "Filters.Filter."+strconv.Itoa(i)+".Name")
		if n == "" {
			break
		}
		for j := 1; ; j++ {
			v := first(f, "Filters.Filter."+strconv.Itoa(i)+".Values.Value."+strconv.Itoa(j))
			if v == "" {
				break
			}
			filters[n] = append(filters[n], v)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out xmlBGList
	for _, did := range s.bg.order {
		d := s.bg.byID[did]
		x := s.deploymentLocked(d)
		if id != "" && !strings.EqualFold(id, d.id) {
			continue
		}
		if !matches(filters, map[string]string{"blue-green-deployment-identifier": d.id, "blue-green-deployment-name": d.name,
			"source": x.Source, "target": x.Target}) {
			continue
		}
		out.Deployments = append(out.Deployments, x)
	}
	if id != "" && len(out.Deployments) == 0 {
		return nil, fault(404, "BlueGreenDeploymentNotFoundFault", "BlueGreenDeploymentIdentifier %s doesn't refer to an existing blue/green deployment.", id)
	}
	return out, nil
}

// matches reports whether every filter has a value equal to the field it names.
func matches(filters map[string][]string, fields map[string]string) bool {
	for name, values := range filters {
		ok := false
		for _, v := range values {
			if v == fields[name] {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// findDeploymentLocked looks up a deployment by identifier (404 when there is
// none); s.mu must be held.
func (s *Server) findDeploymentLocked(id string) (*deployment, *apiError) {
	if id == "" {
		return nil, fault(400, "MissingParameter", "BlueGreenDeploymentIdentifier is required")
	}
	for _, did := range s.bg.order {
		if strings.EqualFold(did, id) {
			return s.bg.byID[did], nil
		}
	}
	return nil, fault(404, "BlueGreenDeploymentNotFoundFault", "BlueGreenDeploymentIdentifier %s doesn't refer to an existing blue/green deployment.", id)
}

func (s *Server) switchoverBlueGreen(f map[string][]string) (any, *apiError) {
	timeout := 300
	if t := first(f, "SwitchoverTimeout"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < minSwitchoverTimeout {
			return nil, fault(400, "InvalidParameterValue", "SwitchoverTimeout %q must be an integer of at least %d seconds", t, minSwitchoverTimeout)
		}
		timeout = n
	}
	b, e := s.bgBackend()
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, e := s.findDeploymentLocked(first(f, "BlueGreenDeploymentIdentifier"))
	if e != nil {
		return nil, e
	}
	if d.status != bgAvailable && d.status != bgSwitchoverFailed {
		return nil, fault(400, "InvalidBlueGreenDeploymentStateFault", "The blue/green deployment %s is %s; it must be %s to switch over.", d.id, d.status, bgAvailable)
	}
	if busy := s.busyLocked(); busy != "" {
		return nil, fault(400, "InvalidBlueGreenDeploymentStateFault", "The blue/green deployment %s can't switch over now: %s", d.id, busy)
	}
	d.status, d.memberStatus, d.details = bgSwitching, bgSwitching, ""
	s.background("switchover of "+d.id, func(ctx context.Context) error {
		return s.switchover(ctx, b, d, time.Duration(timeout)*time.Second)
	})
	return xmlBGResult{Deployment: s.deploymentLocked(d)}, nil
}

// switchover runs the backend's switchover and, when it completed, renames as RDS
// does: the hosted cluster's instances lead to green's nodes under blue's names,
// blue's become <id>-old1 in the cluster <cluster>-old1, and the cluster reports
// green's engine version.
func (s *Server) switchover(ctx context.Context, b BlueGreenBackend, d *deployment, timeout time.Duration) error {
	sw, err := b.SwitchoverGreen(ctx, timeout)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil && !sw.Switched {
		d.status, d.memberStatus = bgSwitchoverFailed, bgAvailable
		d.details = fmt.Sprintf("Switchover of the blue/green deployment was rolled back after %v (SwitchoverTimeout %v): %v", sw.Duration.Round(time.Millisecond), timeout, err)
		fmt.Fprintf(s.opts.Log, "blue/green deployment %s: %s: %s\n", d.id, bgSwitchoverFailed, d.details)
		return nil
	}
	for i, p := range d.pairs {
		blue := s.instances[p[0]]
		old := &instance{id: blue.id + migrate.OldSuffix, class: blue.class, status: "available", node: blue.node, tier: blue.tier, created: blue.created}
		d.old = append(d.old, old)
		blue.node, blue.status = d.green[i].node, "available"
	}
	d.green = nil
	d.switched = true
	d.status, d.memberStatus = bgSwitched, bgSwitched
	if err != nil {
		d.details = "Switchover completed with errors: " + err.Error()
	}
	s.opts.EngineVersion = d.engineVersion
	fmt.Fprintf(s.opts.Log, "blue/green deployment %s: %s in %v; %s is the old blue\n", d.id, bgSwitched, sw.Duration.Round(time.Millisecond), s.opts.ClusterID+migrate.OldSuffix)
	ids := map[string]string{}
	for _, in := range s.instances {
		if in.node != "" {
			ids[in.node] = in.id
		}
	}
	go func() {
		// The SQL functions name instances; green's still name blue's.
		if err := s.b.Sync(s.ctx, ids); err != nil {
			fmt.Fprintf(s.opts.Log, "blue/green deployment %s: the instance functions on green: %v\n", d.id, err)
		}
	}()
	return nil
}

func (s *Server) deleteBlueGreen(f map[string][]string) (any, *apiError) {
	var deleteTarget bool
	if v := first(f, "DeleteTarget"); v != "" {
		var err error
		if deleteTarget, err = strconv.ParseBool(v); err != nil {
			return nil, fault(400, "InvalidParameterValue", "DeleteTarget %q is not a boolean", v)
		}
	}
	b, e := s.bgBackend()
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, e := s.findDeploymentLocked(first(f, "BlueGreenDeploymentIdentifier"))
	if e != nil {
		return nil, e
	}
	switch {
	case d.status == bgSwitching || d.status == bgDeleting || d.status == bgProvisioning:
		return nil, fault(400, "InvalidBlueGreenDeploymentStateFault", "The blue/green deployment %s is %s; it can't be deleted now.", d.id, d.status)
	case deleteTarget && d.switched:
		return nil, fault(400, "InvalidParameterCombination", "You can't specify DeleteTarget when the blue/green deployment %s is %s.", d.id, bgSwitched)
	}
	d.status = bgDeleting
	x := s.deploymentLocked(d)
	s.background("deletion of "+d.id, func(ctx context.Context) error {
		var err error
		if d.built {
			// Locally the other environment's nodes have no existence beyond the
			// deployment: green goes (as with DeleteTarget), and after a switchover so
			// does the old blue, which RDS would leave for the caller to delete.
			_, err = b.DeleteDeployment(ctx)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.bg.byID, d.id)
		s.bg.order = without(s.bg.order, d.id)
		fmt.Fprintf(s.opts.Log, "blue/green deployment %s deleted\n", d.id)
		return err
	})
	return xmlBGResult{Deployment: x}, nil
}

// deploymentLocked renders a deployment; s.mu must be held.
func (s *Server) deploymentLocked(d *deployment) xmlBlueGreen {
	x := xmlBlueGreen{
		BlueGreenDeploymentIdentifier: d.id, BlueGreenDeploymentName: d.name,
		Source: s.clusterARN(s.opts.ClusterID), Target: s.clusterARN(d.greenCluster),
		Status: d.status, StatusDetails: d.details, CreateTime: d.created.UTC().Format(time.RFC3339),
	}
	if d.switched {
		// The names moved: the source is now the old blue, the target the cluster.
		x.Source, x.Target = s.clusterARN(s.opts.ClusterID+migrate.OldSuffix), s.clusterARN(s.opts.ClusterID)
	}
	x.SwitchoverDetails = append(x.SwitchoverDetails, xmlSwitchoverDetail{SourceMember: x.Source, TargetMember: x.Target, Status: d.memberStatus})
	for _, p := range d.pairs {
		src, dst := s.instanceARN(p[0]), s.instanceARN(p[1])
		if d.switched {
			src, dst = s.instanceARN(p[0]+migrate.OldSuffix), s.instanceARN(p[0])
		}
		x.SwitchoverDetails = append(x.SwitchoverDetails, xmlSwitchoverDetail{SourceMember: src, TargetMember: dst, Status: d.memberStatus})
	}
	return x
}

// describeDeploymentCluster answers DescribeDBClusters for a deployment's green
// cluster (before the switchover) or old blue (after it).
func (s *Server) describeDeploymentCluster(id string) (any, *apiError, bool) {
	if id == "" {
		return nil, nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, did := range s.bg.order {
		d := s.bg.byID[did]
		var (
			ins     []*instance
			cluster string
			version = d.engineVersion
		)
		switch {
		case !d.switched && strings.EqualFold(id, d.greenCluster):
			ins, cluster = d.green, d.greenCluster
		case d.switched && strings.EqualFold(id, s.opts.ClusterID+migrate.OldSuffix):
			ins, cluster, version = d.old, s.opts.ClusterID+migrate.OldSuffix, d.oldVersion
		default:
			continue
		}
		c := xmlCluster{DBClusterIdentifier: cluster, DBClusterArn: s.clusterARN(cluster), Status: "available",
			Engine: Engine, EngineVersion: version, EngineMode: "provisioned", MultiAZ: len(ins) > 1}
		if d.status == bgProvisioning {
			c.Status = "creating"
		}
		for i, in := range ins {
			c.Members = append(c.Members, xmlMember{DBInstanceIdentifier: in.id, IsClusterWriter: i == 0,
				DBClusterParameterGroupStatus: "in-sync", PromotionTier: in.tier})
		}
		if b, ok := s.b.(BlueGreenBackend); ok && len(ins) > 0 && ins[0].node != "" {
			c.Endpoint = b.DeploymentAddr(ins[0].node)
			c.ReaderEndpoint = c.Endpoint
			c.Port = endpointPort(c.Endpoint)
		}
		return xmlClusters{Clusters: []xmlCluster{c}}, nil, true
	}
	return nil, nil, false
}

// describeDeploymentInstance answers DescribeDBInstances for a deployment's green
// or old blue instance.
func (s *Server) describeDeploymentInstance(id string) (any, *apiError, bool) {
	if id == "" {
		return nil, nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, did := range s.bg.order {
		d := s.bg.byID[did]
		for _, in := range append(append([]*instance(nil), d.green...), d.old...) {
			if strings.EqualFold(in.id, id) {
				x := s.instanceLocked(in)
				x.DBClusterIdentifier = d.greenCluster
				if d.switched {
					x.DBClusterIdentifier = s.opts.ClusterID + migrate.OldSuffix
				}
				x.Endpoint = nil
				if b, ok := s.b.(BlueGreenBackend); ok && in.node != "" {
					if host, port, ok := strings.Cut(b.DeploymentAddr(in.node), ":"); ok {
						p, _ := strconv.Atoi(port)
						x.Endpoint = &xmlEndpoint{Address: host, Port: p}
					}
				}
				return xmlInstances{Instances: []xmlInstance{x}}, nil, true
			}
		}
	}
	return nil, nil, false
}

type xmlSwitchoverDetail struct {
	SourceMember string
	TargetMember string
	Status       string
}

type xmlBlueGreen struct {
	BlueGreenDeploymentIdentifier string
	BlueGreenDeploymentName       string
	Source                        string
	Target                        string
	SwitchoverDetails             []xmlSwitchoverDetail `xml:"SwitchoverDetails>member"`
	Status                        string
	StatusDetails                 string `xml:",omitempty"`
	CreateTime                    string
}

type xmlBGResult struct {
	Deployment xmlBlueGreen `xml:"BlueGreenDeployment"`
}

type xmlBGList struct {
	Deployments []xmlBlueGreen `xml:"BlueGreenDeployments>member"`
}
