package rehearse

import (
	"io"
	"time"
)

// Option tunes one Run. Options that mirror scenario fields (duration, sessions, rate,
// DSN, target, endpoint) override the file, as the CLI's flags do.
type Option func(*options)

type options struct {
	out      string
	mode     string
	target   string
	endpoint string
	dsn      string
	duration time.Duration
	sessions int
	rate     float64
	rateSet  bool
	keep     bool
	rollback bool
	image    string
	confirm  string
	awsURL   string
	// auroraCluster is the cluster id resolved from the DSN or --confirm.
	auroraCluster string
	progress      io.Writer
	log           io.Writer
	now           func() time.Time
}

// WithOut sets the output directory (default runs/<UTC timestamp>-<scenario>).
func WithOut(dir string) Option { return func(o *options) { o.out = dir } }

// WithMode sets the mode: "dry" (default) or "wet".
func WithMode(mode string) Option { return func(o *options) { o.mode = mode } }

// WithTarget overrides the scenario's target kind (local, container, aurora).
func WithTarget(kind string) Option { return func(o *options) { o.target = kind } }

// WithEndpoint overrides the endpoint mode (dns or proxy).
func WithEndpoint(mode string) Option { return func(o *options) { o.endpoint = mode } }

// WithDSN points the whole run at an existing database instead of starting one.
func WithDSN(dsn string) Option { return func(o *options) { o.dsn = dsn } }

// WithDuration overrides the load's duration.
func WithDuration(d time.Duration) Option { return func(o *options) { o.duration = d } }

// WithSessions overrides the number of simulated sessions.
func WithSessions(n int) Option { return func(o *options) { o.sessions = n } }

// WithRate overrides the target arrival rate (actions/s); it replaces any ramp
// stages in the scenario with that one rate.
func WithRate(r float64) Option { return func(o *options) { o.rate, o.rateSet = r, true } }

// WithKeep leaves an embedded server running after the run (its DSN is logged).
func WithKeep(keep bool) Option { return func(o *options) { o.keep = keep } }

// WithRollback rehearses the failback to the old writer after validation.
func WithRollback(on bool) Option { return func(o *options) { o.rollback = on } }

// WithImage sets the PostgreSQL image of the container target (default: the
// official postgres:15 if present, else the image `make image` builds).
func WithImage(image string) Option { return func(o *options) { o.image = image } }

// WithConfirm names the Aurora cluster a wet run may change; a wet run against
// Aurora refuses to start without it matching the target cluster.
func WithConfirm(clusterID string) Option { return func(o *options) { o.confirm = clusterID } }

// WithAWSEndpointURL points the RDS API client at another endpoint, such as the
// RDS API emulator (`rehearse aurora-emulator`).
func WithAWSEndpointURL(url string) Option { return func(o *options) { o.awsURL = url } }

// WithProgress sends the live once-a-second progress line to w (nil: none).
func WithProgress(w io.Writer) Option { return func(o *options) { o.progress = w } }

// WithLog sends what the run is doing (starting the server, seeding, where the
// report is) to w (nil: nothing).
func WithLog(w io.Writer) Option { return func(o *options) { o.log = w } }
