package volumes

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// DefaultShmSize is a pod's /dev/shm size when none is given: what Docker and containerd use.
const DefaultShmSize int64 = 64 << 20

// RecursiveReadOnlySupported reports whether the kernel has mount_setattr(2) (Linux 5.12+),
// which runc needs for the "rro" option. It probes with an invalid descriptor: a kernel with
// the call answers EBADF or EINVAL, one without answers ENOSYS.
func RecursiveReadOnlySupported() bool {
	err := unix.MountSetattr(-1, "", unix.AT_EMPTY_PATH, &unix.MountAttr{})
	return !errors.Is(err, unix.ENOSYS)
}

// MakeShared makes path a shared mount point, bind-mounting it onto itself first when it is
// not a mount point yet, so that Bidirectional and HostToContainer mounts of paths below it
// pass ToOCI's checks. Nodes whose init is systemd have / shared already; this VM's is not.
// It is idempotent. Undo with Unmount(path) if MakeShared created the bind mount.
func MakeShared(path string) error {
	mounted, err := mountinfo.Mounted(path)
	if err != nil {
		return fmt.Errorf("check whether %s is a mount point: %w", path, err)
	}
	if !mounted {
		if err := unix.Mount(path, path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s onto itself: %w", path, err)
		}
	}
	if err := unix.Mount("", path, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", path, err)
	}
	return nil
}

// MountPodShm mounts a fresh tmpfs for a pod's /dev/shm at path (created if missing):
// nosuid, nodev, noexec, mode 1777, sizeBytes big (DefaultShmSize when <= 0). When path is
// already a mount point it does nothing, so a retried pod creation is harmless.
func MountPodShm(path string, sizeBytes int64) error {
	if sizeBytes <= 0 {
		sizeBytes = DefaultShmSize
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return fmt.Errorf("create shm dir %s: %w", path, err)
	}
	mounted, err := mountinfo.Mounted(path)
	if err != nil {
		return fmt.Errorf("check whether %s is a mount point: %w", path, err)
	}
	if mounted {
		return nil
	}
	data := "mode=1777,size=" + strconv.FormatInt(sizeBytes, 10)
	if err := unix.Mount("shm", path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, data); err != nil {
		return fmt.Errorf("mount shm tmpfs at %s: %w", path, err)
	}
	return nil
}

// UnmountPodShm unmounts what MountPodShm mounted; see Unmount.
func UnmountPodShm(path string) error { return Unmount(path) }

// Unmount detaches every mount stacked on path. A path that is not a mount point, or that
// does not exist, is fine: the call is idempotent. The directory itself stays.
func Unmount(path string) error {
	for {
		mounted, err := mountinfo.Mounted(path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("check whether %s is a mount point: %w", path, err)
		}
		if !mounted {
			return nil
		}
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				return nil // raced with another unmount
			}
			return fmt.Errorf("unmount %s: %w", path, err)
		}
	}
}
