package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// maxSymlinkHops is the kernel's limit on symlinks met resolving one path (MAXSYMLINKS is
// 40; the kernel gives ELOOP past it).
const maxSymlinkHops = 40

// ResolveHostPath resolves every symlink of the absolute host path p, as
// filepath.EvalSymlinks does, but refuses (ErrInvalidArgument) a path that is, or passes
// on its way through, the daemon's own /proc entries: self, thread-self and <pid> for the
// daemon's pid or any of its thread ids, in /proc or any other procfs mount. Those name
// this process, not anything the caller can mean: /proc/self/fd/8 would hand a container
// the daemon's own open files (its metadata database), and /dev/fd, /dev/stdin... lead
// there too. Each step is checked, since the final target of a /proc/<pid>/fd link is the
// file's own path. A missing component is ErrNotFound.
func ResolveHostPath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("host path %q is not absolute: %w", p, errdefs.ErrInvalidArgument)
	}
	resolved, todo := "/", p
	for hops := 0; todo != ""; {
		var name string
		name, todo, _ = strings.Cut(todo, "/")
		switch name {
		case "", ".":
			continue
		case "..":
			resolved = filepath.Dir(resolved)
			continue
		}
		if ownProcEntry(name) && isProcRoot(resolved) {
			return "", fmt.Errorf("host path %s leads into %s, the runtime's own process: %w",
				p, filepath.Join(resolved, name), errdefs.ErrInvalidArgument)
		}
		next := filepath.Join(resolved, name)
		fi, err := os.Lstat(next)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("host path %s: %s does not exist: %w", p, next, errdefs.ErrNotFound)
			}
			return "", fmt.Errorf("resolve host path %s: %w", p, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if hops++; hops > maxSymlinkHops {
			return "", fmt.Errorf("resolve host path %s: %w", p, syscall.ELOOP)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", fmt.Errorf("resolve host path %s: %w", p, err)
		}
		if filepath.IsAbs(target) {
			resolved = "/"
		}
		// The rest is resolved after the target, each ".." against what the target is.
		todo = target + "/" + todo
	}
	return resolved, nil
}

// procRootIno is the inode number of every procfs mount's root directory (PROC_ROOT_INO).
const procRootIno = 1

// isProcRoot reports whether dir is the root of a procfs mount, where self, thread-self
// and the process ids live.
func isProcRoot(dir string) bool {
	var fsst unix.Statfs_t
	if err := unix.Statfs(dir, &fsst); err != nil || fsst.Type != unix.PROC_SUPER_MAGIC {
		return false
	}
	var st unix.Stat_t
	return unix.Lstat(dir, &st) == nil && st.Ino == procRootIno
}

// ownProcEntry reports whether <procfs>/<entry> is this process: "self", "thread-self", its
// pid, or the id of one of its threads (reachable as /proc/<tid> though not listed).
func ownProcEntry(entry string) bool {
	switch entry {
	case "self", "thread-self":
		return true
	}
	id, err := strconv.Atoi(entry)
	if err != nil || id <= 0 || strconv.Itoa(id) != entry {
		return false
	}
	if id == os.Getpid() {
		return true
	}
	_, err = os.Lstat("/proc/self/task/" + entry)
	return err == nil
}
