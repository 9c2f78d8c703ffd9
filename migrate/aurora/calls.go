package aurora

import (
	"context"
	"errors"
	"fmt"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// PermissionError is an AccessDenied answer, naming the IAM action that is missing.
// It matches ErrAccessDenied and unwraps to the SDK's error.
type PermissionError struct {
	// Action is the IAM action, e.g. rds:CreateDBInstance.
	Action string
	// Err is the SDK's error.
	Err error
}

// Error says which permission is missing.
func (e *PermissionError) Error() string {
	return fmt.Sprintf("%s is not allowed for this identity: add it to the IAM policy (see README, \"Rehearsing against a real Aurora cluster\"): %v", e.Action, e.Err)
}

// Unwrap returns ErrAccessDenied and the SDK's error.
func (e *PermissionError) Unwrap() []error { return []error{ErrAccessDenied, e.Err} }

// addRecorder records every operation — including a waiter's — with its duration,
// attempts and result, and names the IAM action of an AccessDenied answer.
func (p *Provider) addRecorder(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("RehearseRecordCall",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			op := middleware.GetOperationName(ctx)
			start, began := p.cfg.Now(), time.Now()
			out, md, err := next.HandleInitialize(ctx, in)
			if err != nil {
				err = permissionError(op, err)
			}
			c := Call{Action: op, Start: start, Duration: time.Since(began), Err: err, Attempts: 1}
			if rid, ok := awsmiddleware.GetRequestIDMetadata(md); ok {
				c.RequestID = rid
			}
			if res, ok := retry.GetAttemptResults(md); ok && len(res.Results) > 0 {
				c.Attempts = len(res.Results)
			}
			p.record(c)
			return out, md, err
		}), middleware.After)
}

func (p *Provider) record(c Call) {
	p.mu.Lock()
	p.calls = append(p.calls, c)
	p.mu.Unlock()
	fmt.Fprintf(p.cfg.Log, "aurora: %s\n", c)
	if p.cfg.OnCall != nil {
		p.cfg.OnCall(c)
	}
}

// mark and since collect the calls of one step, for its detail.
func (p *Provider) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

func (p *Provider) since(mark int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, c := range p.calls[min(mark, len(p.calls)):] {
		out = append(out, c.String())
	}
	return out
}

// permissionError turns an AccessDenied answer into a PermissionError naming the action.
func permissionError(op string, err error) error {
	var pe *PermissionError
	if errors.As(err, &pe) {
		return err
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "NotAuthorized":
			return &PermissionError{Action: "rds:" + op, Err: err}
		}
	}
	return err
}

func hasCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}
