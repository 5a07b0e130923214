package container

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/netns"
	"github.com/peapod-runtime/peapod/sandbox"
)

// ProbeUserNamespaces checks, once at the daemon's start, that this node can run pods in user
// namespaces of their own the way peapod does: a user namespace made and pinned, and an
// overlay of a layer idmapped through it, on the filesystem of dir (the daemon's root, where
// image layers live), showing a file of uid 0 as the mapped host id. Status advertises
// user_namespaces only when it passes. It leaves nothing behind.
func ProbeUserNamespaces(ctx context.Context, dir string) (retErr error) {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("probe user namespaces: %w", err)
	}
	// libcontainer reaches the rootfs by its path from inside the pod's user namespace, as a
	// host id that owns none of the directories on the way.
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("probe user namespaces: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("probe user namespaces: %s (mode %v) is not searchable by other users, so a pod's root could not reach its rootfs below it: %w", d, fi.Mode().Perm(), errdefs.ErrFailedPrecondition)
		}
		if d == "/" {
			break
		}
	}
	// A daemon killed in the middle of its probe left one behind.
	stale, _ := filepath.Glob(filepath.Join(dir, probePrefix+"*"))
	for _, d := range stale {
		_ = unix.Unmount(filepath.Join(d, "merged"), unix.MNT_DETACH)
		_ = netns.RemoveAll(filepath.Join(d, "ns"))
		_ = os.RemoveAll(d)
	}
	tmp, err := os.MkdirTemp(dir, probePrefix)
	if err != nil {
		return fmt.Errorf("probe user namespaces: %w", err)
	}
	defer func() {
		if err := os.RemoveAll(tmp); err != nil && retErr == nil {
			retErr = fmt.Errorf("probe user namespaces: clean up: %w", err)
		}
	}()
	const hostID = 1 << 30
	one := []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 1}}
	nsDir := filepath.Join(tmp, "ns")
	pins, err := netns.NewPinnedInUserNamespace(ctx, nsDir, "", netns.IDMapping{UIDs: one, GIDs: one})
	if err != nil {
		return fmt.Errorf("probe user namespaces: %w", err)
	}
	defer func() { _ = netns.RemoveAll(nsDir) }()
	lower, upper, work, merged := filepath.Join(tmp, "lower"), filepath.Join(tmp, "upper"), filepath.Join(tmp, "work"), filepath.Join(tmp, "merged")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("probe user namespaces: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(lower, "f"), nil, 0o644); err != nil {
		return fmt.Errorf("probe user namespaces: %w", err)
	}
	if err := mountIDMappedOverlay(merged, []string{lower}, upper, work, pins[netns.User], 0); err != nil {
		return fmt.Errorf("probe user namespaces: %w", err)
	}
	defer func() { _ = unix.Unmount(merged, unix.MNT_DETACH) }()
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(merged, "f"), &st); err != nil {
		return fmt.Errorf("probe user namespaces: %w", err)
	}
	if st.Uid != hostID || st.Gid != hostID {
		return fmt.Errorf("probe user namespaces: an idmapped layer shows uid 0 as %d:%d, not %d: %w", st.Uid, st.Gid, hostID, errdefs.ErrNotImplemented)
	}
	return nil
}

// podRootfs mounts a container's rootfs in dir for its pod: idmapped layers for a pod with a
// user namespace of its own (mountRootfsInUserNS), a plain overlay otherwise.
func podRootfs(pod sandbox.Sandbox, dir string, layers []string) (string, error) {
	if u := pod.Config.UserNamespace; u != nil && pod.UserNSPath != "" {
		uid, gid := u.RootIDs()
		return mountRootfsInUserNS(dir, layers, pod.UserNSPath, uid, gid)
	}
	return mountRootfs(dir, layers)
}

// probePrefix names the probe's scratch directories in the daemon's root.
const probePrefix = "userns-probe-"

// checkUserNamespace refuses a container whose userns_options contradict its pod's: every
// container of a pod shares the pod's user namespace, or the node's when the pod has none.
func checkUserNamespace(pod sandbox.Sandbox, req *UserNamespaceRequest) error {
	if req == nil {
		return nil
	}
	podNS := pod.Config.UserNamespace
	switch {
	case req.Node && podNS != nil:
		return fmt.Errorf("userns_options mode NODE, but pod %s has a user namespace of its own that its containers share: %w", pod.ID, errdefs.ErrInvalidArgument)
	case req.Mapping != nil && podNS == nil:
		return fmt.Errorf("userns_options mode POD, but pod %s uses the node's user namespace: %w", pod.ID, errdefs.ErrInvalidArgument)
	case req.Mapping != nil && !sameMapping(*req.Mapping, *podNS):
		return fmt.Errorf("userns_options mappings differ from those of pod %s, whose user namespace its containers share: %w", pod.ID, errdefs.ErrInvalidArgument)
	}
	return nil
}

func sameMapping(a, b netns.IDMapping) bool {
	return slices.Equal(a.UIDs, b.UIDs) && slices.Equal(a.GIDs, b.GIDs)
}
