package scenarios_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// FuzzParse feeds the scenario decoder arbitrary files: it returns a scenario that
// validates, or an error matching ErrInvalid, and never panics or hangs.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"smoke.yaml", "banking.yaml", "tpcb.yaml", "aurora.yaml", "custom/orders.yaml"} {
		if b, err := os.ReadFile(filepath.Join("..", "scenarios", name)); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{scenarios.StarterYAML, scenarios.StarterScriptYAML, scenarios.StarterReplayYAML} {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile("testdata/bad.yaml"); err == nil {
		f.Add(b)
	}
	for _, s := range []string{"", "{", "- a", "load: [1, 2]", "load:\n  duration: 1e400s\n", "a: &a [*a]\n", "load: {sessions: 99999999999999999999}\n",
		"client:\n  dns_cache_ttl: -1s\n", "workload:\n  scripts: [{file: ../../etc/passwd}]\n", "slo:\n  database: [{metric: x}]\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := scenarios.Parse("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, scenarios.ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		if errs := s.Validate(); len(errs) > 0 {
			t.Fatalf("Parse accepted a scenario that does not validate: %v", errs)
		}
		_ = s.Clone()
	})
}

// FuzzParseDuration: a duration parses, or is an error; never a panic.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30s", "1m30s", "250ms", "5", "-1s", "1e9h", "", " 2s ", "∞", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := scenarios.ParseDuration(s)
		if err == nil && d.String() == "" {
			t.Fatalf("%q parsed to an empty duration", s)
		}
	})
}
