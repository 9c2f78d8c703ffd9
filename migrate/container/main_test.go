package container_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/internal/testutil"
	"github.com/rehearse-dev/rehearse/migrate/container"
)

// TestMain disables Ryuk (it cannot be pulled here; the provider removes what it
// creates).
func TestMain(m *testing.M) {
	flag.Parse()
	os.Setenv(container.RyukEnv, "true")
	os.Exit(m.Run())
}

// testImage resolves, once, the PostgreSQL image the tests run, building
// rehearse/postgres offline with images/postgres/build.sh when the configured one
// is absent.
var testImage = sync.OnceValues(ensureImage)

func ensureImage() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	want := os.Getenv(container.ImageEnv)
	if img, err := container.ResolveImage(ctx, want); err == nil {
		return img, nil
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "images", "postgres", "build.sh")
	cmd := exec.CommandContext(ctx, script, container.BuiltImage)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s with %s: %w", container.BuiltImage, script, err)
	}
	return container.ResolveImage(ctx, want)
}

// requireDocker skips under -short; otherwise the test needs the Docker engine (a
// skip without one, a failure under CI) and returns the image to run.
func requireDocker(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("container tests need the Docker engine; skipped with -short")
	}
	testutil.RequireDocker(t)
	img, err := testImage()
	if err != nil {
		t.Fatalf("container tests: %v", err)
	}
	return img
}
