package main

import (
	"archive/tar"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// pauseImages are the sandbox images a runtime with pause containers may ask for (containerd
// 1.6's default, and the ones hack/containerd.sh and newer releases name).
var pauseImages = []string{"registry.k8s.io/pause:3.6", "registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10.1", "registry.k8s.io/pause:3.10.2"}

// pauseSource is a pause process: it waits for a signal, reaps what it inherits and exits on
// SIGINT and SIGTERM. Built static with the C compiler, its memory is that of the pause of
// the Kubernetes images (a small static C program), so a pause runtime's per-pod figures are
// not inflated by a stand-in.
const pauseSource = `#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = quit;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = reap;
	sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	for (;;) pause();
}
`

// pushPauseImage builds the pause image and serves it as every name of pauseImages.
func pushPauseImage(ctx context.Context, reg *framework.Registry) error {
	dir, err := os.MkdirTemp("", "bench-pause-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "pause.c")
	if err := os.WriteFile(src, []byte(pauseSource), 0o644); err != nil {
		return err
	}
	bin := filepath.Join(dir, "pause")
	if out, err := exec.CommandContext(ctx, "gcc", "-static", "-Os", "-s", "-o", bin, src).CombinedOutput(); err != nil {
		return fmt.Errorf("build pause: %w: %s", err, out)
	}
	body, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	layer, err := framework.NewLayer([]framework.TarEntry{{Name: "pause", Type: tar.TypeReg, Mode: 0o755, Body: body}})
	if err != nil {
		return err
	}
	img, err := framework.BuildImage(framework.ImageSpec{Layers: []v1.Layer{layer},
		Config: v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}})
	if err != nil {
		return fmt.Errorf("pause image: %w", err)
	}
	for _, ref := range pauseImages {
		if err := reg.Push(ctx, ref, img); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
	}
	return nil
}
