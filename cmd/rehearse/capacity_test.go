package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/result"
)

func TestCapacityUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no scenario", []string{"capacity"}, "expected one scenario file"},
		{"bad step", []string{"capacity", "../../scenarios/smoke.yaml", "--step", "x0.5"}, "a factor must be a number above 1"},
		{"bad hold", []string{"capacity", "../../scenarios/smoke.yaml", "--hold", "soon"}, "--hold"},
		{"negative from", []string{"capacity", "../../scenarios/smoke.yaml", "--from", "-1"}, "--from -1: must be a positive rate"},
		{"to below from", []string{"capacity", "../../scenarios/smoke.yaml", "--from", "500", "--to", "100"}, "--to 100: must be at least --from 500"},
		{"hold too short for the warm-up", []string{"capacity", "../../scenarios/smoke.yaml", "--hold", "3s", "--warmup", "2s"}, "leave at least 2s"},
		{"unknown flag", []string{"capacity", "../../scenarios/smoke.yaml", "--rate", "5"}, "unknown flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "--out", filepath.Join(t.TempDir(), "x"))
			r := cli(t, t.Context(), args...)
			if r.code != exitInput || !strings.Contains(r.err, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 mentioning %q", r.code, r.err, tc.want)
			}
		})
	}
}

func TestCapacityHelpHasExamples(t *testing.T) {
	r := cli(t, t.Context(), "capacity", "--help")
	for _, want := range []string{"rehearse capacity scenarios/smoke.yaml", "--with-cutover", "--peak", "Exit codes"} {
		if r.code != 0 || !strings.Contains(r.out, want) {
			t.Errorf("help lacks %q (exit %d)", want, r.code)
		}
	}
}

// A short climb against the shared server, with a peak no database reaches: the
// report is written and the exit code is 3.
func TestCapacityBelowPeakExits3(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	out := filepath.Join(t.TempDir(), "cap")
	r := cli(t, t.Context(), "capacity", "../../scenarios/smoke.yaml", "--dsn", sharedDSN(t),
		"--from", "50", "--to", "100", "--step", "50", "--hold", "3s", "--warmup", "1s", "--peak", "1000000", "--out", out)
	if r.code != exitSLO {
		t.Fatalf("exit %d, want 3\nstdout: %s\nstderr: %s", r.code, r.out, r.err)
	}
	if !strings.Contains(r.out, "FAIL: at least 100/s") || !strings.Contains(r.out, "< peak 1,000,000/s") || !strings.Contains(r.out, "the limit was not found") {
		t.Errorf("summary does not state the verdict: %s", r.out)
	}
	if !strings.Contains(r.err, "step 2/2") {
		t.Errorf("no per-step progress on stderr: %s", r.err)
	}
	res, err := result.ReadCapacityFile(filepath.Join(out, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if k := res.Capacity; len(k.Steps) != 2 || k.PeakRate != 1e6 || k.Passed || k.LimitFound || res.Target.Kind != "dsn" {
		t.Errorf("unexpected capacity result: %+v", k)
	}
	for _, f := range []string{"report.md", "report.html"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	// report render re-renders a capacity result; report compare refuses it, naming it.
	rr := cli(t, t.Context(), "report", "render", filepath.Join(out, "result.json"), "--format", "md")
	if rr.code != 0 || !strings.Contains(rr.out, "Capacity report") {
		t.Errorf("report render of a capacity result: exit %d, %s%s", rr.code, rr.out, rr.err)
	}
	rc := cli(t, t.Context(), "report", "compare", filepath.Join(out, "result.json"), filepath.Join(out, "result.json"))
	if rc.code != exitInput || !strings.Contains(rc.err, result.SchemaCapacityV1) {
		t.Errorf("report compare of capacity results: exit %d, %s", rc.code, rc.err)
	}
}
