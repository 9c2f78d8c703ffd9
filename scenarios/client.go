package scenarios

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Client is how the application talks to the database: its pools, its DNS cache, its
// sockets and its retries. What users feel during a failover is decided as much by
// these as by the database. Fields not given in a file take the preset's values.
type Client struct {
	// Preset is a named starting point: naive (default), pgx, hikari,
	// jdbc-dns-forever or aws-jdbc-wrapper (see Presets).
	Preset string `yaml:"preset"`
	// AppInstances is how many application instances hold pools: each has its own
	// writer and reader pools, and the sessions are spread over them.
	AppInstances int `yaml:"app_instances"`
	// PoolSize is each instance's pool size, per endpoint (alias: load.pool_size).
	PoolSize int `yaml:"pool_size"`
	// ConnectTimeout bounds opening a connection (0: no limit).
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// MaxLifetime is how long a pooled connection lives before it is replaced
	// (alias: load.conn_max_lifetime).
	MaxLifetime Duration `yaml:"max_lifetime"`
	// ValidateOnBorrow sends a health check (a ping) before handing out a
	// connection that has been idle for more than a second.
	ValidateOnBorrow bool `yaml:"validate_on_borrow"`
	// DNSCacheTTL is how long a resolved endpoint name is reused: record (the DNS
	// answer's TTL), a duration (that long, whatever the TTL; 0s: never cached), or
	// forever.
	DNSCacheTTL string `yaml:"dns_cache_ttl"`
	// TCPUserTimeout is how long sent data may stay unacknowledged before the
	// socket gives up on the peer (0: the OS default, so a silently dropped peer
	// hangs until load.op_timeout).
	TCPUserTimeout Duration `yaml:"tcp_user_timeout"`
	// Failover is what the driver does when it loses the writer: none, or topology
	// (it reads the cluster topology and reconnects to the new writer's instance
	// directly, bypassing DNS, as the AWS Advanced JDBC Wrapper does).
	Failover string `yaml:"failover"`
	// Retry is the application's retry policy.
	Retry Retry `yaml:"retry"`
}

// Retry is an application's retry policy for a failed operation.
type Retry struct {
	// MaxAttempts is how many times an operation is tried in all (1: no retry).
	MaxAttempts int `yaml:"max_attempts"`
	// Backoff is the wait before the first retry, doubled per attempt, plus up to
	// 20% jitter.
	Backoff Duration `yaml:"backoff"`
	// MaxBackoff caps the wait between attempts.
	MaxBackoff Duration `yaml:"max_backoff"`
	// On lists the error classes that are retried (see RetryClasses).
	On []string `yaml:"on"`
}

// DNS cache policies besides a duration.
const (
	DNSCacheRecord  = "record"
	DNSCacheForever = "forever"
)

// Failover behaviours of a client.
const (
	FailoverNone     = "none"
	FailoverTopology = "topology"
)

// RetryClasses are the error classes a retry policy can name: the classes results
// count errors by, and connection for both connection classes.
var RetryClasses = []string{"connection", "connection_refused", "connection_reset", "admin_shutdown", "read_only", "serialization", "deadlock", "timeout", "pool_exhausted", "other"}

// Presets are the named client behaviours, each the defaults of a client stack
// (README lists their sources). Treat it as read-only.
var Presets = map[string]Client{
	// naive is rehearse's behaviour before client settings existed: one pool per
	// endpoint, no validation, no retries.
	"naive": {
		AppInstances: 1, PoolSize: 32, ConnectTimeout: Duration(5 * time.Second), MaxLifetime: Duration(30 * time.Second),
		DNSCacheTTL: DNSCacheRecord, Failover: FailoverNone,
		Retry: Retry{MaxAttempts: 1, Backoff: Duration(100 * time.Millisecond), MaxBackoff: Duration(2 * time.Second), On: []string{"connection", "admin_shutdown", "read_only"}},
	},
	// pgx is pgxpool's defaults: 4 connections, an hour's lifetime, a ping before
	// reusing a connection idle for over a second, no connect timeout, Go's resolver
	// (which does not cache), no retries.
	"pgx": {
		AppInstances: 1, PoolSize: 4, ConnectTimeout: 0, MaxLifetime: Duration(time.Hour), ValidateOnBorrow: true,
		DNSCacheTTL: "0s", Failover: FailoverNone,
		Retry: Retry{MaxAttempts: 1, Backoff: Duration(100 * time.Millisecond), MaxBackoff: Duration(2 * time.Second), On: []string{"connection", "admin_shutdown", "read_only"}},
	},
	// hikari is HikariCP's defaults (maximumPoolSize 10, connectionTimeout 30s,
	// maxLifetime 30min, isValid on borrow) with the JVM's default DNS cache of 30s.
	"hikari": {
		AppInstances: 1, PoolSize: 10, ConnectTimeout: Duration(30 * time.Second), MaxLifetime: Duration(30 * time.Minute), ValidateOnBorrow: true,
		DNSCacheTTL: "30s", Failover: FailoverNone,
		Retry: Retry{MaxAttempts: 1, Backoff: Duration(100 * time.Millisecond), MaxBackoff: Duration(2 * time.Second), On: []string{"connection", "admin_shutdown", "read_only"}},
	},
	// jdbc-dns-forever is hikari on a JVM that caches DNS answers forever
	// (networkaddress.cache.ttl=-1).
	"jdbc-dns-forever": {
		AppInstances: 1, PoolSize: 10, ConnectTimeout: Duration(30 * time.Second), MaxLifetime: Duration(30 * time.Minute), ValidateOnBorrow: true,
		DNSCacheTTL: DNSCacheForever, Failover: FailoverNone,
		Retry: Retry{MaxAttempts: 1, Backoff: Duration(100 * time.Millisecond), MaxBackoff: Duration(2 * time.Second), On: []string{"connection", "admin_shutdown", "read_only"}},
	},
	// aws-jdbc-wrapper is hikari with the AWS Advanced JDBC Wrapper's failover: on
	// a lost writer connection it reads the topology and reconnects to the new
	// writer's instance directly; the application retries the transaction the
	// wrapper reports as failed over (SQLSTATE 08S02), once.
	"aws-jdbc-wrapper": {
		AppInstances: 1, PoolSize: 10, ConnectTimeout: Duration(30 * time.Second), MaxLifetime: Duration(30 * time.Minute), ValidateOnBorrow: true,
		DNSCacheTTL: "30s", Failover: FailoverTopology,
		Retry: Retry{MaxAttempts: 2, Backoff: Duration(100 * time.Millisecond), MaxBackoff: Duration(2 * time.Second), On: []string{"connection", "admin_shutdown"}},
	},
}

// DefaultPreset is the preset a scenario without one uses.
const DefaultPreset = "naive"

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	out := make([]string, 0, len(Presets))
	for n := range Presets {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// clientFields are the client fields a preset sets, by YAML path, with how to copy
// each from a preset.
var clientFields = []struct {
	path string
	set  func(dst *Client, p Client)
}{
	{"client.app_instances", func(d *Client, p Client) { d.AppInstances = p.AppInstances }},
	{"client.pool_size", func(d *Client, p Client) { d.PoolSize = p.PoolSize }},
	{"client.connect_timeout", func(d *Client, p Client) { d.ConnectTimeout = p.ConnectTimeout }},
	{"client.max_lifetime", func(d *Client, p Client) { d.MaxLifetime = p.MaxLifetime }},
	{"client.validate_on_borrow", func(d *Client, p Client) { d.ValidateOnBorrow = p.ValidateOnBorrow }},
	{"client.dns_cache_ttl", func(d *Client, p Client) { d.DNSCacheTTL = p.DNSCacheTTL }},
	{"client.tcp_user_timeout", func(d *Client, p Client) { d.TCPUserTimeout = p.TCPUserTimeout }},
	{"client.failover", func(d *Client, p Client) { d.Failover = p.Failover }},
	{"client.retry.max_attempts", func(d *Client, p Client) { d.Retry.MaxAttempts = p.Retry.MaxAttempts }},
	{"client.retry.backoff", func(d *Client, p Client) { d.Retry.Backoff = p.Retry.Backoff }},
	{"client.retry.max_backoff", func(d *Client, p Client) { d.Retry.MaxBackoff = p.Retry.MaxBackoff }},
	{"client.retry.on", func(d *Client, p Client) { d.Retry.On = slices.Clone(p.Retry.On) }},
}

// ApplyPreset sets every client field that given reports as not written by the user
// to the preset's value (for an unknown preset, the default preset's: Validate
// reports the name), then applies the load.pool_size and load.conn_max_lifetime
// aliases and keeps them in step with the client's values. Parse calls it with the
// file's fields; a program that builds a Scenario can call it after changing
// Client.Preset.
func (s *Scenario) ApplyPreset(given func(path string) bool) {
	c := &s.Client
	if c.Preset == "" {
		c.Preset = DefaultPreset
	}
	p, ok := Presets[c.Preset]
	if !ok {
		// Validate reports the unknown preset; the default's values keep the
		// fields it would have set from being reported as a consequence.
		p = Presets[DefaultPreset]
	}
	for _, f := range clientFields {
		if !given(f.path) {
			f.set(c, p)
		}
	}
	if !given("client.pool_size") && given("load.pool_size") {
		c.PoolSize = s.Load.PoolSize
	}
	if !given("client.max_lifetime") && given("load.conn_max_lifetime") {
		c.MaxLifetime = s.Load.ConnMaxLifetime
	}
	s.Load.PoolSize = c.PoolSize
	s.Load.ConnMaxLifetime = c.MaxLifetime
}

// ParseDNSCacheTTL reads a dns_cache_ttl: record, forever or a duration. It returns
// the duration (0 for record and forever) and which policy it is.
func ParseDNSCacheTTL(s string) (d time.Duration, policy string, err error) {
	switch s {
	case DNSCacheRecord, DNSCacheForever:
		return 0, s, nil
	}
	v, err := ParseDuration(s)
	if err != nil || v < 0 {
		return 0, "", fmt.Errorf("dns_cache_ttl %q: use record (the DNS TTL), forever, or a duration such as 30s (0s: never cached)", s)
	}
	return v.D(), "duration", nil
}

func (s *Scenario) validateClient(c *checker) {
	cl := &s.Client
	if _, ok := Presets[cl.Preset]; !ok {
		c.add("client.preset", "unknown preset %q; use one of: %s", cl.Preset, strings.Join(PresetNames(), ", "))
	}
	c.positiveInt("client.app_instances", int64(cl.AppInstances))
	// pool_size and max_lifetime are checked once, as load.pool_size and
	// load.conn_max_lifetime, which ApplyPreset keeps equal to them.
	if cl.PoolSize != s.Load.PoolSize {
		c.add("client.pool_size", "is %d but its alias load.pool_size is %d; set one of them", cl.PoolSize, s.Load.PoolSize)
	}
	if cl.MaxLifetime != s.Load.ConnMaxLifetime {
		c.add("client.max_lifetime", "is %s but its alias load.conn_max_lifetime is %s; set one of them", formatDuration(cl.MaxLifetime), formatDuration(s.Load.ConnMaxLifetime))
	}
	c.nonNegativeDuration("client.connect_timeout", cl.ConnectTimeout)
	c.nonNegativeDuration("client.tcp_user_timeout", cl.TCPUserTimeout)
	if _, _, err := ParseDNSCacheTTL(cl.DNSCacheTTL); err != nil {
		c.add("client.dns_cache_ttl", "%v", err)
	}
	c.oneOf("client.failover", cl.Failover, []string{FailoverNone, FailoverTopology})
	r := &cl.Retry
	if r.MaxAttempts < 1 {
		c.add("client.retry.max_attempts", "must be at least 1 (1: no retry), e.g. 3 (got %d)", r.MaxAttempts)
	}
	c.nonNegativeDuration("client.retry.backoff", r.Backoff)
	if r.MaxBackoff < r.Backoff {
		c.add("client.retry.max_backoff", "must be at least client.retry.backoff (%s) (got %s)", formatDuration(r.Backoff), formatDuration(r.MaxBackoff))
	}
	for i, cls := range r.On {
		if !slices.Contains(RetryClasses, cls) {
			c.add(fmt.Sprintf("client.retry.on[%d]", i), "unknown error class %q; the classes are: %s", cls, strings.Join(RetryClasses, ", "))
		}
	}
}
