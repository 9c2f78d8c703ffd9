package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/migrate/endpoint"
	"github.com/rehearse-dev/rehearse/migrate/local"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the errors, in order
	}{
		{"zero value is valid", Config{}, nil},
		{"bad run id", Config{RunID: "a b"}, []string{"RunID"}},
		{"proxy needs a dir", Config{Endpoint: endpoint.Config{Mode: endpoint.ModeProxy}}, []string{"Endpoint.Dir"}},
		{"unknown endpoint mode", Config{Endpoint: endpoint.Config{Mode: "dns2"}}, []string{"Endpoint.Mode"}},
		{"custom endpoints need no mode", Config{Endpoint: endpoint.Config{Mode: "x"},
			NewEndpoints: func(context.Context, string) (Endpoints, error) { return nil, nil }}, nil},
		{"managed and bad settings", Config{ExtraConf: map[string]string{"cluster_name": "x"}, MaxConnections: -1},
			[]string{"MaxConnections", "cluster_name"}},
		{"line break in a value", Config{ExtraConf: map[string]string{"work_mem": "1\n2"}}, []string{"line break"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.cfg.Validate()
			if len(errs) != len(tt.want) {
				t.Fatalf("Validate() = %v, want %d error(s)", errs, len(tt.want))
			}
			for i, err := range errs {
				if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want[i]) {
					t.Errorf("error %d = %v, want ErrInvalidConfig mentioning %q", i, err, tt.want[i])
				}
			}
		})
	}
}

func TestServerArgs(t *testing.T) {
	cfg := Config{ExtraConf: map[string]string{"work_mem": "8MB", "fsync": "on"}}.withDefaults()
	args := cfg.serverArgs("node3")
	if args[0] != "postgres" {
		t.Fatalf("args[0] = %q, want postgres", args[0])
	}
	for _, want := range []string{"cluster_name=node3", "listen_addresses=*", "fsync=off", "work_mem=8MB", "wal_log_hints=on"} {
		if !slices.Contains(args, want) {
			t.Errorf("server args %v lack %q", args, want)
		}
	}
	// ExtraConf comes after the provider's settings, so it wins.
	if slices.Index(args, "fsync=on") < slices.Index(args, "fsync=off") {
		t.Errorf("ExtraConf fsync=on does not come after the default: %v", args)
	}
}

func TestEnvAuth(t *testing.T) {
	if e := (Config{}).env(); e["POSTGRES_HOST_AUTH_METHOD"] != "" || e["POSTGRES_PASSWORD"] != "" {
		t.Errorf("no credentials: env %v, want no password and nothing trusted", e)
	}
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	creds, err := local.NewCredentials(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer creds.Remove()
	e := (Config{Credentials: creds}).env()
	if e["POSTGRES_PASSWORD"] != creds.Verifier() || e["REHEARSE_PASSWORD"] != creds.Password() || e["POSTGRES_HOST_AUTH_METHOD"] != "" {
		t.Errorf("credentials: env %v; want the verifier for initdb and the password for the entrypoint's file", e)
	}
	c := &Cluster{cfg: Config{Credentials: creds}}
	if got, want := c.DSN("127.0.0.1:5", "db"), creds.DSN("127.0.0.1:5", "db"); got != want || strings.Contains(got, creds.Password()) {
		t.Errorf("DSN = %q, want %q (the file, not the password)", got, want)
	}
}
