package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/volumes"
)

// Device is one CRI device request: the host node (or a directory of nodes) to expose at
// ContainerPath with cgroup Permissions ("rwm" or a subset; empty means "rwm").
type Device struct {
	ContainerPath string
	HostPath      string
	Permissions   string
}

// errNotDevice marks a path that is not a block or character device.
var errNotDevice = errors.New("not a device node")

// DeviceFromPath describes the device node at path (not following a symlink) as it should
// appear at containerPath.
func DeviceFromPath(path, containerPath string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return specs.LinuxDevice{}, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, fmt.Errorf("%s: %w", path, errNotDevice)
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path:     containerPath,
		Type:     typ,
		Major:    int64(unix.Major(uint64(st.Rdev))),
		Minor:    int64(unix.Minor(uint64(st.Rdev))),
		FileMode: &mode,
		UID:      &uid,
		GID:      &gid,
	}, nil
}

// HostDevices lists every device node under dir (the host's /dev for a privileged
// container), skipping what runc skips: the pts, shm, fd and mqueue directories, LXC/LXD and
// udev private directories, /dev/console, symlinks, fifos and anything that is not a node.
func HostDevices(dir string) ([]specs.LinuxDevice, error) {
	return walkDevices(dir, dir)
}

func walkDevices(dir, containerDir string) ([]specs.LinuxDevice, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var out []specs.LinuxDevice
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		cpath := filepath.Join(containerDir, e.Name())
		switch {
		case e.IsDir():
			switch e.Name() {
			case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
				continue
			}
			sub, err := walkDevices(path, cpath)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		case e.Name() == "console":
			continue
		}
		d, err := DeviceFromPath(path, cpath)
		if err != nil {
			if errors.Is(err, errNotDevice) || errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// ResolveDevices turns CRI device requests into device nodes and their cgroup allow rules.
// A host path is followed if it is a symlink (never into the daemon's own /proc entries:
// ErrInvalidArgument); a directory exposes every node below it at the
// same relative path under ContainerPath. A missing host path is ErrNotFound, a path that is
// not a device (or a directory of them) or bad permissions ErrInvalidArgument.
func ResolveDevices(reqs []Device) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	var devs []specs.LinuxDevice
	var rules []specs.LinuxDeviceCgroup
	for _, r := range reqs {
		perms := r.Permissions
		if perms == "" {
			perms = "rwm"
		}
		if strings.Trim(perms, "rwm") != "" {
			return nil, nil, fmt.Errorf("device %s: permissions %q are not a subset of rwm: %w", r.HostPath, r.Permissions, errdefs.ErrInvalidArgument)
		}
		if !filepath.IsAbs(r.ContainerPath) {
			return nil, nil, fmt.Errorf("device container path %q is not absolute: %w", r.ContainerPath, errdefs.ErrInvalidArgument)
		}
		// Resolved as a mount's host path is: never through the daemon's own /proc entries.
		host, err := volumes.ResolveHostPath(r.HostPath)
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				return nil, nil, fmt.Errorf("device %s does not exist: %w", r.HostPath, errdefs.ErrNotFound)
			}
			return nil, nil, fmt.Errorf("resolve device %s: %w", r.HostPath, err)
		}
		var found []specs.LinuxDevice
		if fi, err := os.Stat(host); err == nil && fi.IsDir() {
			if found, err = walkDevices(host, filepath.Clean(r.ContainerPath)); err != nil {
				return nil, nil, err
			}
		} else {
			d, err := DeviceFromPath(host, filepath.Clean(r.ContainerPath))
			if err != nil {
				if errors.Is(err, errNotDevice) {
					return nil, nil, fmt.Errorf("device %s is not a device node: %w", r.HostPath, errdefs.ErrInvalidArgument)
				}
				return nil, nil, err
			}
			found = []specs.LinuxDevice{d}
		}
		for _, d := range found {
			major, minor := d.Major, d.Minor
			devs = append(devs, d)
			rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Major: &major, Minor: &minor, Access: perms})
		}
	}
	return devs, rules, nil
}
