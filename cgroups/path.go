package cgroups

import (
	"fmt"
	"path"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups/systemd"
)

// The two cgroup drivers, as CRI's RuntimeConfig reports them.
const (
	DriverCgroupfs = "cgroupfs"
	DriverSystemd  = "systemd"
)

// DefaultTierRoot names peapod's own QoS tier tree: /peapod with the cgroupfs driver,
// peapod.slice with systemd.
const DefaultTierRoot = "peapod"

// containerScopePrefix makes a systemd container unit "peapod-<id>.scope".
const containerScopePrefix = "peapod"

// PodCgroupParent returns the cgroup path of a pod, relative to the cgroup mount (what
// Manager takes). A caller's CgroupParent (from a kubelet) is honoured exactly: with cgroupfs
// an absolute path such as /kubepods/burstable/pod<uid>, with systemd a slice name such as
// kubepods-burstable-pod<uid>.slice, expanded the way systemd nests slices
// (/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice).
// Without one the pod goes into peapod's tiers:
//
//	cgroupfs: /peapod/pod<uid>, /peapod/burstable/pod<uid>, /peapod/besteffort/pod<uid>
//	systemd:  /peapod.slice/peapod-pod<uid>.slice,
//	          /peapod.slice/peapod-burstable.slice/peapod-burstable-pod<uid>.slice, ...
//
// where systemd's uid has its dashes replaced by underscores, as the kubelet does ("-" is
// systemd's slice separator). driver "" means cgroupfs.
func PodCgroupParent(callerParent, podUID string, class QoSClass, driver string) (string, error) {
	return podCgroupPath(DefaultTierRoot, callerParent, podUID, class, driver)
}

func podCgroupPath(root, callerParent, podUID string, class QoSClass, driver string) (string, error) {
	driver, err := checkDriver(driver)
	if err != nil {
		return "", err
	}
	if callerParent != "" {
		return callerCgroupPath(callerParent, driver)
	}
	if podUID == "" || strings.ContainsAny(podUID, "/\x00") || podUID == "." || podUID == ".." {
		return "", fmt.Errorf("pod uid %q: cannot name a cgroup: %w", podUID, errdefs.ErrInvalidArgument)
	}
	if class < Guaranteed || class > BestEffort {
		return "", fmt.Errorf("qos class %d: %w", int(class), errdefs.ErrInvalidArgument)
	}
	if driver == DriverCgroupfs {
		return path.Join("/", root, class.tier(), "pod"+podUID), nil
	}
	prefix := root
	if t := class.tier(); t != "" {
		prefix += "-" + t
	}
	return expandSlice(prefix + "-pod" + strings.ReplaceAll(podUID, "-", "_") + ".slice")
}

// callerCgroupPath validates and expands a kubelet's CgroupParent.
func callerCgroupPath(parent, driver string) (string, error) {
	if driver == DriverSystemd {
		if !strings.HasSuffix(parent, ".slice") || strings.Contains(parent, "/") || parent == "-.slice" {
			return "", fmt.Errorf("cgroup parent %q: the systemd driver needs a slice name like kubepods-burstable-pod<uid>.slice: %w", parent, errdefs.ErrInvalidArgument)
		}
		return expandSlice(parent)
	}
	if err := checkCgroupPath(parent); err != nil {
		return "", fmt.Errorf("cgroup parent: %w", err)
	}
	return parent, nil
}

func expandSlice(slice string) (string, error) {
	p, err := systemd.ExpandSlice(slice)
	if err != nil {
		return "", fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return p, nil
}

// checkCgroupPath accepts clean absolute paths below the root: never the root itself, since
// removing a pod's cgroup removes its subtree.
func checkCgroupPath(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" || strings.Contains(p, "\x00") {
		return fmt.Errorf("cgroup path %q: must be a clean absolute path below the cgroup root: %w", p, errdefs.ErrInvalidArgument)
	}
	return nil
}

// ContainerCgroupsPath returns the OCI linux.cgroupsPath for a container of the pod whose
// cgroup is podPath (from PodCgroupParent). libcontainer creates that cgroup from it:
//
//	cgroupfs: /peapod/besteffort/pod<uid>/<container-id>
//	systemd:  <pod slice name>:peapod:<container-id>  (unit peapod-<container-id>.scope)
func ContainerCgroupsPath(driver, podPath, containerID string) (string, error) {
	driver, err := checkContainerCgroup(driver, podPath, containerID)
	if err != nil {
		return "", err
	}
	if driver == DriverSystemd {
		return path.Base(podPath) + ":" + containerScopePrefix + ":" + containerID, nil
	}
	return path.Join(podPath, containerID), nil
}

// ContainerCgroupPath returns where the container's cgroup is, relative to the cgroup mount,
// for Manager.Update and Manager.Stats: podPath/<id> with cgroupfs, and
// podPath/peapod-<id>.scope with systemd.
func ContainerCgroupPath(driver, podPath, containerID string) (string, error) {
	driver, err := checkContainerCgroup(driver, podPath, containerID)
	if err != nil {
		return "", err
	}
	if driver == DriverSystemd {
		return path.Join(podPath, containerScopePrefix+"-"+containerID+".scope"), nil
	}
	return path.Join(podPath, containerID), nil
}

func checkContainerCgroup(driver, podPath, containerID string) (string, error) {
	driver, err := checkDriver(driver)
	if err != nil {
		return "", err
	}
	if err := checkCgroupPath(podPath); err != nil {
		return "", err
	}
	if driver == DriverSystemd && !strings.HasSuffix(podPath, ".slice") {
		return "", fmt.Errorf("pod cgroup %q: the systemd driver needs a slice: %w", podPath, errdefs.ErrInvalidArgument)
	}
	if containerID == "" || strings.ContainsAny(containerID, "/:\x00") || containerID == "." || containerID == ".." {
		return "", fmt.Errorf("container id %q: cannot name a cgroup: %w", containerID, errdefs.ErrInvalidArgument)
	}
	return driver, nil
}

func checkDriver(driver string) (string, error) {
	switch driver {
	case "", DriverCgroupfs:
		return DriverCgroupfs, nil
	case DriverSystemd:
		return DriverSystemd, nil
	}
	return "", fmt.Errorf("cgroup driver %q: want %q or %q: %w", driver, DriverCgroupfs, DriverSystemd, errdefs.ErrInvalidArgument)
}
