package local

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/internal/testutil"
)

// golden compares got with testdata/name (go test -update rewrites it).
func golden(t *testing.T, name, got string) {
	t.Helper()
	testutil.Golden(t, filepath.Join("testdata", name), []byte(got))
}

func TestRenderConf(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		port int
	}{
		{name: "defaults", cfg: Config{}, port: 54321},
		{name: "tuned", cfg: Config{Fsync: true, MaxConnections: 500, SharedBuffers: "1GB"}, port: 5433},
		{name: "extra", cfg: Config{ExtraConf: map[string]string{
			"wal_keep_size":              "1GB",
			"application_name":           "it's quoted",
			"log_min_duration_statement": "0",
		}}, port: 6000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden(t, "postgresql."+tt.name+".conf", renderConf(tt.cfg.withDefaults().settings(tt.port)))
		})
	}
}

func TestHBAConf(t *testing.T) {
	golden(t, "pg_hba.conf", hbaConf)
}

func TestReplaceManagedBlock(t *testing.T) {
	block := renderConf([]setting{{"port", "1"}})
	newBlock := renderConf([]setting{{"port", "2"}})
	tests := []struct {
		name, conf, block, want string
		wantErr                 bool
	}{
		{name: "append", conf: "max_connections = 100\n", block: block,
			want: "max_connections = 100\n\n" + block},
		{name: "append without trailing newline", conf: "a = 1", block: block,
			want: "a = 1\n\n" + block},
		{name: "replace", conf: "a = 1\n\n" + block + "b = 2\n", block: newBlock,
			want: "a = 1\n\n" + newBlock + "b = 2\n"},
		{name: "replace at end", conf: "a = 1\n\n" + block, block: newBlock,
			want: "a = 1\n\n" + newBlock},
		{name: "unterminated", conf: confBegin + "\nport = 1\n", block: block, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := replaceManagedBlock(tt.conf, tt.block)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Dir: "/x", Bin: Binaries{Dir: "/bin"}}
	tests := []struct {
		name  string
		edit  func(*Config)
		wants []string // substrings, one per expected error
	}{
		{name: "ok", edit: func(*Config) {}},
		{name: "empty", edit: func(c *Config) { *c = Config{} }, wants: []string{"Dir is empty", "Bin.Dir is empty"}},
		{name: "bad name", edit: func(c *Config) { c.Name = "../x" }, wants: []string{`Name "../x"`}},
		{name: "bad port", edit: func(c *Config) { c.Port = 70000 }, wants: []string{"Port 70000"}},
		{name: "bad max connections", edit: func(c *Config) { c.MaxConnections = -1 }, wants: []string{"MaxConnections -1"}},
		{name: "managed and bad keys", edit: func(c *Config) {
			c.ExtraConf = map[string]string{"Port": "1", "bad key": "x", "ok": "a\nb"}
		}, wants: []string{`"Port" is managed`, `"bad key" is not a setting`, "ok: value contains a line break"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			errs := c.Validate()
			if len(errs) != len(tt.wants) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tt.wants))
			}
			for i, e := range errs {
				if !errors.Is(e, ErrInvalidConfig) || !strings.Contains(e.Error(), tt.wants[i]) {
					t.Errorf("error %d = %v, want ErrInvalidConfig mentioning %q", i, e, tt.wants[i])
				}
			}
		})
	}
}
