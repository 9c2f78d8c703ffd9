package scenarios_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/rehearse-dev/rehearse/scenarios"
)

// FuzzParse feeds the scenario decoder arbitrary files: it returns a scenario that
// validates, or an error matching ErrInvalid, and never panics or hangs. The seeds
// are the example scenarios and the starters without their comment lines: the
// fuzzer minimizes every input that reaches new code, and the 15 KB starter, mostly
// comments, took it the whole of a one-minute run. TestShippedScenarios and
// TestStarterYAML parse the files whole.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"smoke.yaml", "banking.yaml", "tpcb.yaml", "aurora.yaml", "faults.yaml", "custom/orders.yaml"} {
		if b, err := os.ReadFile(filepath.Join("..", "scenarios", name)); err == nil {
			f.Add(withoutComments(b))
		}
	}
	for _, s := range []string{scenarios.StarterYAML, scenarios.StarterScriptYAML, scenarios.StarterReplayYAML} {
		f.Add(withoutComments([]byte(s)))
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

// withoutComments drops b's comment lines (and blank ones).
func withoutComments(b []byte) []byte {
	var out []byte
	for line := range bytes.Lines(b) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
		}
	}
	return out
}
