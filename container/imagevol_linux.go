package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/volumes"
)

// imageVolumesDir holds a container's image volumes: one directory per image mount, named
// by the mount's index in Config.Mounts, with the read-only overlay at <index>/root.
const imageVolumesDir = "imagevols"

// imageVolumeFlags are the flags of every image volume's overlay: an image's files are
// data, never programs or devices of the node.
const imageVolumeFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

func imageVolumeRoot(dir string, index int) string {
	return filepath.Join(dir, imageVolumesDir, strconv.Itoa(index), "root")
}

// mountImageVolume mounts an image's unpacked layers (top first) read-only, with nosuid,
// nodev and noexec, as an overlay of lowerdirs only (no upper, nothing can be written), and
// returns its root. overlayfs wants two lowerdirs when there is no upper: a one-layer image
// gets an empty directory beneath. A root that is mounted already (a resumed create) is
// kept.
//
// For a pod with a user namespace of its own (usernsPath), the layers are idmapped through it,
// as the rootfs's are: the image's files show inside with the ids the image gives them.
func mountImageVolume(dir string, index int, layers []string, usernsPath string) (string, error) {
	if len(layers) == 0 {
		return "", fmt.Errorf("image volume %d: image has no layers: %w", index, errdefs.ErrFailedPrecondition)
	}
	base := filepath.Join(dir, imageVolumesDir, strconv.Itoa(index))
	root, empty := filepath.Join(base, "root"), filepath.Join(base, "empty")
	for _, d := range []string{root, empty} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", d, err)
		}
	}
	if isMountPoint(base, root) {
		return root, nil
	}
	for _, l := range layers {
		if strings.ContainsAny(l, ",:") {
			return "", fmt.Errorf("layer path %q cannot be an overlay lowerdir: %w", l, errdefs.ErrInvalidArgument)
		}
	}
	lower := layers
	if len(lower) == 1 {
		lower = append(lower[:1:1], empty)
	}
	if usernsPath != "" {
		const attrs = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC
		if len(lower) > maxLayers {
			return "", fmt.Errorf("image volume %d: image has too many layers for one overlay mount (%d): %w", index, len(layers), errdefs.ErrFailedPrecondition)
		}
		if err := mountIDMappedOverlay(root, lower, "", "", usernsPath, attrs); err != nil {
			return "", fmt.Errorf("mount image volume overlay at %s with idmapped layers: %w", root, err)
		}
		return root, nil
	}
	opts := "lowerdir=" + strings.Join(lower, ":")
	if len(opts) >= unix.Getpagesize() {
		return "", fmt.Errorf("image volume %d: image has too many layers for one overlay mount (%d): %w", index, len(layers), errdefs.ErrFailedPrecondition)
	}
	if err := unix.Mount("overlay", root, "overlay", imageVolumeFlags, opts); err != nil {
		return "", fmt.Errorf("mount image volume overlay at %s: %w", root, err)
	}
	return root, nil
}

// unmountImageVolumes unmounts every image volume of a container dir; a dir without any,
// or whose volumes are not mounted, is fine.
func unmountImageVolumes(dir string) error {
	entries, err := os.ReadDir(filepath.Join(dir, imageVolumesDir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("list image volumes: %w", err)
	}
	var errs []error
	for _, e := range entries {
		root := filepath.Join(dir, imageVolumesDir, e.Name(), "root")
		for {
			err := unix.Unmount(root, unix.MNT_DETACH)
			if err == nil {
				continue // a mount stacked by a retried create: peel them all
			}
			if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount image volume %s: %w", root, err))
			}
			break
		}
	}
	return errors.Join(errs...)
}

// imageSubPath resolves the request's image_sub_path beneath an image volume's root. The
// path must be relative and must not climb ("..": InvalidArgument); a symlink met on the
// way is resolved as if root were "/", so it never leads out of the image. A path the image
// does not have is NotFound, as the CRI asks.
func imageSubPath(root, sub string) (string, error) {
	if sub == "" {
		return root, nil
	}
	if filepath.IsAbs(sub) {
		return "", fmt.Errorf("image_sub_path %q must be relative to the image's root: %w", sub, errdefs.ErrInvalidArgument)
	}
	for _, part := range strings.Split(filepath.ToSlash(sub), "/") {
		if part == ".." {
			return "", fmt.Errorf("image_sub_path %q must not contain \"..\": %w", sub, errdefs.ErrInvalidArgument)
		}
	}
	p, err := volumes.SecureJoin(root, sub)
	if err != nil {
		return "", fmt.Errorf("image_sub_path: %w", err)
	}
	if _, err := os.Lstat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("image_sub_path %q does not exist in the image: %w", sub, errdefs.ErrNotFound)
		}
		return "", fmt.Errorf("image_sub_path %q: %w", sub, err)
	}
	return p, nil
}
