package critest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

const mib = 1 << 20

// withResources is a sleeper with resources.
func withResources(name string, r *runtimeapi.LinuxContainerResources) *runtimeapi.ContainerConfig {
	cfg := sleeper(name, framework.ImageBusybox, nil)
	cfg.Linux.Resources = r
	return cfg
}

// cgroupPath is the container's cgroup, from peapod's verbose ContainerStatus.
func (p *testPod) cgroupPath(t *testing.T, id string) string {
	t.Helper()
	st, err := p.rt.ContainerStatus(framework.Context(t), id, true)
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	var info struct {
		CgroupPath string `json:"cgroup_path"`
	}
	if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil || info.CgroupPath == "" {
		t.Fatalf("container info %q: %v", st.GetInfo()["info"], err)
	}
	return info.CgroupPath
}

// cgroupFiles are the v1 files the CRI resources land in.
var cgroupFiles = []string{
	"cpu/cpu.cfs_period_us", "cpu/cpu.cfs_quota_us", "cpu/cpu.shares",
	"memory/memory.limit_in_bytes", "memory/memory.memsw.limit_in_bytes",
	"cpuset/cpuset.cpus", "cpuset/cpuset.mems",
}

// readCgroup reads the container's cgroup files from inside (runc binds the container's own
// cgroup at /sys/fs/cgroup/<controller>) and, with a peapod this suite started, from the
// host at /sys/fs/cgroup/<controller>/<cgroup path>; both must agree.
func (p *testPod) readCgroup(t *testing.T, id string) map[string]string {
	t.Helper()
	var script strings.Builder
	for _, f := range cgroupFiles {
		fmt.Fprintf(&script, "echo %s=$(cat /sys/fs/cgroup/%s 2>/dev/null);", f, f)
	}
	out := map[string]string{}
	for line := range strings.Lines(p.sh(t, id, script.String())) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		out[k] = v
	}
	if p.daemon != nil {
		cg := p.cgroupPath(t, id)
		for _, f := range cgroupFiles {
			ctrl, file, _ := strings.Cut(f, "/")
			b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctrl, cg, file))
			if err != nil {
				if os.IsNotExist(err) && out[f] == "" {
					continue
				}
				t.Fatalf("host cgroup file: %v", err)
			}
			if host := strings.TrimSpace(string(b)); host != out[f] {
				t.Errorf("%s: %q on the host (%s), %q inside", f, host, cg, out[f])
			}
		}
	}
	return out
}

func checkCgroup(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func (p *testPod) statusResources(t *testing.T, id string) *runtimeapi.LinuxContainerResources {
	t.Helper()
	st, err := p.rt.ContainerStatus(framework.Context(t), id, false)
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	return st.GetStatus().GetResources().GetLinux()
}

func checkStatusResources(t *testing.T, got, want *runtimeapi.LinuxContainerResources) {
	t.Helper()
	if got.GetCpuPeriod() != want.CpuPeriod || got.GetCpuQuota() != want.CpuQuota || got.GetCpuShares() != want.CpuShares ||
		got.GetMemoryLimitInBytes() != want.MemoryLimitInBytes || got.GetMemorySwapLimitInBytes() != want.MemorySwapLimitInBytes ||
		got.GetCpusetCpus() != want.CpusetCpus || got.GetCpusetMems() != want.CpusetMems {
		t.Errorf("status resources %v, want %v", got, want)
	}
}

func requireCgroupV1(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.shares"); err != nil {
		t.Skip("SKIP-REASON: checks cgroup v1 files; this host has no v1 cpu controller at /sys/fs/cgroup/cpu")
	}
}

// TestResourcesLimitsAndUpdate: the requested limits are in the container's cgroup files and
// its status; UpdateContainerResources changes them live; invalid updates change nothing.
func TestResourcesLimitsAndUpdate(t *testing.T) {
	requireCgroupV1(t)
	pod := newTestPod(t, "resources", nil)
	ctx := framework.Context(t)
	req := &runtimeapi.LinuxContainerResources{
		CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512,
		MemoryLimitInBytes: 100 * mib, MemorySwapLimitInBytes: 150 * mib,
		CpusetCpus: "0", CpusetMems: "0", OomScoreAdj: 500,
	}
	id := pod.run(t, withResources("limited", req))
	checkCgroup(t, pod.readCgroup(t, id), map[string]string{
		"cpu/cpu.cfs_period_us": "100000", "cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.shares": "512",
		"memory/memory.limit_in_bytes": fmt.Sprint(100 * mib), "memory/memory.memsw.limit_in_bytes": fmt.Sprint(150 * mib),
		"cpuset/cpuset.cpus": "0", "cpuset/cpuset.mems": "0",
	})
	if got := pod.sh(t, id, "cat /proc/self/oom_score_adj"); got != "500" {
		t.Errorf("oom_score_adj %s, want 500", got)
	}
	checkStatusResources(t, pod.statusResources(t, id), req)

	upd := &runtimeapi.LinuxContainerResources{
		CpuPeriod: 200000, CpuQuota: 20000, CpuShares: 256,
		MemoryLimitInBytes: 200 * mib, MemorySwapLimitInBytes: 300 * mib, CpusetCpus: "0-1",
	}
	if err := pod.rt.UpdateContainerResources(ctx, id, &runtimeapi.ContainerResources{Linux: upd}); err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}
	want := map[string]string{
		"cpu/cpu.cfs_period_us": "200000", "cpu/cpu.cfs_quota_us": "20000", "cpu/cpu.shares": "256",
		"memory/memory.limit_in_bytes": fmt.Sprint(200 * mib), "memory/memory.memsw.limit_in_bytes": fmt.Sprint(300 * mib),
		"cpuset/cpuset.cpus": "0-1", "cpuset/cpuset.mems": "0",
	}
	checkCgroup(t, pod.readCgroup(t, id), want)
	wantStatus := &runtimeapi.LinuxContainerResources{CpuPeriod: 200000, CpuQuota: 20000, CpuShares: 256,
		MemoryLimitInBytes: 200 * mib, MemorySwapLimitInBytes: 300 * mib, CpusetCpus: "0-1", CpusetMems: "0"}
	checkStatusResources(t, pod.statusResources(t, id), wantStatus)

	// Lowering memory below the current memory+swap works too (the writes are ordered).
	down := &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 50 * mib, MemorySwapLimitInBytes: 50 * mib}
	if err := pod.rt.UpdateContainerResources(ctx, id, &runtimeapi.ContainerResources{Linux: down}); err != nil {
		t.Fatalf("UpdateContainerResources down: %v", err)
	}
	want["memory/memory.limit_in_bytes"], want["memory/memory.memsw.limit_in_bytes"] = fmt.Sprint(50*mib), fmt.Sprint(50*mib)
	checkCgroup(t, pod.readCgroup(t, id), want)
	wantStatus.MemoryLimitInBytes, wantStatus.MemorySwapLimitInBytes = 50*mib, 50*mib

	for _, bad := range []struct {
		name string
		r    *runtimeapi.LinuxContainerResources
	}{
		{"negative cpu quota", &runtimeapi.LinuxContainerResources{CpuQuota: -5}},
		{"memory below the minimum", &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 1 * mib}},
		{"cpu period out of range", &runtimeapi.LinuxContainerResources{CpuPeriod: 10, CpuShares: 100}},
		{"swap below memory", &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 100 * mib, MemorySwapLimitInBytes: 60 * mib}},
		{"bad cpuset", &runtimeapi.LinuxContainerResources{CpuQuota: 30000, CpusetCpus: "1-0"}},
	} {
		err := pod.rt.UpdateContainerResources(ctx, id, &runtimeapi.ContainerResources{Linux: bad.r})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("update with %s: %v (code %v), want InvalidArgument", bad.name, err, status.Code(err))
		}
	}
	checkCgroup(t, pod.readCgroup(t, id), want)
	checkStatusResources(t, pod.statusResources(t, id), wantStatus)

	err := pod.rt.UpdateContainerResources(ctx, "no-such-container", &runtimeapi.ContainerResources{Linux: upd})
	if status.Code(err) != codes.NotFound {
		t.Errorf("update of an unknown container: %v (code %v), want NotFound", err, status.Code(err))
	}
}

// TestResourcesRefused: invalid resources at creation are a clear error that leaves nothing
// behind (hugepage limits on a host without hugetlb: hugetlb_test.go).
func TestResourcesRefused(t *testing.T) {
	pod := newTestPod(t, "resources-refused", nil)
	pod.refused(t, withResources("negative-quota", &runtimeapi.LinuxContainerResources{CpuQuota: -5}), codes.InvalidArgument, "cpu_quota")
	pod.refused(t, withResources("tiny-memory", &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 1 * mib}), codes.InvalidArgument, "memory_limit_in_bytes")
	pod.refused(t, withResources("bad-shares", &runtimeapi.LinuxContainerResources{CpuShares: 1 << 20}), codes.InvalidArgument, "cpu_shares")
	pod.refused(t, withResources("bad-oom", &runtimeapi.LinuxContainerResources{OomScoreAdj: 5000}), codes.InvalidArgument, "oom_score_adj")
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		// cgroup v1: a cgroup v2 setting cannot be honoured.
		pod.refused(t, withResources("unified-on-v1", &runtimeapi.LinuxContainerResources{
			Unified: map[string]string{"memory.high": "100000000"}}), codes.InvalidArgument, "unified")
	}
}

// TestResourcesOOMKilled: a container exceeding its memory limit is killed and reported as
// EXITED, reason OOMKilled, exit code 137.
func TestResourcesOOMKilled(t *testing.T) {
	pod := newTestPod(t, "oom", nil)
	cfg := withResources("hog", &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 20 * mib, MemorySwapLimitInBytes: 20 * mib})
	cfg.Command = []string{"sh", "-c", "head -c 200m /dev/zero | tail"}
	id := pod.run(t, cfg)
	deadline := time.Now().Add(30 * time.Second)
	var st *runtimeapi.ContainerStatus
	for time.Now().Before(deadline) {
		resp, err := pod.rt.ContainerStatus(framework.Context(t), id, false)
		if err != nil {
			t.Fatalf("ContainerStatus: %v", err)
		}
		if st = resp.GetStatus(); st.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || st.GetReason() != "OOMKilled" || st.GetExitCode() != 137 {
		t.Errorf("memory hog: state %v reason %q exit code %d message %q, want EXITED OOMKilled 137",
			st.GetState(), st.GetReason(), st.GetExitCode(), st.GetMessage())
	}
	err := pod.rt.UpdateContainerResources(framework.Context(t), id,
		&runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 40 * mib}})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("update of an exited container: %v (code %v), want FailedPrecondition", err, status.Code(err))
	}
}

// TestResourcesPidsLimit: the node's configured pids limit is every container's pids.max.
func TestResourcesPidsLimit(t *testing.T) {
	framework.RequirePeapod(t)
	requireCgroupV1(t)
	d := framework.StartDaemon(t, framework.WithConfig("[runtime]\npids_limit = 77\n"))
	c := framework.MustConnect(t, d.Endpoint())
	pod := newTestPodOn(t, &testPod{rt: c.Runtime, img: c.Image, daemon: d}, "pids", nil)
	for _, tc := range []struct {
		name string
		r    *runtimeapi.LinuxContainerResources
	}{{"without resources", nil}, {"with resources", &runtimeapi.LinuxContainerResources{CpuShares: 100}}} {
		id := pod.run(t, withResources(strings.ReplaceAll(tc.name, " ", "-"), tc.r))
		if got := pod.sh(t, id, "cat /sys/fs/cgroup/pids/pids.max"); got != "77" {
			t.Errorf("%s: pids.max %s, want 77", tc.name, got)
		}
	}
}

// TestResourcesQoS: a pod's tier is fixed when it is created; containers with resources added
// later land below the pod's cgroup without moving it, and the tiers keep their settings.
func TestResourcesQoS(t *testing.T) {
	framework.RequirePeapod(t)
	requireCgroupV1(t)
	for _, tc := range []struct {
		name   string
		pod    *runtimeapi.LinuxContainerResources
		qos    string
		prefix string
	}{
		{"besteffort", nil, "BestEffort", "/peapod/besteffort/pod"},
		{"burstable", &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 200 * mib, CpuShares: 102}, "Burstable", "/peapod/burstable/pod"},
		{"guaranteed", &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 70000, CpuShares: 716, MemoryLimitInBytes: 200 * mib}, "Guaranteed", "/peapod/pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := newTestPod(t, "qos-"+tc.name, func(c *runtimeapi.PodSandboxConfig) { c.Linux.Resources = tc.pod })
			before := pod.info(t)
			if before.QoS != tc.qos || !strings.HasPrefix(before.CgroupParent, tc.prefix) {
				t.Fatalf("pod tier %s at %s, want %s below %s", before.QoS, before.CgroupParent, tc.qos, tc.prefix)
			}
			for i, r := range []*runtimeapi.LinuxContainerResources{
				{CpuPeriod: 100000, CpuQuota: 70000, CpuShares: 716, MemoryLimitInBytes: 200 * mib},
				{CpuShares: 2},
				nil,
			} {
				id := pod.run(t, withResources(fmt.Sprintf("c%d", i), r))
				if cg := pod.cgroupPath(t, id); filepath.Dir(cg) != before.CgroupParent {
					t.Errorf("container cgroup %s is not below the pod's %s", cg, before.CgroupParent)
				}
			}
			if after := pod.info(t); after != before {
				t.Errorf("pod moved: %+v, then %+v", before, after)
			}
			if b, err := os.ReadFile("/sys/fs/cgroup/cpu/peapod/besteffort/cpu.shares"); err != nil || strings.TrimSpace(string(b)) != "2" {
				t.Errorf("besteffort tier cpu.shares %q %v, want 2", b, err)
			}
		})
	}
}
