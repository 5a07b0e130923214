package volumes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Propagation is how mount events travel between the host and a bind mount. The values
// mirror the CRI's MountPropagation enum.
type Propagation int

// The CRI propagation modes.
const (
	// PropagationPrivate: no events either way (rprivate).
	PropagationPrivate Propagation = iota
	// PropagationHostToContainer: host mounts appear in the container (rslave).
	PropagationHostToContainer
	// PropagationBidirectional: both ways (rshared); the kubelet sends it for privileged
	// containers only.
	PropagationBidirectional
)

func (p Propagation) String() string {
	switch p {
	case PropagationPrivate:
		return "rprivate"
	case PropagationHostToContainer:
		return "rslave"
	case PropagationBidirectional:
		return "rshared"
	}
	return fmt.Sprintf("Propagation(%d)", int(p))
}

// Mount is one CRI mount in peapod's terms.
type Mount struct {
	ContainerPath string
	HostPath      string
	Readonly      bool
	Propagation   Propagation
	// RecursiveReadOnly makes every submount read-only too (OCI "rro", kernel 5.12+). The
	// CRI requires Readonly and PropagationPrivate with it.
	RecursiveReadOnly bool
	// SelinuxRelabel is accepted and ignored: SELinux is not supported.
	SelinuxRelabel bool
	// Image, when set, makes this an image volume: the image (as the request named it) is
	// mounted read-only, and ImageSubPath is the part of it to show ("" for its root). The
	// container package mounts it and puts the resolved directory in HostPath; ToOCI then
	// binds it read-only with nosuid, nodev and noexec.
	Image        string `json:",omitempty"`
	ImageSubPath string `json:",omitempty"`
}

// MountLookup returns the mount that contains path (the mount table entry whose mount point
// is path's longest prefix). LookupMount is the real one; tests pass a fake.
type MountLookup func(path string) (*mountinfo.Info, error)

// LookupMount finds, in this process's mount table, the mount that holds path.
func LookupMount(path string) (*mountinfo.Info, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", path, err)
	}
	mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(resolved))
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	var best *mountinfo.Info
	for _, m := range mounts {
		// Later entries are mounted on top of earlier ones at the same point.
		if best == nil || len(m.Mountpoint) >= len(best.Mountpoint) {
			best = m
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no mount holds %s: %w", resolved, errdefs.ErrNotFound)
	}
	return best, nil
}

// MountOptions are the host facts ToOCI needs.
type MountOptions struct {
	// Lookup finds a host path's mount for the propagation checks; nil means LookupMount.
	Lookup MountLookup
	// RecursiveReadOnly says the kernel has mount_setattr (see RecursiveReadOnlySupported).
	RecursiveReadOnly bool
}

// ToOCI converts CRI mounts into OCI bind mounts, in the order given.
//
// Rules:
//   - ContainerPath and HostPath must be absolute (ErrInvalidArgument), and no two mounts may
//     share a ContainerPath.
//   - The host path must exist. A missing one is ErrNotFound wrapped with a message naming
//     the path: the CRI says the runtime errors (it does not create it, unlike containerd's
//     CRI plugin, which makes a missing directory), and NotFound tells the caller exactly
//     what is absent. The kubelet creates hostPath and emptyDir directories itself.
//   - A host path that is a symlink is followed to its target, but never through the
//     daemon's own /proc entries (/proc/self, /proc/thread-self, /proc/<its pid or a tid>,
//     so neither /dev/fd): ErrInvalidArgument (see ResolveHostPath).
//   - Options are rbind, the propagation (rprivate, rslave, rshared) and ro or rw.
//   - Bidirectional needs the host path's mount to be shared, HostToContainer needs it shared
//     or slave; otherwise ErrFailedPrecondition naming the mount point. The caller (the
//     daemon) must then make that mount shared, e.g. with MakeShared on the kubelet's root
//     directory or on its own state directory, as systemd does for / on most nodes.
//   - RecursiveReadOnly adds "rro"; it needs Readonly and PropagationPrivate
//     (ErrInvalidArgument) and kernel support (ErrFailedPrecondition when missing).
//   - An image volume (Image set, HostPath the mounted image's directory) is always
//     ro, nosuid, nodev, noexec.
func ToOCI(mounts []Mount, opts MountOptions) ([]specs.Mount, error) {
	lookup := opts.Lookup
	if lookup == nil {
		lookup = LookupMount
	}
	seen := make(map[string]bool, len(mounts))
	out := make([]specs.Mount, 0, len(mounts))
	for _, m := range mounts {
		if !filepath.IsAbs(m.ContainerPath) {
			return nil, fmt.Errorf("mount container path %q is not absolute: %w", m.ContainerPath, errdefs.ErrInvalidArgument)
		}
		dst := filepath.Clean(m.ContainerPath)
		if seen[dst] {
			return nil, fmt.Errorf("two mounts at container path %s: %w", dst, errdefs.ErrInvalidArgument)
		}
		seen[dst] = true
		if !filepath.IsAbs(m.HostPath) {
			return nil, fmt.Errorf("mount host path %q for %s is not absolute: %w", m.HostPath, dst, errdefs.ErrInvalidArgument)
		}
		src, err := ResolveHostPath(m.HostPath)
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				return nil, fmt.Errorf("mount host path %s for %s does not exist: %w", m.HostPath, dst, errdefs.ErrNotFound)
			}
			return nil, fmt.Errorf("mount %s: %w", dst, err)
		}
		if _, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("stat mount host path %s: %w", src, err)
		}
		options := []string{"rbind"}
		switch m.Propagation {
		case PropagationPrivate:
		case PropagationHostToContainer:
			if err := ensurePropagation(src, lookup, "shared:", "master:"); err != nil {
				return nil, err
			}
		case PropagationBidirectional:
			if err := ensurePropagation(src, lookup, "shared:"); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("mount %s: unknown propagation %d: %w", dst, int(m.Propagation), errdefs.ErrInvalidArgument)
		}
		options = append(options, m.Propagation.String())
		switch {
		case m.Image != "":
			options = append(options, "ro", "nosuid", "nodev", "noexec")
		case m.Readonly:
			options = append(options, "ro")
		default:
			options = append(options, "rw")
		}
		if m.RecursiveReadOnly {
			if !m.Readonly || m.Propagation != PropagationPrivate {
				return nil, fmt.Errorf("mount %s: recursive read-only needs readonly and private propagation: %w", dst, errdefs.ErrInvalidArgument)
			}
			if !opts.RecursiveReadOnly {
				return nil, fmt.Errorf("mount %s: recursive read-only needs mount_setattr (kernel 5.12+), missing here: %w", dst, errdefs.ErrFailedPrecondition)
			}
			options = append(options, "rro")
		}
		out = append(out, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: options})
	}
	return out, nil
}

// ensurePropagation checks that src's mount carries one of the optional mountinfo tags
// ("shared:N" for a shared mount, "master:N" for a slave).
func ensurePropagation(src string, lookup MountLookup, tags ...string) error {
	info, err := lookup(src)
	if err != nil {
		return fmt.Errorf("find the mount of %s: %w", src, err)
	}
	for _, field := range strings.Fields(info.Optional) {
		for _, tag := range tags {
			if strings.HasPrefix(field, tag) {
				return nil
			}
		}
	}
	want := "shared"
	if len(tags) > 1 {
		want = "shared or slave"
	}
	return fmt.Errorf("path %s is on mount %s which is not %s (make it shared: mount --make-rshared %s): %w",
		src, info.Mountpoint, want, info.Mountpoint, errdefs.ErrFailedPrecondition)
}

// Covers reports whether one of mounts is at containerPath (compared clean).
func Covers(mounts []Mount, containerPath string) bool {
	p := filepath.Clean(containerPath)
	for _, m := range mounts {
		if filepath.Clean(m.ContainerPath) == p {
			return true
		}
	}
	return false
}
