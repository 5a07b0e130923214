package cgroups

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/cgroups/systemd"
	"go.uber.org/zap/zaptest"

	"github.com/peapod-runtime/peapod/internal/testutil"
)

const hogEnv = "PEAPOD_CGROUPS_TEST_HOG"

func TestMain(m *testing.M) {
	if os.Getenv(hogEnv) == "1" {
		hog()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// hog waits for a byte on stdin (its parent moves it into a cgroup meanwhile), then touches
// memory until the OOM killer stops it.
func hog() {
	var b [1]byte
	_, _ = os.Stdin.Read(b[:])
	var keep [][]byte
	for range 1024 {
		chunk := make([]byte, 1<<20)
		for i := 0; i < len(chunk); i += 4096 {
			chunk[i] = 1
		}
		keep = append(keep, chunk)
	}
	_ = keep
}

func randHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// controllerDirs returns the mount of every hierarchy: each v1 controller (and the named and
// hybrid ones), or the single v2 mount.
func controllerDirs(t *testing.T) []string {
	t.Helper()
	if IsV2() {
		return []string{"/sys/fs/cgroup"}
	}
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		t.Fatal(err)
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

// testTierRoot returns a unique top-level cgroup name and removes it from every hierarchy
// when the test ends.
func testTierRoot(t *testing.T) string {
	t.Helper()
	root := "peapod_test_" + randHex(t)
	t.Cleanup(func() {
		for _, dir := range controllerDirs(t) {
			if err := cgroups.RemovePath(filepath.Join(dir, root)); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return root
}

// present lists the hierarchies in which the cgroup p exists.
func present(t *testing.T, p string) []string {
	t.Helper()
	var in []string
	for _, dir := range controllerDirs(t) {
		if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
			in = append(in, dir)
		}
	}
	return in
}

func cgroupFile(t *testing.T, controller, p, file string) string {
	t.Helper()
	dir := "/sys/fs/cgroup"
	if !IsV2() {
		dir = filepath.Join(dir, controller)
	}
	b, err := os.ReadFile(filepath.Join(dir, p, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func wantFile(t *testing.T, controller, p, file, want string) {
	t.Helper()
	if got := cgroupFile(t, controller, p, file); got != want {
		t.Errorf("%s %s/%s = %q, want %q", controller, p, file, got, want)
	}
}

func newTestManager(t *testing.T, root string) *Manager {
	t.Helper()
	m, err := NewManager(DriverCgroupfs, zaptest.NewLogger(t), WithTierRoot(root))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// enter moves pid into the cgroup p in every hierarchy where it exists, as libcontainer does.
func enter(t *testing.T, p string, pid int) {
	t.Helper()
	for _, dir := range present(t, p) {
		if err := cgroups.WriteCgroupProc(filepath.Join(dir, p), pid); err != nil {
			t.Fatalf("move %d into %s: %v", pid, dir, err)
		}
	}
}

func TestManagerV1(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCgroupV1(t)
	ctx := t.Context()
	root := testTierRoot(t)
	m := newTestManager(t, root)
	if m.IsV2() || m.Driver() != DriverCgroupfs {
		t.Fatalf("manager: v2=%v driver=%s", m.IsV2(), m.Driver())
	}

	gp, err := m.PodCgroupParent("", randHex(t), Guaranteed)
	if err != nil {
		t.Fatal(err)
	}
	res := guaranteed700m
	res.PidsLimit = 100
	for range 2 { // idempotent
		if err := m.CreatePod(ctx, gp, Guaranteed, res.ToSpec(false)); err != nil {
			t.Fatalf("CreatePod: %v", err)
		}
	}
	wantFile(t, "cpu", gp, "cpu.shares", "716")
	wantFile(t, "cpu", gp, "cpu.cfs_quota_us", "70000")
	wantFile(t, "cpu", gp, "cpu.cfs_period_us", "100000")
	wantFile(t, "memory", gp, "memory.limit_in_bytes", "209715200")
	wantFile(t, "pids", gp, "pids.max", "100")
	// cpuset was filled in from the parent, or no process could join.
	if cgroupFile(t, "cpuset", gp, "cpuset.cpus") == "" {
		t.Error("pod cpuset.cpus is empty")
	}
	// The tiers, with BestEffort at the minimum shares.
	wantFile(t, "cpu", "/"+root+"/besteffort", "cpu.shares", "2")
	wantFile(t, "cpu", "/"+root+"/burstable", "cpu.shares", "1024")

	bp, err := m.PodCgroupParent("", randHex(t), BestEffort)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CreatePod(ctx, bp, BestEffort, nil); err != nil {
		t.Fatalf("CreatePod besteffort: %v", err)
	}
	wantFile(t, "cpu", bp, "cpu.shares", "2")

	// Update changes only what it is given.
	upd := Resources{CPUPeriod: 100000, CPUQuota: 50000, MemoryLimitInBytes: 100 << 20}
	if err := m.Update(ctx, gp, upd.ToSpec(false)); err != nil {
		t.Fatalf("Update: %v", err)
	}
	wantFile(t, "cpu", gp, "cpu.cfs_quota_us", "50000")
	wantFile(t, "memory", gp, "memory.limit_in_bytes", strconv.Itoa(100<<20))
	wantFile(t, "cpu", gp, "cpu.shares", "716")
	if err := m.Update(ctx, gp+"x", upd.ToSpec(false)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Update of a missing cgroup: %v, want NotFound", err)
	}
	if err := m.Update(ctx, gp, Resources{Unified: map[string]string{"memory.high": "1"}}.ToSpec(true)); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Update with unified on v1: %v, want InvalidArgument", err)
	}

	if _, err := os.Stat("/sys/fs/cgroup/hugetlb"); errors.Is(err, os.ErrNotExist) && len(cgroups.HugePageSizes()) > 0 {
		huge := Resources{HugepageLimits: []HugepageLimit{{cgroups.HugePageSizes()[0], 0}}}
		if err := m.Update(ctx, gp, huge.ToSpec(false)); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("hugepage limits without a v1 hugetlb hierarchy: %v, want FailedPrecondition", err)
		}
	}

	st, err := m.Stats(gp, 0)
	if err != nil || st.Pids != 0 {
		t.Errorf("Stats of an empty pod = %+v, %v", st, err)
	}
	if killed, err := m.OOMKilled(gp); err != nil || killed {
		t.Errorf("OOMKilled of a fresh pod = %v, %v", killed, err)
	}

	// A container cgroup that libcontainer would have made below the pod (MkdirAll: the pod
	// has no devices cgroup of its own, device rules are per container).
	ctr, err := ContainerCgroupPath(m.Driver(), gp, "c0ffee")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"cpu", "memory", "devices"} {
		if err := os.MkdirAll(filepath.Join("/sys/fs/cgroup", c, ctr), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	for _, p := range []string{gp, bp} {
		for range 2 { // idempotent
			if err := m.RemovePod(ctx, p); err != nil {
				t.Fatalf("RemovePod(%s): %v", p, err)
			}
		}
		if in := present(t, p); len(in) > 0 {
			t.Errorf("pod cgroup %s left in %v", p, in)
		}
	}
	if _, err := m.Stats(gp, 0); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Stats of a removed pod: %v, want NotFound", err)
	}
	if _, err := m.OOMKilled(gp); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("OOMKilled of a removed pod: %v, want NotFound", err)
	}
	// The tiers stay, and are not pods.
	for _, tier := range m.tiers() {
		if len(present(t, tier)) == 0 {
			t.Errorf("tier %s was removed", tier)
		}
		if err := m.RemovePod(ctx, tier); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("RemovePod(tier %s): %v, want InvalidArgument", tier, err)
		}
	}
	for _, p := range []string{"/", "", "relative/pod", "/a/../b"} {
		if err := m.RemovePod(ctx, p); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("RemovePod(%q): %v, want InvalidArgument", p, err)
		}
	}
}

func TestManagerCallerParentLeavesTiersAlone(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCgroupV1(t)
	ours, kubelets := testTierRoot(t), testTierRoot(t)
	m := newTestManager(t, ours)
	p, err := m.PodCgroupParent("/"+kubelets+"/burstable/pod"+randHex(t), "", Burstable)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CreatePod(t.Context(), p, Burstable, Resources{CPUShares: 512}.ToSpec(false)); err != nil {
		t.Fatal(err)
	}
	wantFile(t, "cpu", p, "cpu.shares", "512")
	if in := present(t, "/"+ours); len(in) > 0 {
		t.Errorf("tier root created for a caller's parent: %v", in)
	}
	if err := m.RemovePod(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if len(present(t, "/"+kubelets+"/burstable")) == 0 {
		t.Error("the caller's parent was removed with the pod")
	}
}

func TestManagerProcesses(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCgroupV1(t)
	ctx := t.Context()
	m := newTestManager(t, testTierRoot(t))
	m.drain = 100 * time.Millisecond
	p, err := m.PodCgroupParent("", randHex(t), Burstable)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CreatePod(ctx, p, Burstable, nil); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testutil.RequireBinary(t, "sleep"), "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	enter(t, p, cmd.Process.Pid)

	pids, err := m.Pids(p)
	if err != nil || !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Errorf("Pids = %v, %v; want [%d]", pids, err, cmd.Process.Pid)
	}
	st, err := m.Stats(p, ExtraProcs|ExtraEvents|ExtraIO)
	if err != nil || st.Pids != 1 || !slices.Equal(st.Procs, []int{cmd.Process.Pid}) || st.OOMKills != 0 {
		t.Errorf("Stats = %+v, %v; want 1 pid, Procs [%d], no OOM kill", st, err, cmd.Process.Pid)
	}
	err = m.RemovePod(ctx, p)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("RemovePod with a process inside: %v, want FailedPrecondition naming pid %d", err, cmd.Process.Pid)
	}
	if len(present(t, p)) == 0 {
		t.Fatal("RemovePod removed a cgroup with a process inside")
	}

	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err := m.RemovePod(ctx, p); err != nil {
		t.Fatalf("RemovePod after the process exited: %v", err)
	}
	if in := present(t, p); len(in) > 0 {
		t.Errorf("pod cgroup left in %v", in)
	}
}

func TestManagerOOMKilled(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCgroupV1(t)
	ctx := t.Context()
	m := newTestManager(t, testTierRoot(t))
	limit := Resources{MemoryLimitInBytes: 32 << 20, MemorySwapLimitInBytes: 32 << 20}
	p, err := m.PodCgroupParent("", randHex(t), Burstable)
	if err != nil {
		t.Fatal(err)
	}
	calm, err := m.PodCgroupParent("", randHex(t), Burstable)
	if err != nil {
		t.Fatal(err)
	}
	for _, pod := range []string{p, calm} {
		if err := m.CreatePod(ctx, pod, Burstable, limit.ToSpec(false)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := m.RemovePod(ctx, pod); err != nil {
				t.Error(err)
			}
		})
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), hogEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// The hog runs in a container cgroup without a limit of its own; the pod's limit is hit.
	ctr, err := ContainerCgroupPath(m.Driver(), p, "hog")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join("/sys/fs/cgroup/memory", ctr), 0o755); err != nil {
		t.Fatal(err)
	}
	enter(t, ctr, cmd.Process.Pid)
	if _, err := io.WriteString(stdin, "go"); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("hog ended with %v, want SIGKILL from the OOM killer", err)
	}

	// The kill counts in the victim's cgroup (and on v2 its ancestors), not only where the
	// limit was hit.
	n, err := m.OOMKillCount(ctr)
	if err != nil || n < 1 {
		t.Errorf("OOMKillCount(container) = %d, %v; want at least 1", n, err)
	}
	if killed, err := m.OOMKilled(ctr); err != nil || !killed {
		t.Errorf("OOMKilled(container) = %v, %v; want true", killed, err)
	}
	if st, err := m.Stats(ctr, ExtraEvents); err != nil || st.OOMKills < 1 {
		t.Errorf("Stats(container).OOMKills = %d, %v; want at least 1", st.OOMKills, err)
	}
	// The pod's limit was hit: its peak shows it. (memory.failcnt may stay 0: with memsw
	// limited to the same 32 MiB the kernel fails the memsw charge first.)
	if st, err := m.Stats(p, ExtraEvents); err != nil || st.MemoryMaxUsageBytes < 30<<20 {
		t.Errorf("Stats(pod) max usage %d, %v; want about 32 MiB", st.MemoryMaxUsageBytes, err)
	} else {
		t.Logf("Stats(pod) failcnt %d, max usage %d", st.MemoryFailcnt, st.MemoryMaxUsageBytes)
	}
	n, err = m.OOMKillCount(p)
	t.Logf("OOMKillCount(pod) = %d, %v", n, err)
	if killed, err := m.OOMKilled(calm); err != nil || killed {
		t.Errorf("OOMKilled of the other pod = %v, %v; want false", killed, err)
	}
}

func TestManagerV2(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCgroupV2(t)
	ctx := t.Context()
	root := testTierRoot(t)
	m := newTestManager(t, root)
	gp, err := m.PodCgroupParent("", randHex(t), Guaranteed)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CreatePod(ctx, gp, Guaranteed, guaranteed700m.ToSpec(true)); err != nil {
		t.Fatalf("CreatePod: %v", err)
	}
	wantFile(t, "", gp, "cpu.max", "70000 100000")
	wantFile(t, "", gp, "cpu.weight", "28")
	wantFile(t, "", gp, "memory.max", "209715200")
	wantFile(t, "", "/"+root+"/besteffort", "cpu.weight", "1")
	for _, ctrl := range []string{"cpu", "memory", "pids"} {
		if !strings.Contains(cgroupFile(t, "", "/"+root, "cgroup.subtree_control"), ctrl) {
			t.Errorf("%s not delegated below /%s", ctrl, root)
		}
	}
	if err := m.Update(ctx, gp, Resources{CPUQuota: 50000, CPUPeriod: 100000}.ToSpec(true)); err != nil {
		t.Fatal(err)
	}
	wantFile(t, "", gp, "cpu.max", "50000 100000")
	if _, err := m.Stats(gp, 0); err != nil {
		t.Error(err)
	}
	if killed, err := m.OOMKilled(gp); err != nil || killed {
		t.Errorf("OOMKilled = %v, %v", killed, err)
	}
	for range 2 {
		if err := m.RemovePod(ctx, gp); err != nil {
			t.Fatal(err)
		}
	}
	if in := present(t, gp); len(in) > 0 {
		t.Errorf("pod cgroup left in %v", in)
	}
}

func TestNewManagerSystemdNeedsSystemd(t *testing.T) {
	if systemd.IsRunningSystemd() {
		t.Skip("SKIP-REASON: systemd runs on this host; this test covers hosts without it")
	}
	_, err := NewManager(DriverSystemd, zaptest.NewLogger(t))
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "systemd is not running") {
		t.Fatalf("NewManager(systemd) = %v, want FailedPrecondition saying systemd is not running", err)
	}
	t.Log(err)
}

func TestNewManagerArguments(t *testing.T) {
	if _, err := NewManager("cgroupfs2", nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("unknown driver: %v", err)
	}
	for _, root := range []string{"", "a/b", ".."} {
		if _, err := NewManager("", nil, WithTierRoot(root)); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("tier root %q: %v", root, err)
		}
	}
	m, err := NewManager("", nil)
	if err != nil || m.Driver() != DriverCgroupfs || m.root != DefaultTierRoot {
		t.Fatalf("default manager = %+v, %v", m, err)
	}
}

// TestV1PathsAreTheLibrarys checks the paths peapod computes for a v1 cgroup against the
// cgroup library's own, for managers that need the devices controller and for those that
// skip it.
func TestV1PathsAreTheLibrarys(t *testing.T) {
	testutil.RequireCgroupV1(t)
	m := newTestManager(t, "peapod_test_"+randHex(t))
	for _, p := range []string{"/", "/a", "/peapod/besteffort/pod" + randHex(t), "/kubepods/burstable/podx/ctr"} {
		for _, skip := range []bool{false, true} {
			lr := &cgroups.Resources{SkipDevices: skip}
			lib, err := manager.New(&cgroups.Cgroup{Path: p, Resources: lr})
			if err != nil {
				t.Fatalf("library manager for %s: %v", p, err)
			}
			ours, err := m.libManager(p, lr, false)
			if err != nil {
				t.Fatalf("libManager(%s): %v", p, err)
			}
			if want, got := lib.GetPaths(), ours.GetPaths(); !maps.Equal(got, want) {
				t.Errorf("%s (skip devices %v): paths\n%v\nwant the library's\n%v", p, skip, got, want)
			}
		}
	}
}

// TestManagerRemakesRemovedTiers: the tiers are made once per Manager, yet a besteffort tier
// removed behind its back comes back with its minimum cpu shares at the next pod.
func TestManagerRemakesRemovedTiers(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCgroupV1(t)
	ctx := t.Context()
	root := testTierRoot(t)
	m := newTestManager(t, root)
	tier := "/" + root + "/besteffort"
	for i := range 2 {
		p, err := m.PodCgroupParent("", randHex(t), BestEffort)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.CreatePod(ctx, p, BestEffort, nil); err != nil {
			t.Fatalf("CreatePod %d: %v", i, err)
		}
		wantFile(t, "cpu", tier, "cpu.shares", "2")
		if err := m.RemovePod(ctx, p); err != nil {
			t.Fatalf("RemovePod %d: %v", i, err)
		}
		for _, dir := range controllerDirs(t) {
			if err := cgroups.RemovePath(filepath.Join(dir, tier)); err != nil {
				t.Fatal(err)
			}
		}
	}
}
