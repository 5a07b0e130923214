package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// mountRootfs mounts the container's root filesystem: an overlay of the image's read-only
// layers (top first) under the container's own writable upper dir.
func mountRootfs(dir string, layers []string) (string, error) {
	if len(layers) == 0 {
		return "", fmt.Errorf("image has no layers: %w", errdefs.ErrFailedPrecondition)
	}
	upper, work, rootfs := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "rootfs")
	for _, d := range []string{upper, work, rootfs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", d, err)
		}
	}
	for _, l := range layers {
		if strings.ContainsAny(l, ",:") {
			return "", fmt.Errorf("layer path %q cannot be an overlay lowerdir: %w", l, errdefs.ErrInvalidArgument)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(layers, ":"), upper, work)
	if len(opts) >= unix.Getpagesize() {
		return "", fmt.Errorf("image has too many layers for one overlay mount (%d): %w", len(layers), errdefs.ErrFailedPrecondition)
	}
	if err := unix.Mount("overlay", rootfs, "overlay", 0, opts); err != nil {
		return "", fmt.Errorf("mount rootfs overlay: %w", err)
	}
	return rootfs, nil
}

// unmountRootfs undoes mountRootfs; a rootfs that is not mounted is fine.
func unmountRootfs(dir string) error {
	rootfs := filepath.Join(dir, "rootfs")
	for {
		err := unix.Unmount(rootfs, unix.MNT_DETACH)
		if err == nil {
			continue // overlays can be stacked by a retried create; peel them all
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("unmount rootfs %s: %w", rootfs, err)
	}
}

// isMountPoint reports whether rootfs (a directory in dir) has a filesystem of its own
// mounted: the overlay is another device than the directory holding it.
func isMountPoint(dir, rootfs string) bool {
	var a, b unix.Stat_t
	if unix.Stat(dir, &a) != nil || unix.Stat(rootfs, &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}
