package spec

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func dests(ms []specs.Mount) (out []string) {
	for _, m := range ms {
		out = append(out, m.Destination)
	}
	return out
}

func TestDefault(t *testing.T) {
	s := Default()
	if got, want := dests(s.Mounts), []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"}; !slices.Equal(got, want) {
		t.Fatalf("mounts %v", got)
	}
	if !slices.Equal(s.Linux.MaskedPaths, DefaultMaskedPaths()) || len(s.Linux.MaskedPaths) != 11 {
		t.Fatalf("masked %v", s.Linux.MaskedPaths)
	}
	if !slices.Equal(s.Linux.ReadonlyPaths, []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}) {
		t.Fatalf("readonly %v", s.Linux.ReadonlyPaths)
	}
	if len(s.Linux.Namespaces) != 1 || s.Linux.Namespaces[0].Type != specs.MountNamespace {
		t.Fatalf("namespaces %v", s.Linux.Namespaces)
	}
	rules := s.Linux.Resources.Devices
	if rules[0].Allow || rules[0].Access != "rwm" || len(rules) != 9 {
		t.Fatalf("device rules %+v", rules)
	}
	for _, m := range s.Mounts {
		if (m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup") && !slices.Contains(m.Options, "ro") {
			t.Errorf("%s not read-only", m.Destination)
		}
	}
	// Two calls share nothing.
	a, b := Default(), Default()
	a.Mounts[0].Options[0] = "x"
	a.Process.Capabilities.Bounding[0] = "x"
	if b.Mounts[0].Options[0] == "x" || b.Process.Capabilities.Bounding[0] == "x" {
		t.Fatal("Default shares state between calls")
	}
}

func TestWithMounts(t *testing.T) {
	bind := func(dst string, opts ...string) specs.Mount {
		return specs.Mount{Destination: dst, Type: "bind", Source: "/src" + dst, Options: append([]string{"rbind"}, opts...)}
	}
	t.Run("override, sort, propagation", func(t *testing.T) {
		s, err := Build(nil, WithMounts(bind("/data/sub", "rslave"), bind("/dev/shm"), bind("/data"), bind("/a/b/c")))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/data", "/data/sub", "/dev/shm", "/a/b/c"}
		if got := dests(s.Mounts); !slices.Equal(got, want) {
			t.Fatalf("mounts %v\nwant %v", got, want)
		}
		if s.Linux.RootfsPropagation != "rslave" {
			t.Fatalf("rootfs propagation %q", s.Linux.RootfsPropagation)
		}
	})
	t.Run("rshared wins", func(t *testing.T) {
		s, _ := Build(nil, WithMounts(bind("/a", "rshared"), bind("/b", "rslave")))
		if s.Linux.RootfsPropagation != "rshared" {
			t.Fatalf("rootfs propagation %q", s.Linux.RootfsPropagation)
		}
	})
	t.Run("a /dev mount drops the defaults below it", func(t *testing.T) {
		s, _ := Build(nil, WithMounts(bind("/dev")))
		want := []string{"/proc", "/sys", "/sys/fs/cgroup", "/dev"}
		if got := dests(s.Mounts); !slices.Equal(got, want) {
			t.Fatalf("mounts %v", got)
		}
	})
	t.Run("relative destination", func(t *testing.T) {
		if _, err := Build(nil, WithMounts(bind("data"))); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestWithResourcesKeepsDeviceRules(t *testing.T) {
	limit := int64(209715200)
	major := int64(10)
	s, err := Build(nil, WithResources(&specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: &limit},
		Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Major: &major, Access: "r"}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	r := s.Linux.Resources
	if *r.Memory.Limit != limit || len(r.Devices) != 10 || r.Devices[0].Allow || *r.Devices[9].Major != 10 {
		t.Fatalf("resources %+v", r)
	}
	if s2, _ := Build(nil, WithResources(nil)); len(s2.Linux.Resources.Devices) != 9 {
		t.Fatal("nil resources dropped the device rules")
	}
}

func TestSmallOptions(t *testing.T) {
	s, err := Build(nil,
		WithRlimits(specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: 10, Soft: 10}),
		WithRlimits(specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: 20000, Soft: 20000}),
		WithOOMScoreAdj(-998),
		WithEnv("A=1", "PATH=/x", "B"),
		WithCwd("/w"),
		WithHostname("h"),
		WithReadonlyRootfs(true),
		WithNoNewPrivs(true),
		WithAnnotations(map[string]string{"k": "v"}),
		WithSysctls(map[string]string{"net.ipv4.ip_forward": "1"}),
		WithCgroupsPath("/peapod/pod1/c1"),
		WithMaskedPaths(nil),
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Process.Rlimits) != 1 || s.Process.Rlimits[0].Hard != 20000 {
		t.Errorf("rlimits %+v", s.Process.Rlimits)
	}
	if *s.Process.OOMScoreAdj != -998 || s.Process.Cwd != "/w" || s.Hostname != "h" || !s.Root.Readonly || !s.Process.NoNewPrivileges {
		t.Errorf("process %+v root %+v", s.Process, s.Root)
	}
	if !slices.Equal(s.Process.Env, []string{"PATH=/x", "A=1", "B="}) {
		t.Errorf("env %q", s.Process.Env)
	}
	if s.Annotations["k"] != "v" || s.Linux.Sysctl["net.ipv4.ip_forward"] != "1" || s.Linux.CgroupsPath != "/peapod/pod1/c1" || s.Linux.MaskedPaths != nil {
		t.Errorf("linux %+v", s.Linux)
	}
	for _, bad := range []Opt{
		WithOOMScoreAdj(1001), WithCwd("rel"),
		WithRlimits(specs.POSIXRlimit{Type: "NOFILE"}),
		WithRlimits(specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: 2, Hard: 1}),
	} {
		if _, err := Build(nil, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("err = %v", err)
		}
	}
}

func TestWithPrivileged(t *testing.T) {
	devs := []specs.LinuxDevice{{Path: "/dev/loop0", Type: "b", Major: 7}, {Path: "/dev/null", Type: "c", Major: 1, Minor: 3}}
	s, err := Build(nil, WithPrivileged(thisVMCaps(), devs))
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
		t.Fatalf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	for _, m := range s.Mounts {
		if (m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup") && (slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "rw")) {
			t.Errorf("%s options %v", m.Destination, m.Options)
		}
	}
	if !slices.Equal(s.Process.Capabilities.Bounding, thisVMCaps()) {
		t.Fatalf("caps %v", s.Process.Capabilities.Bounding)
	}
	if r := s.Linux.Resources.Devices; len(r) != 1 || !r[0].Allow || r[0].Type != "" {
		t.Fatalf("device rules %+v", r)
	}
	var paths []string
	for _, d := range s.Linux.Devices {
		paths = append(paths, d.Path)
	}
	nulls := slices.DeleteFunc(slices.Clone(paths), func(p string) bool { return p != "/dev/null" })
	if !slices.Contains(paths, "/dev/loop0") || len(nulls) != 1 {
		t.Fatalf("devices %v", paths)
	}
	// Default() itself is untouched by a privileged build.
	if d := Default(); len(d.Linux.MaskedPaths) == 0 || !slices.Contains(d.Mounts[5].Options, "ro") {
		t.Fatal("privileged build changed the defaults")
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}
}
