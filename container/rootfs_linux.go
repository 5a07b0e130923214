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

// maxLayers is overlayfs's own limit on lower layers.
const maxLayers = 500

// mountRootfsInUserNS is mountRootfs for a container of a pod with a user namespace of its
// own (usernsPath). The image's layers, shared with every other container on the node, are
// mounted idmapped through that namespace and read-only: a file the image gives to uid N
// shows as N inside the container while it stays N on disk. Overlayfs itself cannot be
// idmapped, so the container's own writable layer is not: its root belongs to the host ids
// container root maps to (rootUID, rootGID), and whatever the container writes or copies up
// lands there under its mapped host ids, like any process of the pod's.
//
// The layers are handed to overlayfs as file descriptors of detached mounts (Linux 6.13+),
// so no idmapped mount is ever attached anywhere on the host.
func mountRootfsInUserNS(dir string, layers []string, usernsPath string, rootUID, rootGID uint32) (_ string, retErr error) {
	if len(layers) == 0 {
		return "", fmt.Errorf("image has no layers: %w", errdefs.ErrFailedPrecondition)
	}
	if len(layers) > maxLayers {
		return "", fmt.Errorf("image has too many layers for one overlay mount (%d): %w", len(layers), errdefs.ErrFailedPrecondition)
	}
	upper, work, rootfs := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "rootfs")
	for _, d := range []string{upper, work, rootfs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := os.Lchown(upper, int(rootUID), int(rootGID)); err != nil {
		return "", fmt.Errorf("give the writable layer to the pod's root: %w", err)
	}
	if err := mountIDMappedOverlay(rootfs, layers, upper, work, usernsPath, 0); err != nil {
		return "", fmt.Errorf("mount rootfs overlay with idmapped layers: %w", err)
	}
	return rootfs, nil
}

// mountIDMappedOverlay mounts at target an overlay of lowers (top first), each cloned as a
// detached, read-only mount idmapped through the user namespace at usernsPath, under upper
// and work (none when upper is empty: a read-only overlay), with the mount attributes attrs
// (unix.MOUNT_ATTR_*).
func mountIDMappedOverlay(target string, lowers []string, upper, work, usernsPath string, attrs int) error {
	userns, err := unix.Open(usernsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open user namespace: %w", err)
	}
	defer unix.Close(userns)
	var fds []int
	defer func() {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}()
	for _, l := range lowers {
		fd, err := unix.OpenTree(unix.AT_FDCWD, l, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return fmt.Errorf("clone layer %s: %w", l, err)
		}
		fds = append(fds, fd)
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_RDONLY, Userns_fd: uint64(userns)}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
			return fmt.Errorf("idmap layer %s: %w", l, err)
		}
	}
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fsfd)
	for i, fd := range fds {
		if err := unix.FsconfigSetFd(fsfd, "lowerdir+", fd); err != nil {
			return fmt.Errorf("overlay lower layer %s by descriptor (needs Linux 6.13+): %w", lowers[i], err)
		}
	}
	if upper != "" {
		if err := unix.FsconfigSetString(fsfd, "upperdir", upper); err != nil {
			return fmt.Errorf("overlay upperdir: %w", err)
		}
		if err := unix.FsconfigSetString(fsfd, "workdir", work); err != nil {
			return fmt.Errorf("overlay workdir: %w", err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("create overlay: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fmt.Errorf("fsmount overlay: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach overlay at %s: %w", target, err)
	}
	return nil
}
