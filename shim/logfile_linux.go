package shim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// OpenLogFile opens the CRI log file rel below the directory root for appending, creating
// it (0640) and its missing directories (0755). Every component of rel is opened relative
// to the one before with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS): a path that would
// leave root, by ".." or by a symlink planted in the log directory (lnk -> /elsewhere, or a
// x.log that points outside), is refused with ErrInvalidArgument, and so is a file that is
// not a regular file with one link (a FIFO would block the shim; a hard link would write to
// a file elsewhere). root itself, the kubelet's pod log directory, is trusted and created
// when missing.
func OpenLogFile(root, rel string) (*os.File, error) {
	parts, err := logPathParts(rel)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open log directory %s: %w", root, err)
	}
	refuse := func(err error) error {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENXIO) {
			return fmt.Errorf("log path %q goes through a symlink or leaves the log directory %s: %v: %w", rel, root, err, errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("open log %q in %s: %w", rel, root, err)
	}
	for _, name := range parts[:len(parts)-1] {
		next, err := openBeneath(dir, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(dir, name, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = openBeneath(dir, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			}
		}
		unix.Close(dir)
		if err != nil {
			return nil, refuse(err)
		}
		dir = next
	}
	fd, err := openBeneath(dir, parts[len(parts)-1], unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o640)
	unix.Close(dir)
	if err != nil {
		return nil, refuse(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat log %q: %w", rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink > 1 {
		unix.Close(fd)
		return nil, fmt.Errorf("log path %q in %s is not a regular file of its own (mode %o, %d links): %w", rel, root, st.Mode, st.Nlink, errdefs.ErrInvalidArgument)
	}
	// O_NONBLOCK only kept a FIFO from blocking the open.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("log %q: %w", rel, err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, filepath.Join(parts...))), nil
}

// logPathParts splits a log path relative to the log directory into its names, refusing
// what cannot be beneath it (absolute, "..", empty).
func logPathParts(rel string) ([]string, error) {
	clean := filepath.Clean(rel)
	if rel == "" || filepath.IsAbs(rel) || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, fmt.Errorf("log path %q is not a path inside the log directory: %w", rel, errdefs.ErrInvalidArgument)
	}
	return strings.Split(clean, "/"), nil
}

// openBeneath opens name (one path component) in the directory dir without following a
// symlink or leaving dir. Kernels without openat2 (before 5.6) get openat with O_NOFOLLOW,
// which, name being a single component, refuses the same.
func openBeneath(dir int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat2(dir, name, &unix.OpenHow{
			Flags:   uint64(flags),
			Mode:    uint64(mode),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
		})
		switch {
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			continue
		case errors.Is(err, unix.ENOSYS):
			return unix.Openat(dir, name, flags|unix.O_NOFOLLOW, mode)
		}
		return fd, err
	}
}

// SplitLogPath splits the absolute log path into the log directory root and the path
// beneath it. An older daemon sends no root: then only the file itself is opened without
// following a symlink.
func SplitLogPath(root, path string) (string, string, error) {
	if root == "" {
		return filepath.Dir(path), filepath.Base(path), nil
	}
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return "", "", fmt.Errorf("log path %s is not beneath the log directory %s: %w", path, root, errdefs.ErrInvalidArgument)
	}
	return root, rel, nil
}
