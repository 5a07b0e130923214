package critest

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// kubeletHugepageLimits is what a kubelet sends in every container's and pod's resources: a
// limit for each page size the node has ("2MB", "1GB", named as the kubelet names them), 0
// when the pod asks for none.
func kubeletHugepageLimits(t *testing.T) []*runtimeapi.HugepageLimit {
	t.Helper()
	entries, err := os.ReadDir("/sys/kernel/mm/hugepages")
	if err != nil {
		t.Skipf("this kernel reports no hugepage sizes (/sys/kernel/mm/hugepages: %v): a kubelet would send no hugepage limits", err)
	}
	var out []*runtimeapi.HugepageLimit
	for _, e := range entries {
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(e.Name(), "hugepages-"), "kB"), 10, 64)
		if err != nil {
			continue
		}
		name := strconv.FormatUint(kb>>10, 10) + "MB"
		if kb >= 1<<20 {
			name = strconv.FormatUint(kb>>20, 10) + "GB"
		}
		out = append(out, &runtimeapi.HugepageLimit{PageSize: name, Limit: 0})
	}
	if len(out) == 0 {
		t.Skip("this kernel reports no hugepage sizes under /sys/kernel/mm/hugepages: a kubelet would send no hugepage limits")
	}
	return out
}

// requireNoHugetlb skips where the host has a hugetlb controller: these tests are about
// nodes without one (this VM's cgroup v1 hybrid has none).
func requireNoHugetlb(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/hugetlb"); err == nil {
		t.Skip("this host has a v1 hugetlb hierarchy: the missing-controller path cannot be exercised")
	}
	if all, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil && strings.Contains(string(all), "hugetlb") {
		t.Skip("this host's cgroup v2 has the hugetlb controller: the missing-controller path cannot be exercised")
	}
}

// TestHugepageLimitsWithoutHugetlb: on a node without a hugetlb controller, the hugepage
// limits a kubelet sends with every pod are dropped, so that its containers run, can be
// resized, and their pods can be resized (a kubelet v1.36 got FailedPrecondition for every
// container here).
func TestHugepageLimitsWithoutHugetlb(t *testing.T) {
	framework.RequirePeapod(t)
	requireNoHugetlb(t)
	huge := kubeletHugepageLimits(t)
	p := newTestPod(t, "hugepages-dropped", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuShares: 2, HugepageLimits: huge}
	})
	ctx := framework.Context(t)

	id := p.run(t, withResources("kubelet-like", &runtimeapi.LinuxContainerResources{
		CpuShares: 2, OomScoreAdj: 1000, HugepageLimits: huge,
	}))
	if st := p.status(t, id); st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container with the kubelet's hugepage limits: state %v, want RUNNING", st.GetState())
	}
	if got := p.sh(t, id, "cat /sys/fs/cgroup/cpu/cpu.shares"); got != "2" {
		t.Errorf("cpu.shares %s, want 2: the rest of the resources must still apply", got)
	}
	if err := p.rt.UpdateContainerResources(ctx, id, &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{
		CpuShares: 64, HugepageLimits: huge,
	}}); err != nil {
		t.Errorf("UpdateContainerResources with the kubelet's hugepage limits: %v", err)
	} else if got := p.sh(t, id, "cat /sys/fs/cgroup/cpu/cpu.shares"); got != "64" {
		t.Errorf("cpu.shares after the update %s, want 64", got)
	}

	conn, err := grpc.NewClient(p.env.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := runtimeapi.NewRuntimeServiceClient(conn).UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{
		PodSandboxId: p.id,
		Resources:    &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 256 * mib, CpuShares: 512, HugepageLimits: huge},
	}); err != nil {
		t.Errorf("UpdatePodSandboxResources with the kubelet's hugepage limits: %v", err)
	}
}

// TestHugepageLimitsRefusedWhenNotTolerated: tolerate_missing_hugetlb_controller = false
// keeps the strict answer, FailedPrecondition naming the missing controller.
func TestHugepageLimitsRefusedWhenNotTolerated(t *testing.T) {
	framework.RequirePeapod(t)
	requireNoHugetlb(t)
	huge := kubeletHugepageLimits(t)
	d := framework.StartDaemon(t, framework.WithConfig("[runtime]\ntolerate_missing_hugetlb_controller = false\n"))
	c := framework.MustConnect(t, d.Endpoint())
	pod := newTestPodOn(t, &testPod{rt: c.Runtime, img: c.Image, daemon: d}, "hugepages-refused", nil)
	pod.refused(t, withResources("hugepages", &runtimeapi.LinuxContainerResources{HugepageLimits: huge}),
		codes.FailedPrecondition, "hugetlb")
}
