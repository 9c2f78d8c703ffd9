package engine

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/internal/faults"
	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/container"
	"github.com/rehearse-dev/rehearse/scenarios"
)

// containerImage resolves, once, the PostgreSQL image for container targets,
// building rehearse/postgres offline when it is absent (as migrate/container's
// tests do).
var containerImage = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if img, err := container.ResolveImage(ctx, ""); err == nil {
		return img, nil
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "images", "postgres", "build.sh")
	if out, err := exec.CommandContext(ctx, script, container.BuiltImage).CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", container.BuiltImage, err, out)
	}
	return container.ResolveImage(ctx, "")
})

// On the container target a freeze pauses the writer's container, a crash kills it
// and starts it again; interrupting the run during the freeze leaves the container
// running, not paused, and closing the target closes the fault proxies.
func TestFaultsContainer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts containers")
	}
	// Before anything reads testcontainers' configuration, which it keeps.
	t.Setenv(container.RyukEnv, "true")
	testutil.RequireDocker(t)
	img, err := containerImage()
	if err != nil {
		t.Fatal(err)
	}
	sc := faultScenario(t, strings.Replace(faultYAML, "kind: local", "kind: container", 1), "  - {at: 1s, kind: freeze, for: 20s}\n  - {at: 6s, kind: reset}\n")
	sc.Load.Duration = scenarios.Duration(40 * time.Second)
	log := &testutil.SyncBuffer{}
	reh, err := Open(t.Context(), sc, Config{Target: TargetConfig{Dir: t.TempDir(), Image: img, Log: log}, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer reh.Close(context.Background(), false)
	cl := reh.tgt.(*containerTarget).cl
	px := reh.tgt.(faultable).faultProxies()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan *StepOutcome, 1)
	go func() {
		out, err := reh.Step(ctx, StepSpec{Dir: stepDir(t)})
		if err != nil {
			t.Error(err)
		}
		done <- out
	}()
	testutil.Eventually(t, 30*time.Second, "the writer's container to be paused", func() bool {
		p, err := cl.Paused(t.Context(), "node1")
		return err == nil && p
	})
	cancel()
	out := <-done
	if out == nil {
		t.FailNow()
	}
	if p, err := cl.Paused(t.Context(), "node1"); err != nil || p {
		t.Errorf("after the interruption the container is paused: %v (%v)", p, err)
	}
	if fs := out.Result.Faults; len(fs) != 2 || fs[0].Kind != scenarios.FaultFreeze || fs[0].Status != faults.StatusOK || fs[0].Detail["docker"] != "pause" {
		t.Errorf("faults %+v", fs)
	}

	sc.Faults = faultScenario(t, faultYAML, "  - {at: 1s, kind: crash}\n").Faults
	sc.Load.Duration = scenarios.Duration(8 * time.Second)
	out, err = reh.Step(t.Context(), StepSpec{Dir: stepDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	res := out.Result
	if fs := res.Faults; len(fs) != 1 || fs[0].Status != faults.StatusOK || fs[0].Detail["recovered_by"] != "restart" || fs[0].Errors["connection_refused"] == 0 {
		t.Errorf("crash %+v", fs)
	}
	if last := res.Timeline[len(res.Timeline)-1]; last.Errors > 0 || last.Ops == 0 {
		t.Errorf("the run's last second %+v: the writer must serve again", last)
	}
	if !res.Integrity.Checked || res.Integrity.LostAcknowledgedWrites != 0 {
		t.Errorf("integrity %+v (%v)", res.Integrity, out.VerifyErr)
	}
	reh.Close(context.Background(), false)
	if st := px.State(); len(st.Listening)+len(st.Toxics) != 0 {
		t.Errorf("proxies after Close: %+v", st)
	}
}
