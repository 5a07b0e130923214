// Package topdir marks a directory as the top of unrelated directory hierarchies for the
// filesystem's inode allocator (chattr +T).
//
// ext4's Orlov allocator places a new directory near its parent, and the files in it near
// it, unless the parent carries the top-directory flag: then each subdirectory goes to a
// block group of its own with more free inodes than average. peapod makes one directory per
// pod and per container in a few parents (the pods, namespace pins and containers
// directories). Without the flag they all land in one block group, where every inode
// allocation on an ext4 without a journal first walks past each inode of that group freed
// in the last minutes (ext4's recently_deleted check: every pod removed, every temp file
// renamed over a record). With 110 pods started this was a fifth of the cpu of a pod start
// on a node whose state and root directories share such a filesystem.
package topdir

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// fsTopdirFL is FS_TOPDIR_FL of <linux/fs.h>, the flag chattr +T sets.
const fsTopdirFL = 0x00020000

// Mark sets the top-directory flag on dir. A filesystem without per-inode flags, or without
// this one, is left as it is: the flag is a placement hint, never required.
func Mark(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		if unsupported(err) {
			return nil
		}
		return fmt.Errorf("get flags of %s: %w", dir, err)
	}
	if flags&fsTopdirFL != 0 {
		return nil
	}
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|fsTopdirFL)); err != nil {
		if unsupported(err) {
			return nil
		}
		return fmt.Errorf("set top-directory flag of %s: %w", dir, err)
	}
	return nil
}

// IsMarked reports whether dir carries the top-directory flag.
func IsMarked(dir string) (bool, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false, fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		if unsupported(err) {
			return false, nil
		}
		return false, fmt.Errorf("get flags of %s: %w", dir, err)
	}
	return flags&fsTopdirFL != 0, nil
}

// unsupported is how filesystems without the ioctl or the flag refuse it (tmpfs before 6.0
// has no flags at all; xfs and btrfs refuse flags they do not keep).
func unsupported(err error) bool {
	return errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS)
}
