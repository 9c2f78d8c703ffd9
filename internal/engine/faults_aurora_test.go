package engine

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rehearse-dev/rehearse/migrate/aurora"
	"github.com/rehearse-dev/rehearse/migrate/aurora/emulator"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// auroraEmulator is an RDS API emulator over an in-memory cluster, and a provider
// reaching it through the unmodified SDK.
func auroraEmulator(t *testing.T) (*aurora.Provider, *emulator.Server) {
	t.Helper()
	s := emulator.New(emulator.NewMemoryBackend(), emulator.Options{})
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	p, err := aurora.New(t.Context(), aurora.Config{ClusterID: emulator.DefaultClusterID, EndpointURL: hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	return p, s
}

// A fault naming an instance the Aurora cluster does not have is refused before
// the load starts (invalid input); one naming a member, or a role, is not.
func TestCheckAuroraFaults(t *testing.T) {
	p, _ := auroraEmulator(t)
	tests := []struct {
		node, want string
	}{
		{"writer", ""},
		{"replica", ""},
		{emulator.DefaultClusterID + "-instance-1", ""},
		{"nope", `faults[0].node: no instance "nope" in cluster rehearse-demo; use writer, reader, replica or one of: rehearse-demo-instance-1`},
	}
	for _, tt := range tests {
		t.Run(tt.node, func(t *testing.T) {
			sc, err := scenarios.Parse("a.yaml", []byte("target:\n  kind: aurora\n  dsn: postgres://u@rehearse-demo.cluster-x.us-east-1.rds.amazonaws.com/db\ncutover:\n  enabled: true\nfaults:\n  - {at: 10s, kind: crash, node: "+tt.node+"}\n"))
			if err != nil {
				t.Fatal(err)
			}
			err = checkAuroraFaults(t.Context(), sc, p)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (!errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want invalid input saying %q", err, tt.want)
			}
		})
	}
}

// A crash of the only instance reboots it through the RDS API (there is no reader
// to fail over to), and Restart returns once it is available again.
func TestAuroraCrashReboots(t *testing.T) {
	p, s := auroraEmulator(t)
	h := newAuroraHost(p)
	writer := emulator.DefaultClusterID + "-instance-1"
	detail, err := h.Crash(t.Context(), writer, true)
	if err != nil {
		t.Fatal(err)
	}
	if detail["api"] != "RebootDBInstance" || detail["request_id"] == nil {
		t.Errorf("detail %v", detail)
	}
	if err := h.Restart(t.Context(), writer, true); err != nil {
		t.Fatal(err)
	}
	var rebooted bool
	for _, c := range s.Calls() {
		rebooted = rebooted || c.Action == "RebootDBInstance" && c.Status == 200
	}
	if !rebooted {
		t.Errorf("calls %+v: want a RebootDBInstance", s.Calls())
	}
	if _, _, err := h.Freeze(t.Context(), writer); err == nil {
		t.Error("the aurora target froze an instance")
	}
}
