// Command clustertool is what hack/cluster.sh (make cluster) needs from Go:
//
//	clustertool registry -addr 127.0.0.1:5101
//	    serves every test image (critest/framework's busybox-based images, under their
//	    well-known repository paths) until SIGTERM or SIGINT; it prints "ready" on stdout once
//	    the images are pushed.
//	clustertool clean -endpoint unix:///run/peapod-cluster/peapod.sock
//	    stops and removes every pod sandbox (and so every container) of the runtime behind
//	    endpoint, through the kubelet's own CRI client: what is left once the kubelet is gone.
//	clustertool pull -endpoint E IMAGE
//	    pulls IMAGE through the CRI (an image on the node that no container uses)
//	clustertool images -endpoint E
//	    prints every tag and digest of every image the runtime holds, one a line
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: clustertool registry|clean [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	var err error
	switch os.Args[1] {
	case "registry":
		fs := flag.NewFlagSet("registry", flag.ExitOnError)
		addr := fs.String("addr", "127.0.0.1:5101", "address to serve the registry on")
		_ = fs.Parse(os.Args[2:])
		err = serveRegistry(ctx, *addr)
	case "clean":
		fs := flag.NewFlagSet("clean", flag.ExitOnError)
		endpoint := fs.String("endpoint", "", "the CRI endpoint")
		_ = fs.Parse(os.Args[2:])
		err = clean(ctx, *endpoint)
	case "pull", "images":
		fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
		endpoint := fs.String("endpoint", "", "the CRI endpoint")
		_ = fs.Parse(os.Args[2:])
		err = imageCommand(ctx, os.Args[1], *endpoint, fs.Args())
	default:
		err = fmt.Errorf("unknown command %q (registry, clean, pull or images)", os.Args[1])
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "clustertool:", err)
		os.Exit(1)
	}
}

func serveRegistry(ctx context.Context, addr string) error {
	reg, err := framework.NewRegistry(ctx, framework.WithRegistryAddr(addr))
	if err != nil {
		return err
	}
	fmt.Println("ready")
	<-ctx.Done()
	return reg.Close()
}

func clean(ctx context.Context, endpoint string) error {
	if endpoint == "" {
		return errors.New("-endpoint is required")
	}
	ctx = framework.Quiet(ctx)
	rs, err := framework.ConnectRuntime(ctx, endpoint)
	if err != nil {
		return err
	}
	defer rs.Close(ctx) //nolint:errcheck
	removed, err := framework.RemoveAllPods(ctx, rs)
	errs := []error{err}
	left, err := rs.ListPodSandbox(ctx, nil)
	if err == nil && len(left) > 0 {
		errs = append(errs, fmt.Errorf("%d pod sandboxes left after cleaning", len(left)))
	}
	fmt.Printf("removed %d pod sandboxes\n", removed)
	return errors.Join(errs...)
}

func imageCommand(ctx context.Context, cmd, endpoint string, args []string) error {
	if endpoint == "" {
		return errors.New("-endpoint is required")
	}
	ctx = framework.Quiet(ctx)
	is, err := framework.ConnectImage(ctx, endpoint)
	if err != nil {
		return err
	}
	defer is.Close(ctx) //nolint:errcheck
	if cmd == "pull" {
		if len(args) != 1 {
			return errors.New("pull takes one image")
		}
		ref, err := is.PullImage(ctx, &runtimeapi.ImageSpec{Image: args[0]}, nil, nil)
		if err != nil {
			return fmt.Errorf("pull %s: %w", args[0], err)
		}
		fmt.Println(ref)
		return nil
	}
	imgs, err := is.ListImages(ctx, nil)
	if err != nil {
		return fmt.Errorf("list images: %w", err)
	}
	for _, img := range imgs {
		for _, n := range append(append([]string{img.Id}, img.RepoTags...), img.RepoDigests...) {
			fmt.Println(n)
		}
	}
	return nil
}
