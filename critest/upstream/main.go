// Command upstream runs the Kubernetes project's own CRI conformance suite (cri-tools'
// critest binary, built separately: it is not in the Go module proxy) against a peapod that
// it starts from bin/peapod, with the test registry serving the images the suite pulls.
//
//	go run ./critest/upstream -critest /path/to/critest [-- critest flags, e.g. -ginkgo.focus Streaming]
//
// The registry has our busybox-based test images under upstream's names, plus stand-ins for
// upstream's nginx web-server images (busybox httpd serving "Welcome to nginx!" on the same
// ports). Images the suite needs beyond these fail to pull: those specs fail for that reason.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// webServers are upstream's web-server images and the port each serves.
var webServers = map[string]string{
	"registry.k8s.io/e2e-test-images/nginx:1.14-2":            "80",
	"gcr.io/k8s-staging-cri-tools/hostnet-nginx-amd64:latest": "12003",
}

func main() {
	critest := flag.String("critest", "", "the cri-tools critest binary")
	peapod := flag.String("peapod-bin", "", "the peapod binary (default <repo>/bin/peapod)")
	flag.Parse()
	if err := run(*critest, *peapod, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

func run(critest, peapod string, args []string) error {
	if critest == "" {
		return errors.New("-critest is required (build it from cri-tools: go test -c ./cmd/critest)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	reg, err := framework.NewRegistry(ctx)
	if err != nil {
		return err
	}
	defer reg.Close()
	if err := pushWebServers(ctx, reg); err != nil {
		return err
	}
	if err := pushPredefinedGroup(ctx, reg); err != nil {
		return err
	}
	opts := []framework.DaemonOption{framework.WithRegistry(reg), framework.WithLogLevel("info")}
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

// pushWebServers pushes stand-ins for upstream's nginx images: busybox httpd serving
// upstream's expected main page on the image's port.
func pushWebServers(ctx context.Context, reg *framework.Registry) error {
	www, err := framework.NewLayer([]framework.TarEntry{
		framework.Dir("www", 0o755),
		framework.File("www/index.html", 0o644, "<h1>Welcome to nginx!</h1>\n"),
	})
	if err != nil {
		return err
	}
	for ref, port := range webServers {
		img, err := framework.BuildImage(framework.ImageSpec{
			Busybox: true, Layers: []v1.Layer{www},
			Config: v1.Config{Entrypoint: []string{"httpd", "-f", "-p", port, "-h", "/www"}},
		})
		if err != nil {
			return fmt.Errorf("web server image %s: %w", ref, err)
		}
		if err := reg.Push(ctx, ref, img); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
	}
	return nil
}

// predefinedGroupImage is upstream's SupplementalGroupsPolicy image: user default-user (uid
// 1000, group 1000) is a member of group-defined-in-image (gid 50000) in /etc/group, and is
// the image's USER.
const predefinedGroupImage = "gcr.io/k8s-staging-cri-tools/test-image-predefined-group:latest"

func pushPredefinedGroup(ctx context.Context, reg *framework.Registry) error {
	etc, err := framework.NewLayer([]framework.TarEntry{
		framework.File("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\ndefault-user:x:1000:1000::/home/default-user:/bin/sh\n"),
		framework.File("etc/group", 0o644, "root:x:0:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"),
	})
	if err != nil {
		return err
	}
	img, err := framework.BuildImage(framework.ImageSpec{
		Busybox: true, Layers: []v1.Layer{etc}, Config: v1.Config{User: "1000", Cmd: []string{"sh"}},
	})
	if err != nil {
		return fmt.Errorf("image %s: %w", predefinedGroupImage, err)
	}
	if err := reg.Push(ctx, predefinedGroupImage, img); err != nil {
		return fmt.Errorf("push %s: %w", predefinedGroupImage, err)
	}
	return nil
}
