package aurora

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/rds"

	"github.com/rehearse-dev/rehearse/migrate"
)

// Kind is the provider's kind, as scenarios and --target spell it.
const Kind = "aurora"

// NeededActions are the IAM actions a wet run calls (a dry run needs only the
// Describe ones).
var NeededActions = []string{"rds:DescribeDBClusters", "rds:DescribeDBInstances", "rds:ModifyDBCluster",
	"rds:CreateDBInstance", "rds:FailoverDBCluster", "rds:DeleteDBInstance"}

// Provider drives an Aurora PostgreSQL cluster through the RDS API. It implements
// migrate.Provider.
type Provider struct {
	cfg    Config
	api    *rds.Client
	region string
	// awsCfg is the SDK configuration, for the clients Monitor makes.
	awsCfg aws.Config

	mu    sync.Mutex
	calls []Call
	// bgID is the blue/green deployment CreateGreen created.
	bgID string
}

var _ migrate.Provider = (*Provider)(nil)

// New returns a provider for cfg.ClusterID. It loads the AWS configuration through
// the standard chain (or, for a loopback EndpointURL, fixed emulator credentials with
// IMDS off) but makes no API call.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg = cfg.withDefaults()
	p := &Provider{cfg: cfg}
	var opts []func(*config.LoadOptions) error
	region := cfg.Region
	creds := cfg.Credentials
	if cfg.EndpointURL != "" && isLoopbackURL(cfg.EndpointURL) {
		// The emulator accepts any credentials: never send real ones to it, and never
		// reach for the instance metadata service.
		opts = append(opts, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
		if region == "" {
			region = "us-east-1"
		}
		if creds == nil {
			creds = credentials.NewStaticCredentialsProvider("REHEARSEEMULATOR", "rehearse-emulator", "")
		}
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if creds != nil {
		opts = append(opts, config.WithCredentialsProvider(creds))
	}
	opts = append(opts, config.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			if cfg.RetryMaxAttempts > 0 {
				o.MaxAttempts = cfg.RetryMaxAttempts
			}
			if cfg.RetryMaxBackoff > 0 {
				o.MaxBackoff = cfg.RetryMaxBackoff
			}
		})
	}))
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("aurora: load the AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("%w: no AWS region: set AWS_REGION, a profile's region, or the provider's Region", ErrInvalidConfig)
	}
	p.region, p.awsCfg = awsCfg.Region, awsCfg
	p.api = rds.NewFromConfig(awsCfg, func(o *rds.Options) {
		if cfg.EndpointURL != "" {
			o.BaseEndpoint = aws.String(cfg.EndpointURL)
		}
		o.APIOptions = append(o.APIOptions, p.addRecorder)
	})
	return p, nil
}

// Kind implements migrate.Provider.
func (p *Provider) Kind() string { return Kind }

// ClusterID returns the target cluster's identifier.
func (p *Provider) ClusterID() string { return p.cfg.ClusterID }

// Region returns the region the provider talks to.
func (p *Provider) Region() string { return p.region }

// Client returns the SDK client (for callers that need more of the RDS API).
func (p *Provider) Client() *rds.Client { return p.api }

// Calls returns every API call made so far.
func (p *Provider) Calls() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// Close implements migrate.Provider; the provider holds no connection between calls.
func (p *Provider) Close(ctx context.Context) error { return nil }
