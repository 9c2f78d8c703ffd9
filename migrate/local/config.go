package local

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults for zero Config fields, and the names InitPrimary creates.
const (
	// DefaultName is the node name used when Config.Name is empty.
	DefaultName = "node1"
	// DefaultHost is the address a node listens on when Config.Host is empty.
	DefaultHost = "127.0.0.1"
	// DefaultMaxConnections is used when Config.MaxConnections is 0.
	DefaultMaxConnections = 100
	// DefaultSharedBuffers is used when Config.SharedBuffers is empty.
	DefaultSharedBuffers = "128MB"
	// DefaultPollInterval is used when Config.PollInterval is 0.
	DefaultPollInterval = 50 * time.Millisecond
	// Database is the database InitPrimary creates for workloads.
	Database = "rehearse"
	// Superuser is the bootstrap superuser initdb creates; DSNs connect as it.
	Superuser = "postgres"
)

// Config describes one node.
type Config struct {
	// Dir is the work directory; the node's data directory (Dir/Name) and its server
	// log (Dir/Name.log) live under it. Required. When the process runs as root and
	// the postgres OS user cannot reach Dir, a directory under os.TempDir() is used
	// instead (and reported on Log).
	Dir string
	// Name is the node name, e.g. "node1" (the default); letters, digits, '_', '-', '.'.
	Name string
	// Host is the loopback IPv4 address the node listens on; empty means 127.0.0.1.
	// A cluster gives each node an address of its own (see Loopback), so its nodes
	// can share one port, as Aurora instances share 5432.
	Host string
	// Port is the TCP port on Host; 0 picks a free one.
	Port int
	// Fsync turns on fsync (and initdb's sync). Off, the zero value, is much faster
	// and only loses data on an OS crash, which a local rehearsal does not simulate.
	Fsync bool
	// MaxConnections is max_connections; 0 means DefaultMaxConnections.
	MaxConnections int
	// SharedBuffers is shared_buffers, e.g. "256MB"; empty means DefaultSharedBuffers.
	SharedBuffers string
	// Log receives progress lines ("initdb node1 ..."); nil discards them.
	Log io.Writer
	// Bin are the server programs (see FindBinaries). Required.
	Bin Binaries
	// ExtraConf is appended to postgresql.conf after the node's own settings, so it
	// wins over them. Keys the node depends on (port, listen_addresses,
	// unix_socket_directories, logging_collector) are rejected.
	ExtraConf map[string]string
	// PollInterval paces WaitReady's connection attempts; 0 means DefaultPollInterval.
	PollInterval time.Duration
	// Credentials admit clients to the node (scram-sha-256, see Credentials); nil
	// makes InitPrimary generate them in the work directory (removed with the node)
	// and InitReplica use its primary's. A cluster's nodes share one set.
	Credentials *Credentials

	// pickPort overrides the free-port picker (tests).
	pickPort func() (int, error)
}

// managedKeys are settings the node's own behaviour relies on.
var managedKeys = []string{"port", "listen_addresses", "unix_socket_directories", "logging_collector"}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	keyRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)
)

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.SharedBuffers == "" {
		c.SharedBuffers = DefaultSharedBuffers
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	return c
}

// Validate returns every problem with c (after defaults), each wrapping ErrInvalidConfig.
func (c Config) Validate() []error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Dir == "" {
		bad("Dir is empty; set a work directory")
	}
	if !nameRE.MatchString(c.Name) || c.Name == "." || c.Name == ".." {
		bad("Name %q: use letters, digits, '_', '-' and '.' only", c.Name)
	}
	if ip, err := netip.ParseAddr(c.Host); err != nil || !ip.Is4() || !ip.IsLoopback() {
		bad("Host %q: want a loopback IPv4 address (127.0.0.0/8)", c.Host)
	}
	if c.Port < 0 || c.Port > 65535 {
		bad("Port %d: want 0 (pick a free one) or 1-65535", c.Port)
	}
	if c.MaxConnections < 1 {
		bad("MaxConnections %d: want at least 1", c.MaxConnections)
	}
	if c.Bin.Dir == "" {
		bad("Bin.Dir is empty; use FindBinaries")
	}
	for _, k := range sortedKeys(c.ExtraConf) {
		switch {
		case !keyRE.MatchString(k):
			bad("ExtraConf key %q is not a setting name", k)
		case slices.Contains(managedKeys, strings.ToLower(k)):
			bad("ExtraConf key %q is managed by the node and cannot be overridden", k)
		case strings.ContainsAny(c.ExtraConf[k], "\n\r\x00"):
			bad("ExtraConf %s: value contains a line break or NUL", k)
		}
	}
	return errs
}

// confBegin and confEnd delimit the block the node owns in postgresql.conf, so it can
// be rewritten in place (a new port, or a replica's copy of its primary's file).
const (
	confBegin = "# BEGIN rehearse-managed settings: rewritten by rehearse, edits are lost"
	confEnd   = "# END rehearse-managed settings"
)

// setting is one postgresql.conf line.
type setting struct{ key, value string }

// settings returns the node's postgresql.conf settings in file order.
func (c Config) settings(port int) []setting {
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	s := []setting{
		{"listen_addresses", c.Host},
		{"port", strconv.Itoa(port)},
		{"unix_socket_directories", ""},
		{"max_connections", strconv.Itoa(c.MaxConnections)},
		{"shared_buffers", c.SharedBuffers},
		{"fsync", onOff(c.Fsync)},
		{"wal_level", "replica"},
		{"max_wal_senders", "10"},
		{"max_replication_slots", "10"},
		{"wal_log_hints", "on"},
		{"hot_standby", "on"},
		{"logging_collector", "off"},
	}
	for _, k := range sortedKeys(c.ExtraConf) {
		s = append(s, setting{k, c.ExtraConf[k]})
	}
	return s
}

// renderConf renders the managed postgresql.conf block. Every value is quoted, which
// PostgreSQL accepts for settings of any type.
func renderConf(s []setting) string {
	var b strings.Builder
	b.WriteString(confBegin + "\n")
	for _, kv := range s {
		fmt.Fprintf(&b, "%s = '%s'\n", kv.key, strings.ReplaceAll(kv.value, "'", "''"))
	}
	b.WriteString(confEnd + "\n")
	return b.String()
}

// replaceManagedBlock returns conf with its managed block replaced by block (or block
// appended when there is none).
func replaceManagedBlock(conf, block string) (string, error) {
	i := strings.Index(conf, confBegin)
	if i < 0 {
		if conf != "" && !strings.HasSuffix(conf, "\n") {
			conf += "\n"
		}
		return conf + "\n" + block, nil
	}
	j := strings.Index(conf[i:], confEnd)
	if j < 0 {
		return "", errors.New("local: postgresql.conf has the start of a rehearse-managed block but not its end")
	}
	end := i + j + len(confEnd)
	if end < len(conf) && conf[end] == '\n' {
		end++
	}
	return conf[:i] + block + conf[end:], nil
}

// hbaConf is the whole pg_hba.conf: loopback TCP only, with the run's password
// (scram-sha-256), for every database and for replication; nothing else is
// admitted, and there are no Unix sockets (unix_socket_directories = ”). Clients
// may come from any loopback address: the nodes of a cluster listen on addresses of
// their own in 127.0.0.0/8, and replicate from each other's. Other users of the
// machine reach those addresses too, which is why nothing is trusted.
const hbaConf = `# Written by rehearse: loopback TCP only, the run's password (scram-sha-256).
# TYPE  DATABASE     USER  ADDRESS       METHOD
host    all          all   127.0.0.0/8   scram-sha-256
host    replication  all   127.0.0.0/8   scram-sha-256
`

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
