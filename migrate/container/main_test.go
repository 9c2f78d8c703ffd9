package container_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/rehearse-dev/rehearse/migrate/container"
)

// testImage is the image the tests run, resolved once in TestMain.
var testImage string

// TestMain disables Ryuk (it cannot be pulled here; the provider removes what it
// creates) and makes sure a PostgreSQL image is present, building rehearse/postgres
// offline with images/postgres/build.sh when the configured one is absent.
func TestMain(m *testing.M) {
	flag.Parse()
	os.Setenv(container.RyukEnv, "true")
	if !testing.Short() {
		img, err := ensureImage()
		if err != nil {
			fmt.Fprintln(os.Stderr, "container tests:", err)
			os.Exit(1)
		}
		testImage = img
	}
	os.Exit(m.Run())
}

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

// requireDocker skips under -short; otherwise the tests run for real.
func requireDocker(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("container tests need the Docker engine; skipped with -short")
	}
}
