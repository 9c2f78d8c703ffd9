package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
)

// logger adapts an io.Writer to testcontainers' Logger, so its progress lines go
// where the caller's do, not to the process's stderr.
type logger struct{ w io.Writer }

// Printf implements tclog.Logger.
func (l logger) Printf(format string, v ...any) {
	s := fmt.Sprintf(format, v...)
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	_, _ = io.WriteString(l.w, s)
}

var _ tclog.Logger = logger{}

// checkRyuk fails when testcontainers-go would start Ryuk (which cannot be pulled).
func checkRyuk() error {
	if !testcontainers.ReadConfig().Config.RyukDisabled {
		return fmt.Errorf("%w: set %s=true (the CLI and the tests do) or ryuk.disabled=true in ~/.testcontainers.properties; rehearse removes its containers itself", ErrRyukEnabled, RyukEnv)
	}
	return nil
}

// dockerClient opens a Docker client the way testcontainers-go does (DOCKER_HOST,
// the properties file, the default socket).
func dockerClient(ctx context.Context) (*testcontainers.DockerClient, error) {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return nil, fmt.Errorf("container: connect to the Docker engine: %w", err)
	}
	return cli, nil
}

// imageInfo says whether image is in the local engine and whether it has the
// rehearse-pg entrypoint.
func imageInfo(ctx context.Context, cli *testcontainers.DockerClient, image string) (found, rehearsePG bool, err error) {
	res, err := cli.ImageInspect(ctx, image)
	if err != nil {
		if isNotFound(err) {
			return false, false, nil
		}
		return false, false, fmt.Errorf("container: inspect image %s: %w", image, err)
	}
	if res.Config != nil {
		_, rehearsePG = res.Config.Labels[LabelEntrypoint]
	}
	return true, rehearsePG, nil
}

func isNotFound(err error) bool {
	return err != nil && (strings.Contains(strings.ToLower(err.Error()), "no such") || strings.Contains(err.Error(), "not found"))
}

// ResolveImage returns the image to run: configured (DefaultImage when empty) when
// the local engine has it, else BuiltImage when the engine has that (this machine
// has no registry to pull from), else an error wrapping ErrImageNotFound that says
// how to build it (`make image`).
func ResolveImage(ctx context.Context, configured string) (string, error) {
	if configured == "" {
		configured = DefaultImage
	}
	cli, err := dockerClient(ctx)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	for _, img := range []string{configured, BuiltImage} {
		found, _, err := imageInfo(ctx, cli, img)
		if err != nil {
			return "", err
		}
		if found {
			return img, nil
		}
	}
	return "", fmt.Errorf("%w: neither %s nor %s is in the local Docker engine and images cannot be pulled here; build %s offline with `make image` (images/postgres/build.sh)",
		ErrImageNotFound, configured, BuiltImage, BuiltImage)
}

// Leftovers lists the IDs of the containers and networks labelled with runID (every
// rehearse run's when runID is empty).
func Leftovers(ctx context.Context, runID string) (containers, networks []string, err error) {
	cli, err := dockerClient(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer cli.Close()
	return leftovers(ctx, cli, runID)
}

func runFilter(runID string) client.Filters {
	if runID == "" {
		return client.Filters{}.Add("label", LabelRun)
	}
	return client.Filters{}.Add("label", LabelRun+"="+runID)
}

func leftovers(ctx context.Context, cli *testcontainers.DockerClient, runID string) (containers, networks []string, err error) {
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: runFilter(runID)})
	if err != nil {
		return nil, nil, fmt.Errorf("container: list containers: %w", err)
	}
	for _, c := range cs.Items {
		containers = append(containers, c.ID)
	}
	ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: runFilter(runID)})
	if err != nil {
		return containers, nil, fmt.Errorf("container: list networks: %w", err)
	}
	for _, n := range ns.Items {
		networks = append(networks, n.ID)
	}
	return containers, networks, nil
}

// Sweep force-removes every container (with its volumes) and network labelled with
// runID (every rehearse run's when runID is empty): the cleanup of last resort,
// after a crash of the process that owned them.
func Sweep(ctx context.Context, runID string) error {
	cli, err := dockerClient(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	return sweep(ctx, cli, runID)
}

func sweep(ctx context.Context, cli *testcontainers.DockerClient, runID string) error {
	cs, ns, err := leftovers(ctx, cli, runID)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, id := range cs {
		if _, err := cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("container: remove container %.12s: %w", id, err))
		}
	}
	for _, id := range ns {
		if _, err := cli.NetworkRemove(ctx, id, client.NetworkRemoveOptions{}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("container: remove network %.12s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
