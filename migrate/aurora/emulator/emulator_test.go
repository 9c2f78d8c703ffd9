package emulator

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/smithy-go"

	"github.com/rehearse-dev/rehearse/internal/testutil"
)

// client is the unmodified SDK client pointed at an emulator over a MemoryBackend.
func client(t *testing.T, opts Options) (*rds.Client, *Server) {
	t.Helper()
	s := New(NewMemoryBackend(), opts)
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	c := rds.New(rds.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(hs.URL),
		Credentials:  aws.AnonymousCredentials{},
		Retryer:      retry.NewStandard(func(o *retry.StandardOptions) { o.MaxBackoff = 10 * time.Millisecond }),
	})
	return c, s
}

func TestDescribeDBClustersShape(t *testing.T) {
	c, _ := client(t, Options{})
	out, err := c.DescribeDBClusters(t.Context(), &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("rehearse-demo")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.DBClusters) != 1 {
		t.Fatalf("clusters: %d", len(out.DBClusters))
	}
	cl := out.DBClusters[0]
	checks := []struct{ name, got, want string }{
		{"id", aws.ToString(cl.DBClusterIdentifier), "rehearse-demo"},
		{"status", aws.ToString(cl.Status), "available"},
		{"engine", aws.ToString(cl.Engine), "aurora-postgresql"},
		{"version", aws.ToString(cl.EngineVersion), "15.8"},
		{"endpoint", aws.ToString(cl.Endpoint), "127.0.0.1:1"},
		{"reader endpoint", aws.ToString(cl.ReaderEndpoint), "127.0.0.1:2"},
		{"forwarding", string(cl.LocalWriteForwardingStatus), "disabled"},
		{"member", aws.ToString(cl.DBClusterMembers[0].DBInstanceIdentifier), "rehearse-demo-instance-1"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if !aws.ToBool(cl.DBClusterMembers[0].IsClusterWriter) || aws.ToInt32(cl.DBClusterMembers[0].PromotionTier) != 1 {
		t.Errorf("member: %+v", cl.DBClusterMembers[0])
	}
	if aws.ToInt32(cl.Port) != 1 || cl.ServerlessV2ScalingConfiguration != nil {
		t.Errorf("port %d scaling %+v", aws.ToInt32(cl.Port), cl.ServerlessV2ScalingConfiguration)
	}
}

func TestLifecycle(t *testing.T) {
	c, s := client(t, Options{})
	ctx := t.Context()
	id := aws.String("rehearse-demo")
	_, err := c.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("sv2"), DBClusterIdentifier: id,
		DBInstanceClass: aws.String("db.serverless"), Engine: aws.String("aurora-postgresql"), PromotionTier: aws.Int32(0)})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidParameterCombination" || !strings.Contains(ae.ErrorMessage(), "Serverless v2 scaling") {
		t.Fatalf("db.serverless without scaling: %v", err)
	}
	if _, err := c.ModifyDBCluster(ctx, &rds.ModifyDBClusterInput{DBClusterIdentifier: id, ApplyImmediately: aws.Bool(true),
		ServerlessV2ScalingConfiguration: &types.ServerlessV2ScalingConfiguration{MinCapacity: aws.Float64(0.5), MaxCapacity: aws.Float64(8)}}); err != nil {
		t.Fatal(err)
	}
	out, err := c.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("sv2"), DBClusterIdentifier: id,
		DBInstanceClass: aws.String("db.serverless"), Engine: aws.String("aurora-postgresql"), PromotionTier: aws.Int32(0)})
	if err != nil {
		t.Fatal(err)
	}
	if st := aws.ToString(out.DBInstance.DBInstanceStatus); st != "creating" {
		t.Errorf("new instance status %q, want creating", st)
	}
	w := rds.NewDBInstanceAvailableWaiter(c, func(o *rds.DBInstanceAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	})
	if err := w.Wait(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("sv2")}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	ins, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("sv2")})
	if err != nil {
		t.Fatal(err)
	}
	in := ins.DBInstances[0]
	if aws.ToString(in.DBInstanceClass) != "db.serverless" || in.Endpoint == nil || aws.ToString(in.Endpoint.Address) != "127.0.0.1" || aws.ToInt32(in.Endpoint.Port) != 5433 {
		t.Errorf("instance: class %q endpoint %+v", aws.ToString(in.DBInstanceClass), in.Endpoint)
	}
	if _, err := c.FailoverDBCluster(ctx, &rds.FailoverDBClusterInput{DBClusterIdentifier: id, TargetDBInstanceIdentifier: aws.String("sv2")}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "sv2 to be the writer", func() bool { return s.WriterInstance() == "sv2" })
	_, err = c.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("sv2")})
	if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidDBClusterStateFault" {
		t.Errorf("deleting the writer: %v", err)
	}
	testutil.Eventually(t, 10*time.Second, "the cluster to be available", func() bool {
		o, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: id})
		return err == nil && aws.ToString(o.DBClusters[0].Status) == "available"
	})
	if _, err := c.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("rehearse-demo-instance-1")}); err != nil {
		t.Fatal(err)
	}
	dw := rds.NewDBInstanceDeletedWaiter(c, func(o *rds.DBInstanceDeletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	})
	if err := dw.Wait(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("rehearse-demo-instance-1")}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	want := []string{"CreateDBInstance", "ModifyDBCluster", "CreateDBInstance", "FailoverDBCluster", "DeleteDBInstance", "DeleteDBInstance"}
	var got []string
	for _, a := range s.Actions() {
		if !strings.HasPrefix(a, "Describe") {
			got = append(got, a)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("mutating calls:\n got %v\nwant %v", got, want)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		call   func(ctx context.Context, c *rds.Client) error
		target any
		code   string
	}{
		{"cluster not found", Options{}, func(ctx context.Context, c *rds.Client) error {
			_, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("nope")})
			return err
		}, new(*types.DBClusterNotFoundFault), "DBClusterNotFoundFault"},
		{"instance not found", Options{}, func(ctx context.Context, c *rds.Client) error {
			_, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("nope")})
			return err
		}, new(*types.DBInstanceNotFoundFault), "DBInstanceNotFound"},
		{"failover state fault", Options{Faults: Faults{FailoverStateFaults: 1}}, func(ctx context.Context, c *rds.Client) error {
			_, err := c.FailoverDBCluster(ctx, &rds.FailoverDBClusterInput{DBClusterIdentifier: aws.String("rehearse-demo")})
			return err
		}, new(*types.InvalidDBClusterStateFault), "InvalidDBClusterStateFault"},
		{"access denied", Options{Faults: Faults{Deny: []string{"DescribeDBClusters"}}}, func(ctx context.Context, c *rds.Client) error {
			_, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{})
			return err
		}, nil, "AccessDenied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := client(t, tt.opts)
			err := tt.call(t.Context(), c)
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != tt.code {
				t.Fatalf("got %v, want code %s", err, tt.code)
			}
			if tt.target != nil && !errors.As(err, tt.target) {
				t.Errorf("%v is not a %T", err, tt.target)
			}
		})
	}
}

func TestThrottlingIsRetried(t *testing.T) {
	c, s := client(t, Options{Faults: Faults{Throttle: map[string]int{"DescribeDBClusters": 2}}})
	if _, err := c.DescribeDBClusters(t.Context(), &rds.DescribeDBClustersInput{}); err != nil {
		t.Fatalf("the SDK should retry throttling: %v", err)
	}
	var codes []string
	for _, call := range s.Calls() {
		codes = append(codes, call.Code)
	}
	if strings.Join(codes, " ") != "ThrottlingException ThrottlingException OK" {
		t.Errorf("call log codes: %v", codes)
	}
}

func TestFunctionsSQL(t *testing.T) {
	sql := FunctionsSQL(map[string]string{"node1": "demo-instance-1", "node2": "o'brien"}, map[string]string{"node1": "127.4.5.2:5432", "node2": "127.4.5.3:5432"})
	for _, want := range []string{"('node1', '127.4.5.2', 5432, 'demo-instance-1')", "('node2', '127.4.5.3', 5432, 'o''brien')", "aurora_replica_status()", "aurora_db_instance_identifier()", "MASTER_SESSION_ID"} {
		if !strings.Contains(sql, want) {
			t.Errorf("missing %q in:\n%s", want, sql)
		}
	}
}
