package endpoint

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rehearse-dev/rehearse/migrate/dnsserver"
)

func TestReaderTargets(t *testing.T) {
	tests := []struct {
		name       string
		readers    []string
		forwarding bool
		want       []string
	}{
		{"readers", []string{"r1:1", "r2:2"}, false, []string{"r1:1", "r2:2"}},
		{"no readers: the writer", nil, false, []string{"w:1"}},
		{"forwarding: the writer", []string{"r1:1"}, true, []string{"w:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := readerTargets("w:1", tt.readers, tt.forwarding); !slices.Equal(got, tt.want) {
				t.Errorf("readerTargets = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		errs int
	}{
		{"dns ok", Config{Writer: "127.0.0.1:5432", DNS: &dnsserver.Server{}}, 0},
		{"dns without a server", Config{Writer: "127.0.0.1:5432"}, 1},
		{"forward ok", Config{Mode: ModeForward, Writer: "127.0.0.1:5432"}, 0},
		{"proxy ok", Config{Mode: ModeProxy, Writer: "127.0.0.1:5432", Readers: []string{"127.0.0.1:5433"}, Dir: "/tmp/x", Credentials: testCreds}, 0},
		{"everything wrong", Config{Mode: "carrier-pigeon", Readers: []string{"nope"}, PoolSize: -1, MaxClientConn: -1}, 5},
		{"proxy without dir", Config{Mode: ModeProxy, Writer: "127.0.0.1:5432", Credentials: testCreds}, 1},
		{"proxy without credentials", Config{Mode: ModeProxy, Writer: "127.0.0.1:5432", Dir: "/tmp/x"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.cfg.Validate()
			if len(errs) != tt.errs {
				t.Fatalf("Validate() = %v, want %d errors", errs, tt.errs)
			}
			for _, err := range errs {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("%v does not match ErrInvalidConfig", err)
				}
			}
		})
	}
}

func TestExecMode(t *testing.T) {
	if got := ExecMode(ModeProxy); got != pgx.QueryExecModeExec {
		t.Errorf("proxy: %v", got)
	}
	if got := ExecMode(ModeDNS); got != pgx.QueryExecModeCacheStatement {
		t.Errorf("dns: %v", got)
	}
}

// Stale, deprecated, sets the propagation delay when Propagation is not set.
func TestConfigPropagation(t *testing.T) {
	tests := []struct {
		cfg  Config
		want time.Duration
	}{
		{Config{}, DefaultPropagation},
		{Config{Stale: time.Second}, time.Second},
		{Config{Stale: time.Second, Propagation: 3 * time.Second}, 3 * time.Second},
		{Config{Propagation: -1}, 0},
		{Config{Stale: -1}, 0},
	}
	for _, tt := range tests {
		if got := tt.cfg.withDefaults().Propagation; got != tt.want {
			t.Errorf("%+v: propagation %v, want %v", tt.cfg, got, tt.want)
		}
	}
}
