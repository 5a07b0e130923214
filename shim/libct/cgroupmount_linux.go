package libct

import (
	"os"
	"path/filepath"
	"slices"

	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"
)

// cgroupV1Root is where a cgroup v1 host mounts its hierarchies, one directory each.
const cgroupV1Root = "/sys/fs/cgroup"

// joinedV1Hierarchies are the v1 hierarchies whose directory under cgroupV1Root libcontainer's
// cgroupfs manager places every container in (the cgroups library's v1 subsystems, the named
// systemd hierarchy and misc): for them, the container's own cgroup directory exists once the
// manager has applied it.
var joinedV1Hierarchies = []string{
	"blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory", "misc",
	"net_cls", "net_prio", "perf_event", "pids", "rdma", "systemd",
}

// findV1Hierarchies lists the cgroup v1 hierarchies mounted one directory each under root (a
// tmpfs), from statfs alone. It returns nil when the host is not laid out so (a cgroup v2
// host, no tmpfs, a co-mounted hierarchy such as cpu,cpuacct with its symlinks, a hierarchy
// libcontainer does not place containers in): the cgroup mount is then left to libcontainer.
func findV1Hierarchies(root string) []string {
	var fs unix.Statfs_t
	if unix.Statfs(root, &fs) != nil || fs.Type != unix.TMPFS_MAGIC {
		return nil
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			return nil // a symlink of a co-mounted hierarchy (cpu -> cpu,cpuacct) or a stray file
		}
		if unix.Statfs(filepath.Join(root, e.Name()), &fs) != nil {
			return nil
		}
		switch fs.Type {
		case unix.CGROUP2_SUPER_MAGIC:
			continue // the hybrid host's unified hierarchy: libcontainer binds only v1 ones
		case unix.CGROUP_SUPER_MAGIC:
		default:
			return nil
		}
		if !slices.Contains(joinedV1Hierarchies, e.Name()) {
			return nil
		}
		names = append(names, e.Name())
	}
	return names
}

// expandCgroupV1Mount replaces config's cgroup v1 mount (the spec's "cgroup" mount at
// /sys/fs/cgroup) with what libcontainer would mount for it: a tmpfs, and in it a read-only
// bind of the container's own cgroup directory of each hierarchy. libcontainer finds the
// hierarchies by reading the whole mount table inside the new mount namespace, a copy of the
// host's, whose length grows with every pod on the node (namespace pins, /dev/shm, rootfs
// overlays); here they are known in advance. Nothing is changed unless the container's
// cgroup is a cgroupfs path of its own hierarchy layout in every hierarchy (absolute, no
// systemd driver, no cgroup namespace) and hierarchies were found.
func expandCgroupV1Mount(config *configs.Config, hierarchies []string) {
	if len(hierarchies) == 0 || config.Cgroups == nil || config.Cgroups.Systemd ||
		!filepath.IsAbs(config.Cgroups.Path) || config.Namespaces.Contains(configs.NEWCGROUP) {
		return
	}
	i := slices.IndexFunc(config.Mounts, func(m *configs.Mount) bool { return m.Device == "cgroup" })
	if i < 0 {
		return
	}
	m := config.Mounts[i]
	mounts := []*configs.Mount{{
		Source:           "tmpfs",
		Device:           "tmpfs",
		Destination:      m.Destination,
		Flags:            unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV,
		Data:             "mode=755",
		PropagationFlags: m.PropagationFlags,
	}}
	for _, h := range hierarchies {
		mounts = append(mounts, &configs.Mount{
			Source:           filepath.Join(cgroupV1Root, h, config.Cgroups.Path),
			Device:           "bind",
			Destination:      filepath.Join(m.Destination, h),
			Flags:            unix.MS_BIND | unix.MS_REC | m.Flags,
			PropagationFlags: m.PropagationFlags,
		})
	}
	config.Mounts = slices.Replace(config.Mounts, i, i+1, mounts...)
}
