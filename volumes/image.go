package volumes

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/log"
)

// ImageVolumes gives a container its image's declared VOLUMEs. For each path in volumes that
// no CRI mount in covered already serves, it makes a directory under baseDir (e.g.
// <container state>/volumes) seeded with a copy of the image's content at that path (modes,
// ownership, symlinks, hard links, device nodes, xattrs and times preserved) and returns a
// read-write bind mount of it. A path missing from the image gets an empty directory.
//
// rootfs must be a merged view of the image (the container's mounted overlay rootfs, or a
// read-only temporary mount of the image's layers): lower layer directories alone would miss
// whiteouts. Paths are resolved inside rootfs with SecureJoin, so a symlink in the image
// cannot point the copy at host files.
//
// A volume directory that already exists is reused as it is (a retried create), so the call
// is idempotent; removing baseDir with the container removes the volumes.
func ImageVolumes(ctx context.Context, rootfs string, volumes []string, baseDir string, covered []Mount) ([]specs.Mount, error) {
	var out []specs.Mount
	seen := map[string]bool{}
	for _, v := range volumes {
		dst := filepath.Join("/", v) // image configs may hold relative or unclean paths
		if dst == "/" {
			return nil, fmt.Errorf("image volume %q would cover the root: %w", v, errdefs.ErrInvalidArgument)
		}
		if seen[dst] || Covers(covered, dst) {
			continue
		}
		seen[dst] = true
		dir := filepath.Join(baseDir, volumeDirName(dst))
		if err := seedVolume(ctx, rootfs, dst, dir); err != nil {
			return nil, err
		}
		out = append(out, specs.Mount{
			Destination: dst,
			Type:        "bind",
			Source:      dir,
			Options:     []string{"rbind", "rprivate", "rw"},
		})
	}
	return out, nil
}

// volumeDirName is a readable, collision-free directory name for a container path:
// "/var/lib/mysql" becomes "var_lib_mysql-<8 hex of its hash>".
func volumeDirName(dst string) string {
	sum := sha256.Sum256([]byte(dst))
	name := strings.ReplaceAll(strings.Trim(dst, "/"), "/", "_")
	if len(name) > 100 {
		name = name[:100]
	}
	return name + "-" + hex.EncodeToString(sum[:4])
}

func seedVolume(ctx context.Context, rootfs, dst, dir string) error {
	if _, err := os.Lstat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("create volumes dir: %w", err)
	}
	src, err := SecureJoin(rootfs, dst)
	if err != nil {
		return err
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	tmp := dir + ".tmp-" + hex.EncodeToString(suffix[:])
	defer func() { _ = os.RemoveAll(tmp) }()

	fi, err := os.Lstat(src)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(tmp, 0o755); err != nil {
			return fmt.Errorf("create volume dir for %s: %w", dst, err)
		}
	case err != nil:
		return fmt.Errorf("stat image path %s: %w", dst, err)
	case !fi.IsDir():
		return fmt.Errorf("image volume %s is not a directory in the image: %w", dst, errdefs.ErrInvalidArgument)
	default:
		if err := CopyTree(ctx, src, tmp); err != nil {
			return fmt.Errorf("seed volume %s: %w", dst, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("install volume dir for %s: %w", dst, err)
	}
	log.From(ctx).Debug("seeded image volume", zap.String("path", dst), zap.String("dir", dir))
	return nil
}

// CopyTree copies the directory src to dst (which must not exist) preserving what a
// container sees: modes including setuid/setgid/sticky, owners, symlinks as symlinks, hard
// links within the tree, device nodes and fifos, extended attributes and times. Sockets are
// skipped. It never follows a symlink in src, and it needs root to preserve foreign owners.
func CopyTree(ctx context.Context, src, dst string) error {
	type dirMeta struct {
		path string
		st   *syscall.Stat_t
	}
	var dirs []dirMeta
	links := map[[2]uint64]string{} // (dev, ino) → first copy, for hard links

	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("no stat for %s", path)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, dirMeta{target, st})
			return copyXattrs(path, target)
		case unix.S_IFREG:
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[key]; ok && st.Nlink > 1 {
				return os.Link(first, target)
			}
			if err := copyRegular(path, target); err != nil {
				return err
			}
			links[key] = target
		case unix.S_IFLNK:
			dest, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(dest, target); err != nil {
				return err
			}
		case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
			if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
				return fmt.Errorf("mknod %s: %w", target, err)
			}
		default: // sockets belong to a process that is not coming along
			return nil
		}
		return applyMeta(path, target, st)
	})
	if err != nil {
		return err
	}
	// Directories last and deepest first: creating children changes a parent's mtime, and a
	// read-only parent mode would stop its children from being created.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := setOwnerModeTimes(dirs[i].path, dirs[i].st); err != nil {
			return err
		}
	}
	return nil
}

func copyRegular(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("%s changed while being copied", src)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// applyMeta gives a non-directory target its source's owner, mode, xattrs and times, in the
// order that keeps them: chown clears setuid/setgid and security.capability, so the mode and
// the xattrs come after it, and the times last.
func applyMeta(src, target string, st *syscall.Stat_t) error {
	if err := setOwnerMode(target, st); err != nil {
		return err
	}
	if err := copyXattrs(src, target); err != nil {
		return err
	}
	return setTimes(target, st)
}

func setOwnerModeTimes(target string, st *syscall.Stat_t) error {
	if err := setOwnerMode(target, st); err != nil {
		return err
	}
	return setTimes(target, st)
}

func setOwnerMode(target string, st *syscall.Stat_t) error {
	if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK { // symlinks have no mode of their own
		if err := unix.Fchmodat(unix.AT_FDCWD, target, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("chmod %s: %w", target, err)
		}
	}
	return nil
}

func setTimes(target string, st *syscall.Stat_t) error {
	ts := []unix.Timespec{unix.NsecToTimespec(st.Atim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", target, err)
	}
	return nil
}

// copyXattrs copies every extended attribute the destination filesystem accepts.
func copyXattrs(src, dst string) error {
	size, err := unix.Llistxattr(src, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return fmt.Errorf("list xattrs of %s: %w", src, err)
	}
	if size == 0 {
		return nil
	}
	buf := make([]byte, size)
	if size, err = unix.Llistxattr(src, buf); err != nil {
		return fmt.Errorf("list xattrs of %s: %w", src, err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		n, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			return fmt.Errorf("get xattr %s of %s: %w", name, src, err)
		}
		val := make([]byte, n)
		if n, err = unix.Lgetxattr(src, name, val); err != nil {
			return fmt.Errorf("get xattr %s of %s: %w", name, src, err)
		}
		if err := unix.Lsetxattr(dst, name, val[:n], 0); err != nil {
			// A filesystem without that namespace (user.* on a symlink, say) loses it, as
			// cp -a would.
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
				continue
			}
			return fmt.Errorf("set xattr %s on %s: %w", name, dst, err)
		}
	}
	return nil
}
