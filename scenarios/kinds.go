package scenarios

// Mode is how far a run goes: a dry run runs the load and the plan's read-only checks
// and changes nothing; a wet run performs the cutover.
type Mode string

// Modes.
const (
	ModeDry Mode = "dry"
	ModeWet Mode = "wet"
)

// TargetKind is what the load goes to.
type TargetKind string

// Target kinds. TargetDSN is not written in a scenario: it is what a run records
// when target.dsn points it at an existing database rehearse does not manage.
const (
	TargetLocal     TargetKind = "local"
	TargetContainer TargetKind = "container"
	TargetAurora    TargetKind = "aurora"
	TargetDSN       TargetKind = "dsn"
)

// EndpointMode is how the load reaches a cluster's writer and readers during a
// cutover. EndpointDirect is not written in a scenario: it is what a run records when
// no endpoints stood in front of the load (no cutover).
type EndpointMode string

// Endpoint modes.
const (
	EndpointDNS    EndpointMode = "dns"
	EndpointProxy  EndpointMode = "proxy"
	EndpointDirect EndpointMode = "direct"
)

// Enumerations a scenario accepts.
var (
	modes         = []string{string(ModeDry), string(ModeWet)}
	targetKinds   = []string{string(TargetLocal), string(TargetContainer), string(TargetAurora)}
	endpointModes = []string{string(EndpointDNS), string(EndpointProxy)}
)

// Overrides are what a run changes on top of a scenario file: the CLI's flags, a
// library caller's options. Zero values (nil pointers, "") leave the file's value.
type Overrides struct {
	Mode     Mode
	Target   TargetKind
	Endpoint EndpointMode
	DSN      string
	Duration *Duration
	Sessions *int
	// Rate holds one arrival rate for the whole run: it replaces the ramp stages.
	Rate     *float64
	Rollback bool
}

// With returns a copy of s with o applied; s is not changed. Validate the copy:
// With itself accepts any value, so that every problem is reported in one place.
func (s *Scenario) With(o Overrides) *Scenario {
	c := s.Clone()
	if o.Mode != "" {
		c.Mode = o.Mode
	}
	if o.Target != "" {
		c.Target.Kind = o.Target
	}
	if o.Endpoint != "" {
		c.Target.Endpoint = o.Endpoint
	}
	if o.DSN != "" {
		c.Target.DSN = o.DSN
	}
	if o.Duration != nil {
		c.Load.Duration = *o.Duration
	}
	if o.Sessions != nil {
		c.Load.Sessions = *o.Sessions
	}
	if o.Rate != nil {
		c.Load.Rate = *o.Rate
		c.Load.Stages = nil // one rate held: a ramp in the file would override it
	}
	if o.Rollback {
		c.Cutover.Rollback = true
	}
	return c
}
