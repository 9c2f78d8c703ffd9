package emulator

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/smithy-go"
)

// RebootDBInstance through the unmodified SDK: the instance reboots and is
// available again; RDS's refusals (an unknown instance, ForceFailover on an Aurora
// instance, a missing identifier) come back as its error codes.
func TestRebootDBInstance(t *testing.T) {
	c, _ := client(t, Options{})
	ctx := t.Context()
	writer := aws.String("rehearse-demo-instance-1")
	out, err := c.RebootDBInstance(ctx, &rds.RebootDBInstanceInput{DBInstanceIdentifier: writer})
	if err != nil {
		t.Fatal(err)
	}
	if st := aws.ToString(out.DBInstance.DBInstanceStatus); st != "rebooting" {
		t.Errorf("status right after RebootDBInstance = %q, want rebooting", st)
	}
	w := rds.NewDBInstanceAvailableWaiter(c, func(o *rds.DBInstanceAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 5*time.Millisecond, 20*time.Millisecond
	})
	if err := w.Wait(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: writer}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   rds.RebootDBInstanceInput
		code string
	}{
		{"force failover", rds.RebootDBInstanceInput{DBInstanceIdentifier: writer, ForceFailover: aws.Bool(true)}, "InvalidParameterCombination"},
		{"unknown instance", rds.RebootDBInstanceInput{DBInstanceIdentifier: aws.String("nope")}, "DBInstanceNotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.RebootDBInstance(ctx, &tt.in)
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != tt.code {
				t.Errorf("got %v, want %s", err, tt.code)
			}
		})
	}
}
