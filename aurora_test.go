package rehearse_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse"
	"github.com/rehearse-dev/rehearse/migrate/aurora"
	"github.com/rehearse-dev/rehearse/migrate/aurora/emulator"
	"github.com/rehearse-dev/rehearse/migrate/local"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// startEmulator runs the RDS API emulator in-process over a real local cluster.
func startEmulator(t *testing.T) (*emulator.Server, string) {
	t.Helper()
	bin, err := local.FindBinaries(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	b, err := emulator.StartLocal(t.Context(), emulator.LocalConfig{
		Node:  local.Config{Dir: dir, Bin: bin, MaxConnections: 100, SharedBuffers: "32MB"},
		Stale: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(context.Background()); err != nil {
			t.Errorf("stopping the emulator's cluster: %v", err)
		}
	})
	srv := emulator.New(b, emulator.Options{})
	t.Cleanup(srv.Close)
	if err := srv.SyncFunctions(t.Context()); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	// As the aurora-emulator command does: a run pointed at the URL finds the
	// databases' password file.
	unpublish, err := emulator.PublishCredentials(hs.URL, b.Credentials().File())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unpublish)
	return srv, hs.URL
}

func auroraScenario(t *testing.T) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.LoadFile("scenarios/aurora.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Load.Duration = scenarios.Duration(8 * time.Second)
	sc.Cutover.Warmup = scenarios.Duration(2 * time.Second)
	return sc
}

// A dry run against Aurora calls only Describe* operations, and runs the load
// through the cluster endpoints the API reports.
func TestAuroraDryRunOnlyDescribes(t *testing.T) {
	srv, url := startEmulator(t)
	res, err := rehearse.Run(t.Context(), auroraScenario(t), rehearse.WithTarget("aurora"), rehearse.WithMode("dry"),
		rehearse.WithAWSEndpointURL(url), rehearse.WithOut(filepath.Join(t.TempDir(), "o")))
	if err != nil {
		t.Fatal(err)
	}
	actions := srv.Actions()
	if len(actions) == 0 {
		t.Fatal("no API call was made")
	}
	for _, a := range actions {
		// Describe* read the control plane; GetMetricData reads CloudWatch (the run's
		// database series).
		if !strings.HasPrefix(a, "Describe") && a != "GetMetricData" {
			t.Errorf("a dry run called %s", a)
		}
	}
	if res.Migration == nil || res.Migration.Outcome != "dry" || res.Migration.WriterAfter != res.Migration.WriterBefore {
		t.Errorf("migration = %+v", res.Migration)
	}
	if res.Totals.Succeeded == 0 || !res.Integrity.Checked || res.Integrity.LostAcknowledgedWrites != 0 {
		t.Errorf("totals %+v integrity %+v", res.Totals, res.Integrity)
	}
	if res.Target.Kind != "aurora" {
		t.Errorf("target kind %q", res.Target.Kind)
	}
}

// A wet run refuses to start without --confirm naming the target cluster, and
// changes nothing.
func TestAuroraWetNeedsConfirm(t *testing.T) {
	srv, url := startEmulator(t)
	for _, confirm := range []string{"", "some-other-cluster"} {
		_, err := rehearse.Run(context.Background(), auroraScenario(t), rehearse.WithTarget("aurora"), rehearse.WithMode("wet"),
			rehearse.WithConfirm(confirm), rehearse.WithAWSEndpointURL(url), rehearse.WithOut(filepath.Join(t.TempDir(), "o")))
		if !errors.Is(err, rehearse.ErrInvalidInput) || !strings.Contains(err.Error(), "confirm") {
			t.Errorf("--confirm %q: err = %v, want an invalid-input error about --confirm", confirm, err)
		}
	}
	if n := len(srv.Actions()); n != 0 {
		t.Errorf("a refused run made %d API calls: %v", n, srv.Actions())
	}
	if !errors.Is(aurora.CheckConfirm("a", "b", true, ""), aurora.ErrConfirm) {
		t.Error("CheckConfirm does not wrap ErrConfirm")
	}
}
