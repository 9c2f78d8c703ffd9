package aurora

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"

	"github.com/rehearse-dev/rehearse/migrate"
)

// Preflight implements migrate.Provider: DescribeDBClusters and DescribeDBInstances
// only. It checks that the cluster is available, runs aurora-postgresql at a version
// with local write forwarding, has a writer, and that the instance to create does not
// exist; it reports the members, the Serverless v2 scaling, the write forwarding
// status and the endpoints, and warns when the DSN names an instance endpoint.
func (p *Provider) Preflight(ctx context.Context) ([]migrate.Check, error) {
	c, err := p.describeCluster(ctx)
	if err != nil {
		return nil, err
	}
	ins, err := p.describeInstances(ctx)
	if err != nil {
		return nil, err
	}
	engine, version := aws.ToString(c.Engine), aws.ToString(c.EngineVersion)
	status := aws.ToString(c.Status)
	writer := writerOf(c)
	var members []string
	for _, m := range c.DBClusterMembers {
		id := aws.ToString(m.DBInstanceIdentifier)
		role := "reader"
		if aws.ToBool(m.IsClusterWriter) {
			role = "writer"
		}
		in := ins[id]
		members = append(members, fmt.Sprintf("%s (%s, tier %d, %s, %s)", id, role, aws.ToInt32(m.PromotionTier),
			aws.ToString(in.DBInstanceClass), aws.ToString(in.DBInstanceStatus)))
	}
	scaling := "none: create_replica sets " + acuRange(p.cfg.MinACU, p.cfg.MaxACU)
	if s := c.ServerlessV2ScalingConfiguration; s != nil {
		scaling = acuRange(aws.ToFloat64(s.MinCapacity), aws.ToFloat64(s.MaxCapacity))
	}
	_, exists := member(c, p.cfg.InstanceID)
	checks := []migrate.Check{
		{Name: "cluster available", OK: status == "available", Detail: p.cfg.ClusterID + " is " + status},
		{Name: "engine", OK: engine == DefaultEngine, Detail: engine + " " + version},
		{Name: "local write forwarding supported", OK: SupportsLocalWriteForwarding(version),
			Detail: versionDetail(engine, version)},
		{Name: "writer", OK: writer != "", Detail: orNone(writer)},
		{Name: "members", OK: true, Detail: strings.Join(members, "; ")},
		{Name: "serverless v2 scaling", OK: true, Detail: scaling},
		{Name: "local write forwarding status", OK: true, Detail: orNone(string(c.LocalWriteForwardingStatus))},
		{Name: "endpoints", OK: true, Detail: "writer " + hostPort(c.Endpoint, c.Port) + ", reader " + hostPort(c.ReaderEndpoint, c.Port)},
		{Name: "new instance id free", OK: !exists, Warning: true, Detail: p.cfg.InstanceID + map[bool]string{true: " already exists in the cluster", false: " is free"}[exists]},
		{Name: "IAM permissions", OK: true, Detail: "verified by calling them: rds:DescribeDBClusters, rds:DescribeDBInstances; a wet run also needs rds:ModifyDBCluster, rds:CreateDBInstance, rds:FailoverDBCluster, rds:DeleteDBInstance (not checkable without side effects: a denial is reported by name at first use)"},
	}
	checks = append(checks, p.dsnCheck(c, ins))
	return checks, nil
}

func (p *Provider) dsnCheck(c types.DBCluster, ins map[string]types.DBInstance) migrate.Check {
	ck := migrate.Check{Name: "DSN names the cluster endpoint", OK: true, Warning: true}
	if p.cfg.DSN == "" {
		ck.Detail = "no DSN given; the load uses the cluster endpoints"
		return ck
	}
	host, addr := dsnHost(p.cfg.DSN), dsnAddr(p.cfg.DSN)
	for id, in := range ins {
		if a := instanceAddr(in); a != "" && strings.EqualFold(a, addr) && !strings.EqualFold(addr, hostPort(c.Endpoint, c.Port)) {
			ck.OK = false
			ck.Detail = fmt.Sprintf("the DSN's host %s is instance %s's own endpoint: after the failover it no longer reaches the writer; use the cluster endpoint %s", host, id, aws.ToString(c.Endpoint))
			return ck
		}
	}
	if strings.HasSuffix(host, ".rds.amazonaws.com") {
		if _, ok := ClusterIDFromDSN(p.cfg.DSN); !ok {
			ck.OK = false
			ck.Detail = fmt.Sprintf("the DSN's host %s is not a cluster endpoint (ID.cluster-...): after the failover it may not reach the writer; use %s", host, aws.ToString(c.Endpoint))
			return ck
		}
	}
	ck.Detail = "the load connects to the cluster endpoints DescribeDBClusters reports (the DSN supplies user, database and TLS)"
	return ck
}

// dsnAddr returns a postgres URL's host:port (port 5432 when it names none).
func dsnAddr(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

func versionDetail(engine, version string) string {
	if SupportsLocalWriteForwarding(version) {
		return engine + " " + version + " has local write forwarding"
	}
	return fmt.Sprintf("%s %s has no local write forwarding: upgrade to Aurora PostgreSQL 16.4+, 15.8+ or 14.13+", engine, version)
}

func acuRange(lo, hi float64) string {
	return strconv.FormatFloat(lo, 'f', -1, 64) + "-" + strconv.FormatFloat(hi, 'f', -1, 64) + " ACU"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
