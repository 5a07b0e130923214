package stats

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/internal/testutil"
	"github.com/peapod-runtime/peapod/sandbox"
)

// kernelFixture is pods and running containers in real cgroups: what Refresh reads on a node.
type kernelFixture struct {
	mgr  *cgroups.Manager
	pods fakePods
	ctrs fakeContainers
}

// cgroupMounts returns every hierarchy a cgroup may exist in: each v1 controller mount (and
// the named and hybrid ones), or the single v2 mount.
func cgroupMounts(tb testing.TB) []string {
	tb.Helper()
	if cgroups.IsV2() {
		return []string{"/sys/fs/cgroup"}
	}
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		tb.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		dir := filepath.Join("/sys/fs/cgroup", e.Name())
		if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

// newKernelFixture starts nCtrs `sleep` processes spread over nPods pods, each in its own
// container cgroup below its pod's, under a tier root of its own; everything is removed when
// tb ends.
func newKernelFixture(tb testing.TB, nPods, nCtrs int) *kernelFixture {
	tb.Helper()
	testutil.RequireRoot(tb)
	sleep := testutil.RequireBinary(tb, "sleep")
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	root := "peapod_stats_test_" + hex.EncodeToString(b)
	mgr, err := cgroups.NewManager(cgroups.DriverCgroupfs, zap.NewNop(), cgroups.WithTierRoot(root))
	if err != nil {
		tb.Fatal(err)
	}
	f := &kernelFixture{mgr: mgr}
	mounts := cgroupMounts(tb)
	var cgs []string
	tb.Cleanup(func() {
		// Deepest first: containers, pods, then the tiers and the root.
		slices.SortFunc(cgs, func(a, b string) int { return len(b) - len(a) })
		for _, dir := range mounts {
			for _, p := range append(cgs, "/"+root+"/burstable", "/"+root+"/besteffort", "/"+root) {
				if err := os.Remove(filepath.Join(dir, p)); err != nil && !os.IsNotExist(err) {
					tb.Errorf("cleanup: %v", err)
				}
			}
		}
	})
	ctx := context.Background()
	for p := range nPods {
		uid := fmt.Sprintf("%s-%d", root, p)
		podPath, err := mgr.PodCgroupParent("", uid, cgroups.Burstable)
		if err != nil {
			tb.Fatal(err)
		}
		if err := mgr.CreatePod(ctx, podPath, cgroups.Burstable, nil); err != nil {
			tb.Fatal(err)
		}
		cgs = append(cgs, podPath)
		f.pods = append(f.pods, sandbox.Sandbox{ID: uid, State: sandbox.StateReady, CgroupParent: podPath})
	}
	for i := range nCtrs {
		pod := f.pods[i%nPods]
		id := fmt.Sprintf("ctr%d", i)
		p := pod.CgroupParent + "/" + id
		if err := mgr.CreatePod(ctx, p, cgroups.Burstable, nil); err != nil {
			tb.Fatal(err)
		}
		cgs = append(cgs, p)
		cmd := exec.Command(sleep, "3600")
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		for _, dir := range mounts {
			procs := filepath.Join(dir, p, "cgroup.procs")
			if _, err := os.Stat(procs); err != nil {
				continue
			}
			if err := os.WriteFile(procs, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
				tb.Fatalf("move %d into %s: %v", cmd.Process.Pid, procs, err)
			}
		}
		dir := tb.TempDir()
		upper := filepath.Join(dir, "upper")
		if err := os.MkdirAll(filepath.Join(upper, "etc"), 0o755); err != nil {
			tb.Fatal(err)
		}
		for n := range 5 {
			if err := os.WriteFile(filepath.Join(upper, "etc", strconv.Itoa(n)), make([]byte, 4096), 0o644); err != nil {
				tb.Fatal(err)
			}
		}
		f.ctrs = append(f.ctrs, container.Container{
			ID: id, PodID: pod.ID, State: container.StateRunning, CgroupPath: p, Dir: dir,
			Pid: cmd.Process.Pid, StartedAt: time.Now(),
		})
	}
	return f
}

func (f *kernelFixture) collector(tb testing.TB, diskInterval time.Duration) *Collector {
	tb.Helper()
	c, err := New(Options{Containers: f.ctrs, Sandboxes: f.pods, Cgroups: f.mgr, DiskInterval: diskInterval})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// BenchmarkRefresh50 is one background pass over 10 pods and 50 running containers in real
// cgroups, as every Interval (2 s) on a node: the writable layers are not walked (that
// happens every DiskInterval).
func BenchmarkRefresh50(b *testing.B) {
	f := newKernelFixture(b, 10, 50)
	c := f.collector(b, time.Hour)
	ctx := context.Background()
	c.Refresh(ctx)
	defer reportCPU(b)()
	for b.Loop() {
		c.Refresh(ctx)
	}
}

// BenchmarkRefresh50Disk is a pass that also walks every writable layer (every DiskInterval,
// 5 s, on a node).
func BenchmarkRefresh50Disk(b *testing.B) {
	f := newKernelFixture(b, 10, 50)
	c := f.collector(b, time.Nanosecond)
	ctx := context.Background()
	defer reportCPU(b)()
	for b.Loop() {
		c.Refresh(ctx)
	}
}

// reportCPU adds the process's cpu time (user and system) per op to b's results: on a
// shared machine it varies less than the wall time.
func reportCPU(b *testing.B) func() {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	return func() {
		b.ReportMetric(float64((cpu()-start).Microseconds())/float64(b.N), "cpu-µs/op")
	}
}

// TestRefreshKernel: a pass over real cgroups reads each running container's process, its
// descriptors and open-files limit, its pids limit, and its writable layer's filesystem.
func TestRefreshKernel(t *testing.T) {
	f := newKernelFixture(t, 1, 2)
	c := f.collector(t, time.Hour)
	c.Refresh(t.Context())
	for _, ct := range f.ctrs {
		s, ok := c.Container(ct.ID)
		if !ok || s.At.IsZero() {
			t.Fatalf("%s not sampled: %+v", ct.ID, s)
		}
		if !slices.Equal(s.Cgroup.Procs, []int{ct.Pid}) || s.Cgroup.Pids != 1 {
			t.Errorf("%s procs %v, pids %d; want [%d]", ct.ID, s.Cgroup.Procs, s.Cgroup.Pids, ct.Pid)
		}
		// sleep holds stdin, stdout and stderr (the test's /dev/null).
		if p := s.Processes; p == nil || p.Count != 1 || p.FDs < 3 || !p.HasMaxOpenFiles || p.MaxOpenFiles == 0 {
			t.Errorf("%s processes %+v", ct.ID, p)
		}
		d := s.Disk
		if d == nil || d.UsedBytes < 5*4096 || d.Inodes != 7 || d.Device == "" || d.CapacityBytes == 0 || d.InodesTotal < d.InodesFree {
			t.Fatalf("%s disk %+v", ct.ID, d)
		}
		t.Logf("%s: writable layer on %s (%d:%d), %d of %d inodes free, io %+v", ct.ID, d.Device, d.Major, d.Minor, d.InodesFree, d.InodesTotal, s.IO)
	}
	// The sleeps use no cpu: the next pass finds every cgroup quiet by its cpu counter alone
	// and carries the samples forward.
	first := map[string]Container{}
	for _, ct := range f.ctrs {
		first[ct.ID], _ = c.Container(ct.ID)
	}
	c.Refresh(t.Context())
	for _, ct := range f.ctrs {
		s, _ := c.Container(ct.ID)
		if !s.fullAt.Equal(first[ct.ID].fullAt) || !s.At.After(first[ct.ID].At) || !s.CPU.HasRate || s.CPU.NanoCores != 0 {
			t.Errorf("%s read in full again though nothing in it ran (full reads at %v, then %v; cpu %+v)", ct.ID, first[ct.ID].fullAt, s.fullAt, s.CPU)
		}
	}
}
