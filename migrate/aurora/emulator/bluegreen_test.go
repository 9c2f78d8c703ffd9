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

const demoARN = "arn:aws:rds:us-east-1:000000000000:cluster:rehearse-demo"

// bgClient is the unmodified SDK client pointed at an emulator over b.
func bgClient(t *testing.T, b Backend) (*rds.Client, *Server) {
	t.Helper()
	s := New(b, Options{})
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	return rds.New(rds.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(hs.URL), Credentials: aws.AnonymousCredentials{},
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) { o.MaxBackoff = 10 * time.Millisecond }),
	}), s
}

func describeBG(t *testing.T, c *rds.Client, id string) types.BlueGreenDeployment {
	t.Helper()
	out, err := c.DescribeBlueGreenDeployments(t.Context(), &rds.DescribeBlueGreenDeploymentsInput{BlueGreenDeploymentIdentifier: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	return out.BlueGreenDeployments[0]
}

func waitBG(t *testing.T, c *rds.Client, id, status string) types.BlueGreenDeployment {
	t.Helper()
	var bg types.BlueGreenDeployment
	testutil.Eventually(t, 10*time.Second, "deployment "+id+" to be "+status, func() bool {
		bg = describeBG(t, c, id)
		return aws.ToString(bg.Status) == status
	})
	return bg
}

func createBG(t *testing.T, c *rds.Client, version string) string {
	t.Helper()
	in := &rds.CreateBlueGreenDeploymentInput{BlueGreenDeploymentName: aws.String("upgrade"), Source: aws.String(demoARN)}
	if version != "" {
		in.TargetEngineVersion = aws.String(version)
	}
	out, err := c.CreateBlueGreenDeployment(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.BlueGreenDeployment.BlueGreenDeploymentIdentifier)
}

func TestBlueGreenLifecycleThroughTheSDK(t *testing.T) {
	b := NewMemoryBlueGreen()
	b.Syncs = 2
	c, s := bgClient(t, b)
	ctx := t.Context()
	out, err := c.CreateBlueGreenDeployment(ctx, &rds.CreateBlueGreenDeploymentInput{
		BlueGreenDeploymentName: aws.String("upgrade"), Source: aws.String(demoARN),
		TargetEngineVersion: aws.String("16.4"), TargetDBClusterParameterGroupName: aws.String("pg16-params"),
	})
	if err != nil {
		t.Fatal(err)
	}
	dep := out.BlueGreenDeployment
	id := aws.ToString(dep.BlueGreenDeploymentIdentifier)
	if !strings.HasPrefix(id, "bgd-") || aws.ToString(dep.Status) != "PROVISIONING" || aws.ToString(dep.Source) != demoARN ||
		!strings.Contains(aws.ToString(dep.Target), ":cluster:rehearse-demo-green-") || dep.CreateTime == nil {
		t.Fatalf("created %+v", dep)
	}
	bg := waitBG(t, c, id, "AVAILABLE")
	if len(bg.SwitchoverDetails) != 2 || aws.ToString(bg.SwitchoverDetails[1].Status) != "AVAILABLE" ||
		!strings.HasSuffix(aws.ToString(bg.SwitchoverDetails[1].SourceMember), ":db:rehearse-demo-instance-1") ||
		!strings.Contains(aws.ToString(bg.SwitchoverDetails[1].TargetMember), ":db:rehearse-demo-instance-1-green-") {
		t.Errorf("switchover details %+v", bg.SwitchoverDetails)
	}
	// The filters find it by source; green is a cluster of its own.
	list, err := c.DescribeBlueGreenDeployments(ctx, &rds.DescribeBlueGreenDeploymentsInput{
		Filters: []types.Filter{{Name: aws.String("source"), Values: []string{demoARN}}}})
	if err != nil || len(list.BlueGreenDeployments) != 1 {
		t.Fatalf("by source: %+v %v", list, err)
	}
	green := aws.ToString(bg.Target)[strings.LastIndexByte(aws.ToString(bg.Target), ':')+1:]
	gc, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(green)})
	if err != nil || aws.ToString(gc.DBClusters[0].EngineVersion) != "16.4" || aws.ToString(gc.DBClusters[0].Endpoint) == "" {
		t.Fatalf("green cluster %+v %v", gc, err)
	}

	if _, err := c.SwitchoverBlueGreenDeployment(ctx, &rds.SwitchoverBlueGreenDeploymentInput{
		BlueGreenDeploymentIdentifier: aws.String(id), SwitchoverTimeout: aws.Int32(30)}); err != nil {
		t.Fatal(err)
	}
	bg = waitBG(t, c, id, "SWITCHOVER_COMPLETED")
	if aws.ToString(bg.Target) != demoARN || !strings.HasSuffix(aws.ToString(bg.Source), ":cluster:rehearse-demo-old1") {
		t.Errorf("after the switchover: source %s target %s", aws.ToString(bg.Source), aws.ToString(bg.Target))
	}
	cl, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("rehearse-demo")})
	if err != nil {
		t.Fatal(err)
	}
	if v := aws.ToString(cl.DBClusters[0].EngineVersion); v != "16.4" || s.WriterInstance() != "rehearse-demo-instance-1" || b.Writer() != "node1-green-mem001" {
		t.Errorf("the cluster after the switchover: version %s, writer instance %s on node %s", v, s.WriterInstance(), b.Writer())
	}
	old, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String("rehearse-demo-old1")})
	if err != nil || aws.ToString(old.DBClusters[0].DBClusterMembers[0].DBInstanceIdentifier) != "rehearse-demo-instance-1-old1" ||
		aws.ToString(old.DBClusters[0].EngineVersion) != "15.8" {
		t.Fatalf("the old blue: %+v %v", old, err)
	}
	oi, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("rehearse-demo-instance-1-old1")})
	if err != nil || aws.ToString(oi.DBInstances[0].DBClusterIdentifier) != "rehearse-demo-old1" {
		t.Fatalf("the old blue's instance: %+v %v", oi, err)
	}

	_, err = c.DeleteBlueGreenDeployment(ctx, &rds.DeleteBlueGreenDeploymentInput{BlueGreenDeploymentIdentifier: aws.String(id), DeleteTarget: aws.Bool(true)})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidParameterCombination" {
		t.Errorf("DeleteTarget after the switchover: %v", err)
	}
	del, err := c.DeleteBlueGreenDeployment(ctx, &rds.DeleteBlueGreenDeploymentInput{BlueGreenDeploymentIdentifier: aws.String(id)})
	if err != nil || aws.ToString(del.BlueGreenDeployment.Status) != "DELETING" {
		t.Fatalf("delete: %+v %v", del, err)
	}
	testutil.Eventually(t, 10*time.Second, "the deployment to be gone", func() bool {
		_, err := c.DescribeBlueGreenDeployments(ctx, &rds.DescribeBlueGreenDeploymentsInput{BlueGreenDeploymentIdentifier: aws.String(id)})
		var nf *types.BlueGreenDeploymentNotFoundFault
		return errors.As(err, &nf)
	})
	var mutating []string
	for _, a := range s.Actions() {
		if !strings.HasPrefix(a, "Describe") {
			mutating = append(mutating, a)
		}
	}
	if got, want := strings.Join(mutating, " "), "CreateBlueGreenDeployment SwitchoverBlueGreenDeployment DeleteBlueGreenDeployment DeleteBlueGreenDeployment"; got != want {
		t.Errorf("calls:\n got %s\nwant %s", got, want)
	}
}

func TestBlueGreenFaultsThroughTheSDK(t *testing.T) {
	tests := []struct {
		name    string
		backend func() Backend
		call    func(t *testing.T, c *rds.Client) error
		code    string
		target  any
	}{
		{"describe an unknown deployment", func() Backend { return NewMemoryBlueGreen() }, func(t *testing.T, c *rds.Client) error {
			_, err := c.DescribeBlueGreenDeployments(t.Context(), &rds.DescribeBlueGreenDeploymentsInput{BlueGreenDeploymentIdentifier: aws.String("bgd-nope")})
			return err
		}, "BlueGreenDeploymentNotFoundFault", new(*types.BlueGreenDeploymentNotFoundFault)},
		{"switch over an unknown deployment", func() Backend { return NewMemoryBlueGreen() }, func(t *testing.T, c *rds.Client) error {
			_, err := c.SwitchoverBlueGreenDeployment(t.Context(), &rds.SwitchoverBlueGreenDeploymentInput{BlueGreenDeploymentIdentifier: aws.String("bgd-nope")})
			return err
		}, "BlueGreenDeploymentNotFoundFault", new(*types.BlueGreenDeploymentNotFoundFault)},
		{"delete an unknown deployment", func() Backend { return NewMemoryBlueGreen() }, func(t *testing.T, c *rds.Client) error {
			_, err := c.DeleteBlueGreenDeployment(t.Context(), &rds.DeleteBlueGreenDeploymentInput{BlueGreenDeploymentIdentifier: aws.String("bgd-nope")})
			return err
		}, "BlueGreenDeploymentNotFoundFault", new(*types.BlueGreenDeploymentNotFoundFault)},
		{"switch over while provisioning", func() Backend { b := NewMemoryBlueGreen(); b.Syncs = 1 << 30; return b }, func(t *testing.T, c *rds.Client) error {
			id := createBG(t, c, "")
			_, err := c.SwitchoverBlueGreenDeployment(t.Context(), &rds.SwitchoverBlueGreenDeploymentInput{BlueGreenDeploymentIdentifier: aws.String(id)})
			return err
		}, "InvalidBlueGreenDeploymentStateFault", new(*types.InvalidBlueGreenDeploymentStateFault)},
		{"delete while provisioning", func() Backend { b := NewMemoryBlueGreen(); b.Syncs = 1 << 30; return b }, func(t *testing.T, c *rds.Client) error {
			id := createBG(t, c, "")
			_, err := c.DeleteBlueGreenDeployment(t.Context(), &rds.DeleteBlueGreenDeploymentInput{BlueGreenDeploymentIdentifier: aws.String(id), DeleteTarget: aws.Bool(true)})
			return err
		}, "InvalidBlueGreenDeploymentStateFault", new(*types.InvalidBlueGreenDeploymentStateFault)},
		{"a second deployment of the cluster", func() Backend { return NewMemoryBlueGreen() }, func(t *testing.T, c *rds.Client) error {
			createBG(t, c, "")
			_, err := c.CreateBlueGreenDeployment(t.Context(), &rds.CreateBlueGreenDeploymentInput{BlueGreenDeploymentName: aws.String("again"), Source: aws.String(demoARN)})
			return err
		}, "BlueGreenDeploymentAlreadyExistsFault", new(*types.BlueGreenDeploymentAlreadyExistsFault)},
		{"an unknown source", func() Backend { return NewMemoryBlueGreen() }, func(t *testing.T, c *rds.Client) error {
			_, err := c.CreateBlueGreenDeployment(t.Context(), &rds.CreateBlueGreenDeploymentInput{BlueGreenDeploymentName: aws.String("x"),
				Source: aws.String("arn:aws:rds:us-east-1:000000000000:cluster:other")})
			return err
		}, "DBClusterNotFoundFault", new(*types.DBClusterNotFoundFault)},
		{"an older target version", func() Backend { return NewMemoryBlueGreen() }, func(t *testing.T, c *rds.Client) error {
			_, err := c.CreateBlueGreenDeployment(t.Context(), &rds.CreateBlueGreenDeploymentInput{BlueGreenDeploymentName: aws.String("x"),
				Source: aws.String(demoARN), TargetEngineVersion: aws.String("14.9")})
			return err
		}, "InvalidParameterCombination", nil},
		{"an instance class for Aurora", func() Backend { return NewMemoryBlueGreen() }, func(t *testing.T, c *rds.Client) error {
			_, err := c.CreateBlueGreenDeployment(t.Context(), &rds.CreateBlueGreenDeploymentInput{BlueGreenDeploymentName: aws.String("x"),
				Source: aws.String(demoARN), TargetDBInstanceClass: aws.String("db.serverless")})
			return err
		}, "InvalidParameterCombination", nil},
		{"a switchover timeout under 30 s", func() Backend { return NewMemoryBlueGreen() }, func(t *testing.T, c *rds.Client) error {
			id := createBG(t, c, "")
			waitBG(t, c, id, "AVAILABLE")
			_, err := c.SwitchoverBlueGreenDeployment(t.Context(), &rds.SwitchoverBlueGreenDeploymentInput{BlueGreenDeploymentIdentifier: aws.String(id), SwitchoverTimeout: aws.Int32(5)})
			return err
		}, "InvalidParameterValue", nil},
		{"a backend without blue/green", func() Backend { return NewMemoryBackend() }, func(t *testing.T, c *rds.Client) error {
			_, err := c.CreateBlueGreenDeployment(t.Context(), &rds.CreateBlueGreenDeploymentInput{BlueGreenDeploymentName: aws.String("x"), Source: aws.String(demoARN)})
			return err
		}, "SourceClusterNotSupportedFault", new(*types.SourceClusterNotSupportedFault)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := bgClient(t, tt.backend())
			err := tt.call(t, c)
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

func TestBlueGreenFailedStatuses(t *testing.T) {
	t.Run("rds.logical_replication off", func(t *testing.T) {
		b := NewMemoryBlueGreen()
		b.Incompatible = true
		c, _ := bgClient(t, b)
		bg := waitBG(t, c, createBG(t, c, ""), "INVALID_CONFIGURATION")
		if !strings.Contains(aws.ToString(bg.StatusDetails), "incompatible parameter(s): [rds.logical_replication]") {
			t.Errorf("status details %q", aws.ToString(bg.StatusDetails))
		}
	})
	t.Run("the switchover rolls back", func(t *testing.T) {
		b := NewMemoryBlueGreen()
		b.FailSwitchover = context.DeadlineExceeded
		c, s := bgClient(t, b)
		id := createBG(t, c, "")
		waitBG(t, c, id, "AVAILABLE")
		if _, err := c.SwitchoverBlueGreenDeployment(t.Context(), &rds.SwitchoverBlueGreenDeploymentInput{BlueGreenDeploymentIdentifier: aws.String(id)}); err != nil {
			t.Fatal(err)
		}
		bg := waitBG(t, c, id, "SWITCHOVER_FAILED")
		if !strings.Contains(aws.ToString(bg.StatusDetails), "rolled back") || s.WriterInstance() != "rehearse-demo-instance-1" || b.Writer() != "node1" {
			t.Errorf("status details %q, writer %s on %s", aws.ToString(bg.StatusDetails), s.WriterInstance(), b.Writer())
		}
		// Deleting it with its target removes green.
		if _, err := c.DeleteBlueGreenDeployment(t.Context(), &rds.DeleteBlueGreenDeploymentInput{BlueGreenDeploymentIdentifier: aws.String(id), DeleteTarget: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "green to be deleted", func() bool { return b.DeploymentAddr("node1-green-mem001") == "" })
	})
}
