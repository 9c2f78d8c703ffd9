package aurora

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
)

// waiterTimedOut reports whether an SDK waiter gave up at its maximum wait.
func waiterTimedOut(err error) bool {
	return strings.Contains(err.Error(), "exceeded max wait time") || errors.Is(err, context.DeadlineExceeded)
}

// waitAvailable runs the SDK's DBInstanceAvailable waiter, with AccessDenied
// reported at once and a timeout that says what the instance was doing.
func (p *Provider) waitAvailable(ctx context.Context, id string) (types.DBInstance, error) {
	var last string
	w := rds.NewDBInstanceAvailableWaiter(p.api, func(o *rds.DBInstanceAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = p.cfg.WaiterMinDelay, p.cfg.WaiterMaxDelay
		o.Retryable = tracking(o.Retryable, &last)
	})
	out, err := w.WaitForOutput(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)}, p.cfg.CreateTimeout)
	switch {
	case err == nil && len(out.DBInstances) > 0:
		return out.DBInstances[0], nil
	case err == nil:
		return types.DBInstance{}, fmt.Errorf("%w: instance %s", ErrNotFound, id)
	case errors.Is(err, ErrAccessDenied):
		return types.DBInstance{}, fmt.Errorf("aurora: wait for instance %s: %w", id, err)
	case ctx.Err() == nil && waiterTimedOut(err):
		return types.DBInstance{}, fmt.Errorf("%w: instance %s was not available after %v (last status %q); it was left in place: delete it or wait for it",
			ErrWaiterTimeout, id, p.cfg.CreateTimeout, last)
	}
	return types.DBInstance{}, fmt.Errorf("aurora: wait for instance %s to be available (last status %q): %w", id, last, err)
}

// waitDeleted runs the SDK's DBInstanceDeleted waiter, with AccessDenied reported at
// once and a timeout that says what the instance was doing.
func (p *Provider) waitDeleted(ctx context.Context, id string) error {
	var last string
	w := rds.NewDBInstanceDeletedWaiter(p.api, func(o *rds.DBInstanceDeletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = p.cfg.WaiterMinDelay, p.cfg.WaiterMaxDelay
		o.Retryable = tracking(o.Retryable, &last)
	})
	err := w.Wait(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)}, p.cfg.DeleteTimeout)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrAccessDenied):
		return fmt.Errorf("aurora: wait for instance %s to be deleted: %w", id, err)
	case ctx.Err() == nil && waiterTimedOut(err):
		return fmt.Errorf("%w: instance %s was not deleted after %v (last status %q)", ErrWaiterTimeout, id, p.cfg.DeleteTimeout, last)
	}
	return fmt.Errorf("aurora: wait for instance %s to be deleted (last status %q): %w", id, last, err)
}

// instanceRetryable is the retry check of the SDK's DescribeDBInstances waiters.
type instanceRetryable = func(context.Context, *rds.DescribeDBInstancesInput, *rds.DescribeDBInstancesOutput, error) (bool, error)

// tracking wraps a waiter's retry check def: AccessDenied ends the wait at once,
// and last gets the instance's status from every answer.
func tracking(def instanceRetryable, last *string) instanceRetryable {
	return func(ctx context.Context, in *rds.DescribeDBInstancesInput, out *rds.DescribeDBInstancesOutput, err error) (bool, error) {
		if errors.Is(err, ErrAccessDenied) {
			return false, err
		}
		if out != nil && len(out.DBInstances) > 0 {
			*last = aws.ToString(out.DBInstances[0].DBInstanceStatus)
		}
		return def(ctx, in, out, err)
	}
}

// waitCluster polls DescribeDBClusters until done, for at most limit.
func (p *Provider) waitCluster(ctx context.Context, limit time.Duration, what string, done func(types.DBCluster) bool) (types.DBCluster, error) {
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(p.cfg.Poll)
	defer tick.Stop()
	var (
		last    types.DBCluster
		lastErr error
	)
	for {
		c, err := p.describeCluster(wctx)
		if err == nil {
			last = c
			if done(c) {
				return c, nil
			}
		} else if errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrNotFound) {
			return c, err
		} else {
			lastErr = err
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return last, fmt.Errorf("aurora: waiting for %s: %w", what, ctx.Err())
			}
			return last, fmt.Errorf("%w: %s did not happen within %v (cluster status %q, last error %v)",
				ErrWaiterTimeout, what, limit, aws.ToString(last.Status), lastErr)
		case <-tick.C:
		}
	}
}
