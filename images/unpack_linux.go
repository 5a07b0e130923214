package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh." // aufs metadata; ".wh..wh..opq" is the one kept
	whiteoutOpaque = ".wh..wh..opq"
	paxXattr       = "SCHILY.xattr."
	// maxSymlinks bounds the symlinks followed while resolving one path, as the kernel's 40.
	maxSymlinks = 40
)

// applier creates a layer's entries under one directory.
type applier struct {
	ctx    context.Context
	root   *os.Root
	budget *layerBudget
	buf    []byte // one chunk of a file being written
	zeros  []byte // holeBlock zero bytes to compare blocks against
	dirs   []dirTimes
}

// dirTimes is a directory whose times are set once every entry is in place (creating an entry
// in a directory changes its mtime).
type dirTimes struct {
	name string
	hdr  *tar.Header
}

func newApplier(ctx context.Context, dest string, budget *layerBudget) (*applier, error) {
	root, err := os.OpenRoot(dest)
	if err != nil {
		return nil, fmt.Errorf("open unpack dir: %w", err)
	}
	return &applier{ctx: ctx, root: root, budget: budget, buf: make([]byte, unpackChunk), zeros: make([]byte, holeBlock)}, nil
}

func (a *applier) close() { _ = a.root.Close() }

// invalid is a refused entry.
func invalid(name, why string) error {
	return fmt.Errorf("layer entry %q: %s: %w", name, why, errdefs.ErrInvalidArgument)
}

// fsError classes a failed filesystem call made for entry name: a full filesystem is
// ResourceExhausted, trouble of the host's own (I/O, a read-only store, too many open files)
// stays unclassed, and everything else (a name that exists as another type, a link to a
// directory, a name too long, a loop) is the layer's fault: InvalidArgument.
func fsError(op, name string, err error) error {
	switch {
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return fmt.Errorf("layer entry %q: %s: %w (%w)", name, op, err, errdefs.ErrResourceExhausted)
	case errors.Is(err, unix.EIO), errors.Is(err, unix.EROFS), errors.Is(err, unix.ENOMEM),
		errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE), errors.Is(err, unix.EBADF):
		return fmt.Errorf("layer entry %q: %s: %w", name, op, err)
	}
	return fmt.Errorf("layer entry %q: %s: %w (%w)", name, op, err, errdefs.ErrInvalidArgument)
}

// entry creates one tar entry; r reads a regular file's content.
func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	if err := a.budget.take(entryCost(hdr)); err != nil {
		return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
	}
	// A leading "/" is dropped: absolute names are relative to the layer's root.
	name := path.Clean(strings.TrimLeft(hdr.Name, "/"))
	if name == "." {
		// The layer's root directory: its metadata is not applied, the directory stays
		// root-only (the container's root comes from its own upper directory).
		return nil
	}
	if !filepath.IsLocal(name) {
		return invalid(hdr.Name, "the path leaves the layer")
	}
	dir, base := path.Dir(name), path.Base(name)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(hdr, dir, base)
	}
	parent, parentName, err := a.openDir(dir, true)
	if err != nil {
		return err
	}
	defer parent.Close()
	pfd := int(parent.Fd())

	// An existing entry is replaced, unless both are directories (then they merge). Nothing
	// is ever opened or written through what was there: a hard link or a symlink left by an
	// earlier entry is removed, not followed.
	var st unix.Stat_t
	existingDir := false
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		existingDir = st.Mode&unix.S_IFMT == unix.S_IFDIR
		if !existingDir || hdr.Typeflag != tar.TypeDir {
			if err := a.remove(pfd, parentName, base, existingDir); err != nil {
				return err
			}
		}
	} else if !errors.Is(err, unix.ENOENT) {
		return fsError("stat", name, err)
	}

	perm := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		if !existingDir {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return fsError("mkdir", name, err)
			}
		}
	case tar.TypeReg, tar.TypeGNUSparse:
		fd, err := unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return fsError("create", name, err)
		}
		f := os.NewFile(uintptr(fd), name)
		werr := a.writeFile(f, r, hdr.Size, name)
		cerr := f.Close()
		if werr != nil {
			return werr
		}
		if cerr != nil {
			return fsError("close", name, cerr)
		}
	case tar.TypeSymlink:
		// The target is kept verbatim: it is followed only inside the container's root.
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fsError("symlink", name, err)
		}
	case tar.TypeLink:
		// A hard link shares its target's inode, whose metadata its own entry set.
		return a.hardLink(hdr, pfd, base, name)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		typ := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(pfd, base, typ|(perm&0o777), int(dev)); err != nil {
			return fsError("mknod", name, err)
		}
	default:
		return invalid(hdr.Name, "unsupported entry type "+strconv.QuoteRune(rune(hdr.Typeflag)))
	}
	return a.meta(hdr, pfd, base, name, perm)
}

// meta applies an entry's owner, xattrs, mode (after the owner: chown clears setuid) and
// times, never following a symlink.
func (a *applier) meta(hdr *tar.Header, pfd int, base, name string, perm uint32) error {
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fsError("chown", name, err)
	}
	// The entry as seen through the parent's descriptor: lsetxattr resolves the descriptor's
	// magic link and does not follow base.
	at := "/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base
	for k, v := range hdr.PAXRecords {
		key, ok := strings.CutPrefix(k, paxXattr)
		if !ok {
			continue
		}
		if strings.HasPrefix(key, "trusted.overlay.") {
			// overlayfs' own attributes (opaque, redirect, metacopy) come from whiteouts
			// only: a layer does not get to steer the overlay directly.
			continue
		}
		if err := unix.Lsetxattr(at, key, []byte(v), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
				continue // best effort, as Docker and containerd do
			}
			return fsError("setxattr "+key, name, err)
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := unix.Fchmodat(pfd, base, perm, 0); err != nil {
			return fsError("chmod", name, err)
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		a.dirs = append(a.dirs, dirTimes{name: path.Clean(strings.TrimLeft(hdr.Name, "/")), hdr: hdr})
		return nil
	}
	return setTimes(pfd, base, hdr, name)
}

func setTimes(pfd int, base string, hdr *tar.Header, name string) error {
	atime := hdr.AccessTime
	if atime.IsZero() || atime.Before(hdr.ModTime) {
		atime = hdr.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if hdr.ModTime.IsZero() {
		return nil
	}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fsError("set times", name, err)
	}
	return nil
}

// finish sets the directories' times, once nothing more is created in them.
func (a *applier) finish() error {
	for _, d := range a.dirs {
		parent, _, err := a.openDir(path.Dir(d.name), false)
		if err != nil {
			continue // replaced by a later entry
		}
		var st unix.Stat_t
		base := path.Base(d.name)
		if unix.Fstatat(int(parent.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = setTimes(int(parent.Fd()), base, d.hdr, d.name)
		}
		parent.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// remove deletes base in the directory pfd (named parentName in the root).
func (a *applier) remove(pfd int, parentName, base string, isDir bool) error {
	if isDir {
		if err := a.root.RemoveAll(path.Join(parentName, base)); err != nil {
			return fsError("replace", path.Join(parentName, base), err)
		}
		return nil
	}
	if err := unix.Unlinkat(pfd, base, 0); err != nil {
		return fsError("replace", path.Join(parentName, base), err)
	}
	return nil
}

// whiteout converts an aufs-style whiteout entry (".wh.<name>" or ".wh..wh..opq" in dir) to
// overlayfs' form.
func (a *applier) whiteout(hdr *tar.Header, dir, base string) error {
	name := path.Join(dir, base)
	if base != whiteoutOpaque && strings.HasPrefix(base, whiteoutMeta) {
		return nil // other aufs metadata (.wh..wh.plnk, .wh..wh.aufs) means nothing here
	}
	parent, parentName, err := a.openDir(dir, true)
	if err != nil {
		return err
	}
	defer parent.Close()
	pfd := int(parent.Fd())
	if base == whiteoutOpaque {
		if err := unix.Fsetxattr(pfd, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fsError("mark opaque", name, err)
		}
		return nil
	}
	victim := strings.TrimPrefix(base, whiteoutPrefix)
	if victim == "" || victim == "." || victim == ".." {
		return invalid(hdr.Name, "a whiteout must name an entry")
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, victim, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		if err := a.remove(pfd, parentName, victim, st.Mode&unix.S_IFMT == unix.S_IFDIR); err != nil {
			return err
		}
	}
	if err := unix.Mknodat(pfd, victim, unix.S_IFCHR, 0); err != nil {
		return fsError("whiteout", name, err)
	}
	if err := unix.Fchownat(pfd, victim, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fsError("chown", name, err)
	}
	return nil
}

// hardLink makes base in pfd another name of the entry hdr.Linkname names in the layer.
func (a *applier) hardLink(hdr *tar.Header, pfd int, base, name string) error {
	target := path.Clean(strings.TrimLeft(hdr.Linkname, "/"))
	if target == "." || !filepath.IsLocal(target) {
		return invalid(hdr.Name, "hard link target "+strconv.Quote(hdr.Linkname)+" is outside the layer")
	}
	tparent, _, err := a.openDir(path.Dir(target), false)
	if err != nil {
		return fmt.Errorf("layer entry %q: hard link target %q: %w", name, hdr.Linkname, err)
	}
	defer tparent.Close()
	// Flags 0: a symlink target is linked itself, not followed.
	if err := unix.Linkat(int(tparent.Fd()), path.Base(target), pfd, base, 0); err != nil {
		return fsError("link to "+strconv.Quote(hdr.Linkname), name, err)
	}
	return nil
}

// openDir opens the directory dir (a clean local path) of the layer, resolving symlinks on
// the way as if the layer were the root of the filesystem: an absolute target starts again at
// the layer's root and ".." stops there. With create, missing directories are made (0755,
// root's, as Docker and containerd do for directories a layer implies). It returns the
// directory and its symlink-free name in the layer. Every step goes through the os.Root, which
// refuses to leave it whatever the resolution here concluded.
func (a *applier) openDir(dir string, create bool) (*os.File, string, error) {
	var resolved []string
	todo := splitPath(dir)
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
			continue
		}
		p := path.Join(append(resolved, c)...)
		fi, err := a.root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := a.root.Mkdir(p, 0o755); err != nil {
				return nil, "", fsError("mkdir", p, err)
			}
			resolved = append(resolved, c)
		case errors.Is(err, fs.ErrNotExist):
			return nil, "", invalid(dir, p+" does not exist in the layer")
		case err != nil:
			return nil, "", fsError("resolve", p, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			links++
			if links > maxSymlinks {
				return nil, "", invalid(dir, "too many levels of symbolic links")
			}
			target, err := a.root.Readlink(p)
			if err != nil {
				return nil, "", fsError("readlink", p, err)
			}
			if path.IsAbs(target) {
				resolved = resolved[:0]
			}
			todo = append(splitPath(target), todo...)
		case fi.IsDir():
			resolved = append(resolved, c)
		default:
			return nil, "", invalid(dir, p+" is not a directory")
		}
	}
	name := "."
	if len(resolved) > 0 {
		name = path.Join(resolved...)
	}
	f, err := a.root.Open(name)
	if err != nil {
		return nil, "", fsError("open directory", name, err)
	}
	return f, name, nil
}

func splitPath(p string) []string { return strings.Split(p, "/") }

// writeFile writes size bytes of r to f, chunk by chunk, leaving every block of zeros a hole:
// a sparse file (PAX, GNU, or a plain file of zeros) takes no more disk than its data. ctx is
// checked before each chunk, so a cancelled pull stops at once even inside a huge hole, which
// reads nothing from the network.
func (a *applier) writeFile(f *os.File, r io.Reader, size int64, name string) error {
	var off int64
	for off < size {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		chunk := a.buf[:min(int64(len(a.buf)), size-off)]
		if _, err := io.ReadFull(r, chunk); err != nil {
			return fmt.Errorf("layer entry %q: read: %v: %w", name, err, errMalformedLayer)
		}
		for i := 0; i < len(chunk); {
			// Skip zero blocks, then write the run of data blocks that follows.
			if j := min(i+holeBlock, len(chunk)); bytes.Equal(chunk[i:j], a.zeros[:j-i]) {
				i = j
				continue
			}
			j := i
			for j < len(chunk) {
				k := min(j+holeBlock, len(chunk))
				if bytes.Equal(chunk[j:k], a.zeros[:k-j]) {
					break
				}
				j = k
			}
			if err := a.budget.write(int64(j - i)); err != nil {
				return fmt.Errorf("layer entry %q: %w", name, err)
			}
			if _, err := f.WriteAt(chunk[i:j], off+int64(i)); err != nil {
				return fsError("write", name, err)
			}
			i = j
		}
		off += int64(len(chunk))
	}
	// Sets the size when the file ends in a hole.
	if err := f.Truncate(size); err != nil {
		return fsError("truncate", name, err)
	}
	return nil
}
