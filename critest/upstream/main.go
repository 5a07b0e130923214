// Command upstream runs the Kubernetes project's own CRI conformance suite (cri-tools'
// critest binary, built separately: it is not in the Go module proxy; hack/critest-build.sh
// builds it from a cri-tools checkout) against a peapod that it starts from bin/peapod, with
// the test registry serving every image the suite pulls.
//
//	go run ./critest/upstream -critest /path/to/critest [-- critest flags, e.g. -ginkgo.focus Streaming]
//
// The images are built here, as upstream's images/ directory and build script make them, on
// the framework's busybox layer (images.go): the test-image-* names with their users, groups
// and tags, busybox with ipcs, and nginx, hostnet-nginx, httpd, nonewprivs and pause played
// by one static Go program (./standin). The one image it cannot serve is test-image-digest,
// which the specs pull by a fixed digest of upstream's own build.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/peapod-runtime/peapod/critest/framework"
)

func main() {
	critest := flag.String("critest", "", "the cri-tools critest binary")
	peapod := flag.String("peapod-bin", "", "the peapod binary (default <repo>/bin/peapod)")
	goTool := flag.String("go", "go", "the go command, to build the images' static stand-in program")
	flag.Parse()
	if err := run(*critest, *peapod, *goTool, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

func run(critest, peapod, goTool string, args []string) error {
	if critest == "" {
		return errors.New("-critest is required (build it from a cri-tools clone: hack/critest-build.sh CLONE bin/critest v1.36.0)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	imgs, err := images(ctx, goTool)
	if err != nil {
		return err
	}
	reg, err := framework.NewRegistry(ctx)
	if err != nil {
		return err
	}
	defer reg.Close()
	if err := pushUpstreamImages(ctx, reg, imgs); err != nil {
		return err
	}
	var mirrors strings.Builder
	for _, h := range extraMirrors() {
		fmt.Fprintf(&mirrors, "[registries.%q]\nmirrors = [%q]\n", h, reg.URL())
	}
	opts := []framework.DaemonOption{framework.WithRegistry(reg), framework.WithConfig(mirrors.String()), framework.WithLogLevel("info")}
	if peapod != "" {
		opts = append(opts, framework.WithBinary(peapod))
	}
	d, err := framework.NewDaemon(opts...)
	if err != nil {
		return err
	}
	defer d.Close()
	defer framework.NodeCleanup()()
	if err := d.Start(ctx); err != nil {
		return err
	}
	defer d.Stop() //nolint:errcheck
	cmd := exec.CommandContext(ctx, critest, append([]string{"-runtime-endpoint", d.Endpoint(), "-image-endpoint", d.Endpoint()}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("critest: %w", err)
	}
	return nil
}

// images builds the stand-in program and every image upstream's specs pull.
func images(ctx context.Context, goTool string) (map[string]remote.Taggable, error) {
	if _, err := exec.LookPath(goTool); err != nil {
		return nil, fmt.Errorf("the go command %q is needed to build the test images: %w", goTool, err)
	}
	dir, err := os.MkdirTemp("", "peapod-upstream-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	standin, err := buildStandin(ctx, goTool, dir)
	if err != nil {
		return nil, err
	}
	return upstreamImages(standin)
}
