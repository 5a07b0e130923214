// Package spec builds the OCI runtime spec of a container from what the CRI asked for and
// what the image declares. The spec is assembled from small option functions (Opt) applied
// to a default Linux spec, so every rule can be tested on the resulting *specs.Spec without
// a kernel; Generate is the one entry point that resolves a whole Input (process, user,
// capabilities, seccomp, AppArmor, namespaces, mounts, devices, resources) into a spec.
//
// It knows nothing of the CRI's Go types: Input mirrors the fields it needs, and the cri
// package converts. It imports volumes for mounts and never libcontainer.
package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Opt changes a spec. Options are applied in order; later ones see what earlier ones did.
type Opt func(*specs.Spec) error

// DefaultPath is the PATH a container gets when its image sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Build applies opts to base (Default() when nil) and returns it.
func Build(base *specs.Spec, opts ...Opt) (*specs.Spec, error) {
	if base == nil {
		base = Default()
	}
	for _, o := range opts {
		if err := o(base); err != nil {
			return nil, err
		}
	}
	return base, nil
}

// Default returns the spec every container starts from: a new mount namespace only (the
// others come from WithNamespaces), the standard kernel filesystems, the default devices
// and device cgroup rules, the runtime's default capabilities, and the default masked and
// read-only paths. Process args, user and rootfs are left for options.
func Default() *specs.Spec {
	caps := DefaultCapabilities()
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Cwd: "/",
			Env: []string{"PATH=" + DefaultPath},
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  slices.Clone(caps),
				Effective: slices.Clone(caps),
				Permitted: slices.Clone(caps),
			},
		},
		Mounts: DefaultMounts(),
		Linux: &specs.Linux{
			Namespaces:    []specs.LinuxNamespace{{Type: specs.MountNamespace}},
			Devices:       DefaultDevices(),
			Resources:     &specs.LinuxResources{Devices: defaultDeviceRules()},
			MaskedPaths:   DefaultMaskedPaths(),
			ReadonlyPaths: DefaultReadonlyPaths(),
		},
	}
}

// DefaultMounts are the kernel filesystems of a container. /dev/shm is a private tmpfs here;
// the pod's shared one replaces it through WithMounts.
func DefaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// DefaultMaskedPaths are hidden from unprivileged containers when the request names none.
func DefaultMaskedPaths() []string {
	return []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
}

// DefaultReadonlyPaths are read-only in unprivileged containers when the request names none.
func DefaultReadonlyPaths() []string {
	return []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
}

// DefaultDevices are the device nodes every container gets (runc adds them too; listing them
// keeps the spec self-describing). /dev/ptmx is runc's symlink to /dev/pts/ptmx.
func DefaultDevices() []specs.LinuxDevice {
	dev := func(path string, major, minor int64) specs.LinuxDevice {
		mode := os.FileMode(0o666)
		var zero uint32
		return specs.LinuxDevice{Path: path, Type: "c", Major: major, Minor: minor, FileMode: &mode, UID: &zero, GID: &zero}
	}
	return []specs.LinuxDevice{
		dev("/dev/null", 1, 3), dev("/dev/zero", 1, 5), dev("/dev/full", 1, 7),
		dev("/dev/random", 1, 8), dev("/dev/urandom", 1, 9), dev("/dev/tty", 5, 0),
	}
}

// defaultDeviceRules deny every device, then allow the default ones plus ptmx and the ptys.
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	allow := func(major, minor int64) specs.LinuxDeviceCgroup {
		r := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Access: "rwm"}
		if minor >= 0 {
			r.Minor = &minor
		}
		return r
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		allow(1, 3), allow(1, 5), allow(1, 7), allow(1, 8), allow(1, 9),
		allow(5, 0), allow(5, 2), allow(136, -1),
	}
}

// WithProcessArgs sets the process's argv.
func WithProcessArgs(args ...string) Opt {
	return func(s *specs.Spec) error {
		s.Process.Args = slices.Clone(args)
		return nil
	}
}

// WithEnv sets each KEY=VALUE, replacing an existing entry of the same key in place and
// appending new keys, so the order of first appearance is kept.
func WithEnv(env ...string) Opt {
	return func(s *specs.Spec) error {
		s.Process.Env = MergeEnv(s.Process.Env, env)
		return nil
	}
}

// WithCwd sets the working directory, which must be absolute.
func WithCwd(dir string) Opt {
	return func(s *specs.Spec) error {
		if !filepath.IsAbs(dir) {
			return invalid("working directory %q is not absolute", dir)
		}
		s.Process.Cwd = dir
		return nil
	}
}

// WithTerminal gives the process a pseudo-terminal.
func WithTerminal(tty bool) Opt {
	return func(s *specs.Spec) error {
		s.Process.Terminal = tty
		return nil
	}
}

// WithRootfs sets the root filesystem path and whether it is mounted read-only.
func WithRootfs(path string, readonly bool) Opt {
	return func(s *specs.Spec) error {
		s.Root = &specs.Root{Path: path, Readonly: readonly}
		return nil
	}
}

// WithReadonlyRootfs makes the root filesystem read-only.
func WithReadonlyRootfs(ro bool) Opt {
	return func(s *specs.Spec) error {
		if s.Root == nil {
			s.Root = &specs.Root{}
		}
		s.Root.Readonly = ro
		return nil
	}
}

// WithNoNewPrivs sets no_new_privs: execve never grants privileges (setuid bits, file caps).
func WithNoNewPrivs(on bool) Opt {
	return func(s *specs.Spec) error {
		s.Process.NoNewPrivileges = on
		return nil
	}
}

// WithHostname sets the hostname runc writes into the container's own UTS namespace. Only use
// it with a new UTS namespace: a joined one (the pod's) has its name already.
func WithHostname(name string) Opt {
	return func(s *specs.Spec) error {
		s.Hostname = name
		return nil
	}
}

// WithCgroupsPath sets the container's cgroup (cgroupfs path or systemd slice:prefix:name).
func WithCgroupsPath(path string) Opt {
	return func(s *specs.Spec) error {
		s.Linux.CgroupsPath = path
		return nil
	}
}

// WithAnnotations adds annotations.
func WithAnnotations(a map[string]string) Opt {
	return func(s *specs.Spec) error {
		if len(a) == 0 {
			return nil
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		for k, v := range a {
			s.Annotations[k] = v
		}
		return nil
	}
}

// WithSysctls adds namespaced sysctls.
func WithSysctls(sysctls map[string]string) Opt {
	return func(s *specs.Spec) error {
		if len(sysctls) == 0 {
			return nil
		}
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = map[string]string{}
		}
		for k, v := range sysctls {
			s.Linux.Sysctl[k] = v
		}
		return nil
	}
}

// WithOOMScoreAdj sets the process's oom_score_adj (-1000..1000).
func WithOOMScoreAdj(v int) Opt {
	return func(s *specs.Spec) error {
		if v < -1000 || v > 1000 {
			return invalid("oom_score_adj %d is outside -1000..1000", v)
		}
		s.Process.OOMScoreAdj = &v
		return nil
	}
}

// WithRlimits sets each rlimit, replacing one of the same type.
func WithRlimits(limits ...specs.POSIXRlimit) Opt {
	return func(s *specs.Spec) error {
		for _, l := range limits {
			if !strings.HasPrefix(l.Type, "RLIMIT_") {
				return invalid("rlimit type %q", l.Type)
			}
			if l.Soft > l.Hard {
				return invalid("rlimit %s soft %d above hard %d", l.Type, l.Soft, l.Hard)
			}
			s.Process.Rlimits = slices.DeleteFunc(s.Process.Rlimits, func(r specs.POSIXRlimit) bool { return r.Type == l.Type })
			s.Process.Rlimits = append(s.Process.Rlimits, l)
		}
		return nil
	}
}

// WithMaskedPaths replaces the masked paths (nil unmasks everything).
func WithMaskedPaths(paths []string) Opt {
	return func(s *specs.Spec) error {
		s.Linux.MaskedPaths = slices.Clone(paths)
		return nil
	}
}

// WithReadonlyPaths replaces the read-only paths (nil makes none read-only).
func WithReadonlyPaths(paths []string) Opt {
	return func(s *specs.Spec) error {
		s.Linux.ReadonlyPaths = slices.Clone(paths)
		return nil
	}
}

// WithResources sets the cgroup limits, already in OCI form (the cgroups package converts
// the CRI's). Device rules already in the spec stay in front of the given ones, so the
// default deny-and-allow list survives.
func WithResources(r *specs.LinuxResources) Opt {
	return func(s *specs.Spec) error {
		if r == nil {
			return nil
		}
		res := *r
		var devices []specs.LinuxDeviceCgroup
		if s.Linux.Resources != nil {
			devices = s.Linux.Resources.Devices
		}
		res.Devices = append(slices.Clone(devices), r.Devices...)
		s.Linux.Resources = &res
		return nil
	}
}

// WithMounts adds mounts. One at the destination of a mount already in the spec replaces it
// (a CRI mount at /dev/shm replaces the default tmpfs); a mount of /dev drops the defaults
// below /dev. The added mounts go after the ones kept, sorted so that parents are mounted
// before their children. An rshared or rslave mount makes the rootfs propagation follow, or
// events would stop at the container's root.
func WithMounts(mounts ...specs.Mount) Opt {
	return func(s *specs.Spec) error {
		dests := map[string]bool{}
		for _, m := range mounts {
			if !filepath.IsAbs(m.Destination) {
				return invalid("mount destination %q is not absolute", m.Destination)
			}
			dests[filepath.Clean(m.Destination)] = true
		}
		kept := s.Mounts[:0:0]
		for _, m := range s.Mounts {
			dst := filepath.Clean(m.Destination)
			if dests[dst] || (dests["/dev"] && strings.HasPrefix(dst, "/dev/")) {
				continue
			}
			kept = append(kept, m)
		}
		added := slices.Clone(mounts)
		slices.SortStableFunc(added, func(a, b specs.Mount) int {
			return depth(a.Destination) - depth(b.Destination)
		})
		s.Mounts = append(kept, added...)
		for _, m := range added {
			for _, o := range m.Options {
				switch {
				case o == "rshared" || o == "shared":
					s.Linux.RootfsPropagation = "rshared"
				case (o == "rslave" || o == "slave") && s.Linux.RootfsPropagation != "rshared":
					s.Linux.RootfsPropagation = "rslave"
				}
			}
		}
		return nil
	}
}

func depth(p string) int {
	p = filepath.Clean(p)
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// WithDevices adds device nodes and their cgroup rules; a node at the path of one already in
// the spec replaces it.
func WithDevices(devices []specs.LinuxDevice, rules []specs.LinuxDeviceCgroup) Opt {
	return func(s *specs.Spec) error {
		for _, d := range devices {
			s.Linux.Devices = slices.DeleteFunc(s.Linux.Devices, func(e specs.LinuxDevice) bool { return e.Path == d.Path })
			s.Linux.Devices = append(s.Linux.Devices, d)
		}
		if len(rules) > 0 {
			if s.Linux.Resources == nil {
				s.Linux.Resources = &specs.LinuxResources{}
			}
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, rules...)
		}
		return nil
	}
}

// WithCapabilities sets the process's capability sets.
func WithCapabilities(c *specs.LinuxCapabilities) Opt {
	return func(s *specs.Spec) error {
		s.Process.Capabilities = c
		return nil
	}
}

// WithUser sets the process's uid, gid and supplementary groups.
func WithUser(uid, gid uint32, additionalGids []uint32) Opt {
	return func(s *specs.Spec) error {
		s.Process.User = specs.User{UID: uid, GID: gid, AdditionalGids: slices.Clone(additionalGids)}
		return nil
	}
}

// WithSeccomp sets the seccomp filter; nil means unconfined.
func WithSeccomp(sc *specs.LinuxSeccomp) Opt {
	return func(s *specs.Spec) error {
		s.Linux.Seccomp = sc
		return nil
	}
}

// WithApparmor sets the AppArmor profile name; empty means none.
func WithApparmor(profile string) Opt {
	return func(s *specs.Spec) error {
		s.Process.ApparmorProfile = profile
		return nil
	}
}

// WithPrivileged turns the spec into a privileged container's: every capability the daemon
// holds (hostCaps), every host device (hostDevices, from HostDevices) with an allow-all
// device rule, nothing masked or read-only, and /sys and /sys/fs/cgroup writable. Seccomp and
// AppArmor are the caller's to leave unset.
func WithPrivileged(hostCaps []string, hostDevices []specs.LinuxDevice) Opt {
	return func(s *specs.Spec) error {
		s.Process.Capabilities = &specs.LinuxCapabilities{
			Bounding:  slices.Clone(hostCaps),
			Effective: slices.Clone(hostCaps),
			Permitted: slices.Clone(hostCaps),
		}
		s.Linux.MaskedPaths = nil
		s.Linux.ReadonlyPaths = nil
		for i, m := range s.Mounts {
			if m.Type == "sysfs" || m.Type == "cgroup" || m.Type == "cgroup2" {
				s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
				s.Mounts[i].Options = append(s.Mounts[i].Options, "rw")
			}
		}
		if err := WithDevices(hostDevices, nil)(s); err != nil {
			return err
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		return nil
	}
}

// MergeEnv returns base with each KEY=VALUE of overrides applied: an existing key is
// replaced where it stands, a new key is appended. An entry without "=" is a key with an
// empty value.
func MergeEnv(base, overrides []string) []string {
	out := slices.Clone(base)
	index := make(map[string]int, len(out))
	for i, kv := range out {
		k, _, _ := strings.Cut(kv, "=")
		if _, dup := index[k]; !dup {
			index[k] = i
		}
	}
	for _, kv := range overrides {
		k, v, _ := strings.Cut(kv, "=")
		entry := k + "=" + v
		if i, ok := index[k]; ok {
			out[i] = entry
			continue
		}
		index[k] = len(out)
		out = append(out, entry)
	}
	return out
}

func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}
