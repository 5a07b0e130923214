// Package volumes turns what a container asks to see on its filesystem into OCI mounts: the
// kubelet's CRI mounts (bind mounts with propagation and recursive read-only), the image's
// declared VOLUMEs (seeded per container from the image content), and the pod's own files
// (hostname, resolv.conf, hosts, /dev/shm). It also resolves paths safely inside a root, so
// that a hostile image or request cannot make peapod touch host files through ".." or
// symlinks.
//
// It is a leaf: it imports no peapod package but internal/log, and speaks OCI runtime-spec
// types to its callers.
package volumes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	securejoin "github.com/cyphar/filepath-securejoin"
)

// SecureJoin joins unsafePath onto root as if root were the filesystem root: every ".." and
// every symlink (absolute or relative) met on the way is resolved inside root, so the result
// is always root itself or below it. The path need not exist.
//
// The result is a path string, so a concurrent rename inside root could still move it; use it
// on trees nobody else is changing (an image rootfs before its container starts).
func SecureJoin(root, unsafePath string) (string, error) {
	p, err := securejoin.SecureJoin(root, unsafePath)
	if err != nil {
		return "", fmt.Errorf("resolve %q inside %s: %w", unsafePath, root, err)
	}
	return p, nil
}

// WithinRoot resolves p (absolute, or relative to root) and fails with ErrInvalidArgument when
// a ".." or a symlink would take it out of root. Unlike SecureJoin it does not confine a path
// that tries to leave: it refuses it, which is what a request path (a log path under the pod's
// log directory, say) deserves. The part of p that does not exist yet is checked lexically.
// It returns the cleaned path with the existing prefix's symlinks resolved.
func WithinRoot(root, p string) (string, error) {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("resolve root %s: %w", root, err)
	}
	joined := p
	if !filepath.IsAbs(p) {
		joined = filepath.Join(root, p)
	}
	joined = filepath.Clean(joined)
	if !inside(filepath.Clean(root), joined) && !inside(realRoot, joined) {
		return "", fmt.Errorf("path %q leaves %s: %w", p, root, errdefs.ErrInvalidArgument)
	}
	// Resolve the longest existing prefix; what follows it does not exist and cannot be a
	// symlink yet.
	existing, rest := joined, ""
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = parent
	}
	resolved, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", existing, err)
	}
	resolved = filepath.Join(resolved, rest)
	if !inside(realRoot, resolved) {
		return "", fmt.Errorf("path %q resolves to %s outside %s: %w", p, resolved, root, errdefs.ErrInvalidArgument)
	}
	return resolved, nil
}

// inside reports whether p is root or below it (both clean and absolute).
func inside(root, p string) bool {
	if root == "/" {
		return strings.HasPrefix(p, "/")
	}
	return p == root || strings.HasPrefix(p, root+"/")
}
