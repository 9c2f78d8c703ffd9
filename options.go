package rehearse

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rehearse-dev/rehearse/internal/engine"
	"github.com/rehearse-dev/rehearse/migrate/aurora"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// Option tunes one Run or Capacity call. Options that mirror scenario fields
// (duration, sessions, rate, DSN, target, endpoint) override the file, as the CLI's
// flags do. A call rejects an option it does not honour (ErrInvalidInput).
type Option func(*options)

type options struct {
	over     scenarios.Overrides
	set      map[string]bool // which options were given, by name
	out      string
	keep     bool
	notices  io.Writer
	image    string
	confirm  string
	awsURL   string
	progress io.Writer
	log      io.Writer
	shard    *shardOptions // WithShard: one shard of a run spread over several processes
}

func (o *options) mark(name string) {
	if o.set == nil {
		o.set = map[string]bool{}
	}
	o.set[name] = true
}

// WithOut sets the output directory (default runs/<UTC timestamp>-<scenario>).
func WithOut(dir string) Option { return func(o *options) { o.out = dir } }

// WithMode sets the mode: "dry" (default) or "wet". Run only.
func WithMode(mode string) Option {
	return func(o *options) { o.over.Mode = scenarios.Mode(mode); o.mark("WithMode") }
}

// WithTarget overrides the scenario's target kind (local, container, aurora).
func WithTarget(kind string) Option {
	return func(o *options) { o.over.Target = scenarios.TargetKind(kind) }
}

// WithEndpoint overrides the endpoint mode (dns or proxy).
func WithEndpoint(mode string) Option {
	return func(o *options) { o.over.Endpoint = scenarios.EndpointMode(mode) }
}

// WithDSN points the whole run at an existing database instead of starting one.
func WithDSN(dsn string) Option { return func(o *options) { o.over.DSN = dsn } }

// WithDuration overrides the load's duration. Run only.
func WithDuration(d time.Duration) Option {
	return func(o *options) { v := scenarios.Duration(d); o.over.Duration = &v; o.mark("WithDuration") }
}

// WithSessions overrides the number of simulated sessions. Run only.
func WithSessions(n int) Option {
	return func(o *options) { o.over.Sessions = &n; o.mark("WithSessions") }
}

// WithRate overrides the target arrival rate (actions/s); it replaces any ramp
// stages in the scenario with that one rate. Run only.
func WithRate(r float64) Option {
	return func(o *options) { o.over.Rate = &r; o.mark("WithRate") }
}

// WithKeep leaves an embedded server running after the run (its DSN and password
// file are logged, or told to WithNotices' writer).
func WithKeep(keep bool) Option { return func(o *options) { o.keep = keep } }

// WithNotices sends what the user must see even when the log is off to w: the
// servers WithKeep leaves running, their DSNs and password file (nil: the log).
func WithNotices(w io.Writer) Option { return func(o *options) { o.notices = w } }

// WithRollback rehearses the failback to the old writer after validation.
func WithRollback(on bool) Option { return func(o *options) { o.over.Rollback = on } }

// WithImage sets the PostgreSQL image of the container target (default: the
// official postgres:15 if present, else the image `make image` builds).
func WithImage(image string) Option { return func(o *options) { o.image = image } }

// WithConfirm names the Aurora cluster a wet run may change; a wet run against
// Aurora refuses to start without it matching the target cluster.
func WithConfirm(clusterID string) Option { return func(o *options) { o.confirm = clusterID } }

// WithAWSEndpointURL points the RDS API client at another endpoint, such as the
// RDS API emulator (`rehearse aurora-emulator`).
func WithAWSEndpointURL(url string) Option { return func(o *options) { o.awsURL = url } }

// WithProgress sends the live progress lines to w (nil: none).
func WithProgress(w io.Writer) Option { return func(o *options) { o.progress = w } }

// WithLog sends what the run is doing (starting the server, seeding, where the
// report is) to w (nil: nothing).
func WithLog(w io.Writer) Option { return func(o *options) { o.log = w } }

func collect(opts []Option) *options {
	o := &options{}
	for _, f := range opts {
		f(o)
	}
	if o.log == nil {
		o.log = io.Discard
	}
	return o
}

// reject fails when an option the call does not honour was given.
func (o *options) reject(call string, names ...string) error {
	var bad []string
	for _, n := range names {
		if o.set[n] {
			bad = append(bad, n)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s does not take %s", ErrInvalidInput, call, strings.Join(bad, ", "))
}

// scenario merges the overrides into a copy of sc and validates the result once:
// every problem is reported together, each naming its field.
func (o *options) scenario(sc *scenarios.Scenario) (*scenarios.Scenario, error) {
	if sc == nil {
		return nil, fmt.Errorf("%w: no scenario", ErrInvalidInput)
	}
	s := sc.With(o.over)
	if errs := s.Validate(); len(errs) > 0 {
		list := make([]scenarios.FieldError, 0, len(errs))
		for _, e := range errs {
			if fe, ok := e.(scenarios.FieldError); ok {
				list = append(list, fe)
			}
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, &scenarios.Errors{List: list})
	}
	return s, nil
}

// engineConfig is how the engine starts targets for s; for Aurora it resolves the
// cluster and checks --confirm for a wet run, before anything is started.
func (o *options) engineConfig(s *scenarios.Scenario) (engine.Config, error) {
	cfg := engine.Config{
		Target:  engine.TargetConfig{Image: o.image, AWSEndpointURL: o.awsURL, Log: o.log},
		Version: Version(),
		Notices: o.notices,
	}
	if s.Target.Kind != scenarios.TargetAurora {
		return cfg, nil
	}
	id, err := aurora.ResolveClusterID(s.Target.DSN, o.confirm)
	if err == nil {
		err = aurora.CheckConfirm(id, o.confirm, s.Mode == scenarios.ModeWet, s.Cutover.Strategy)
	}
	if err != nil {
		return cfg, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	cfg.Target.AuroraCluster = id
	return cfg, nil
}
