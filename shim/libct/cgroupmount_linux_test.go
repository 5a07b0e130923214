package libct

import (
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer/configs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/internal/testutil"
	"github.com/peapod-runtime/peapod/shim/internal/shimtest"
)

func TestExpandCgroupV1Mount(t *testing.T) {
	cgroupMount := func() *configs.Mount {
		return &configs.Mount{Source: "cgroup", Device: "cgroup", Destination: "/sys/fs/cgroup", Flags: unix.MS_NOSUID | unix.MS_RDONLY}
	}
	proc := &configs.Mount{Source: "proc", Device: "proc", Destination: "/proc"}
	config := func(path string) *configs.Config {
		return &configs.Config{Cgroups: &cgroups.Cgroup{Path: path}, Mounts: []*configs.Mount{proc, cgroupMount()}}
	}

	c := config("/peapod/pod1/c1")
	expandCgroupV1Mount(c, []string{"cpu", "memory"})
	var got []string
	for _, m := range c.Mounts {
		got = append(got, strings.Join([]string{m.Device, m.Source, m.Destination, m.Data}, " "))
	}
	want := []string{
		"proc proc /proc ",
		"tmpfs tmpfs /sys/fs/cgroup mode=755",
		"bind /sys/fs/cgroup/cpu/peapod/pod1/c1 /sys/fs/cgroup/cpu ",
		"bind /sys/fs/cgroup/memory/peapod/pod1/c1 /sys/fs/cgroup/memory ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("mounts\n%q, want\n%q", got, want)
	}
	if f := c.Mounts[1].Flags; f != unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NODEV {
		t.Errorf("tmpfs flags %#x", f)
	}
	if f := c.Mounts[2].Flags; f != unix.MS_BIND|unix.MS_REC|unix.MS_NOSUID|unix.MS_RDONLY {
		t.Errorf("bind flags %#x: want the cgroup mount's, read-only", f)
	}

	// Left to libcontainer: no hierarchies known, a systemd or relative cgroup path, a cgroup
	// namespace of the container's own.
	for name, c := range map[string]*configs.Config{
		"no hierarchies": config("/peapod/pod1/c1"),
		"relative":       config("peapod/c1"),
		"systemd":        config("/peapod/pod1/c1"),
		"cgroupns":       config("/peapod/pod1/c1"),
	} {
		hs := []string{"memory"}
		switch name {
		case "no hierarchies":
			hs = nil
		case "systemd":
			c.Cgroups.Systemd = true
		case "cgroupns":
			c.Namespaces = configs.Namespaces{{Type: configs.NEWCGROUP}}
		}
		expandCgroupV1Mount(c, hs)
		if len(c.Mounts) != 2 || c.Mounts[1].Device != "cgroup" {
			t.Errorf("%s: mounts changed", name)
		}
	}
}

func TestFindV1Hierarchies(t *testing.T) {
	dir := t.TempDir()
	if got := findV1Hierarchies(dir); got != nil {
		t.Errorf("%s (not a tmpfs): %q", dir, got)
	}
	testutil.RequireCgroupV1(t)
	got := findV1Hierarchies(cgroupV1Root)
	if got == nil {
		t.Skip("SKIP-REASON: /sys/fs/cgroup here is not one tmpfs directory per hierarchy without co-mounts")
	}
	// Every hierarchy the kernel lists as enabled and mounted on its own is found.
	for _, h := range []string{"memory", "pids", "devices"} {
		if !slices.Contains(got, h) {
			t.Errorf("found %q, no %s", got, h)
		}
	}
	if slices.Contains(got, "unified") {
		t.Errorf("found %q: the v2 hierarchy is not one of libcontainer's v1 binds", got)
	}
}

// TestCgroupV1MountAsLibcontainers runs a container with the spec's cgroup mount twice, once
// expanded by us and once mounted by libcontainer, and checks that the container sees the same
// /sys/fs/cgroup: the same mounts (root, options, type), the same hierarchies and its own
// memory cgroup in it.
func TestCgroupV1MountAsLibcontainers(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCgroupV1(t)
	hierarchies := findV1Hierarchies(cgroupV1Root)
	if hierarchies == nil {
		t.Skip("SKIP-REASON: /sys/fs/cgroup here is not one tmpfs directory per hierarchy without co-mounts")
	}
	rt, rootfs, _, cg := newTestRuntime(t)
	ctx := context.Background()
	if !slices.Equal(rt.cgroupV1, hierarchies) {
		t.Fatalf("runtime's hierarchies %q, want %q", rt.cgroupV1, hierarchies)
	}
	// Mount root, mount point, options and what follows " - " (type, source, super options)
	// of every mount at or under /sys/fs/cgroup; then the container's memory limit.
	const script = `awk '$5 ~ /^\/sys\/fs\/cgroup/ { s = $0; sub(/.* - /, "", s); print $4, $5, $6, s }' /proc/self/mountinfo | sort
ls /sys/fs/cgroup
cat /sys/fs/cgroup/memory/memory.limit_in_bytes
if touch /sys/fs/cgroup/memory/x 2>/dev/null; then echo writable; fi`
	run := func(id string, hierarchies []string) string {
		t.Helper()
		rt.cgroupV1 = hierarchies
		s := shimtest.Spec(cg, id, "sh", "-c", script)
		s.Root.Path = rootfs
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}})
		limit := int64(64 << 20)
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
		outR, outW, _ := os.Pipe()
		defer outR.Close()
		c, err := rt.Create(ctx, id, s, Stdio{Stdout: outW, Stderr: outW})
		outW.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := c.Destroy(ctx); err != nil {
				t.Error(err)
			}
		}()
		expanded := !slices.ContainsFunc(c.c.Config().Mounts, func(m *configs.Mount) bool { return m.Device == "cgroup" })
		if expanded != (hierarchies != nil) {
			t.Errorf("%s: cgroup mount expanded %v, want %v", id, expanded, hierarchies != nil)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(outR)
		if ws := waitPid(t, c.Pid()); ws.ExitStatus() != 0 {
			t.Errorf("%s: exit %v, output %q", id, ws, out)
		}
		return strings.ReplaceAll(string(out), id, "ID")
	}
	ours := run("ours", hierarchies)
	theirs := run("theirs", nil)
	if ours != theirs {
		t.Errorf("container's view of /sys/fs/cgroup\nexpanded:\n%s\nby libcontainer:\n%s", ours, theirs)
	}
	t.Logf("container's view of /sys/fs/cgroup:\n%s", ours)
	if !strings.Contains(ours, " /sys/fs/cgroup/memory ro,") || !strings.Contains(ours, "67108864\n") || strings.Contains(ours, "writable") {
		t.Errorf("container's view of /sys/fs/cgroup:\n%s\nwant its own memory cgroup (limit 64 MiB), read-only", ours)
	}
}
