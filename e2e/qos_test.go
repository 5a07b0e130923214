package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// cgroupV1 is where this node's cgroup v1 controllers are mounted.
const cgroupV1 = "/sys/fs/cgroup"

// TestQoSCgroups: the three QoS classes land in the kubelet's tiers under /kubepods, and the
// container cgroups peapod makes there carry the limits the kubelet asked for, read from the
// node's cgroup filesystem.
func TestQoSCgroups(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	if _, err := os.Stat(filepath.Join(cgroupV1, "cpu", "kubepods")); err != nil {
		t.Skipf("needs cgroup v1 (this test reads /sys/fs/cgroup/cpu/kubepods): %v", err)
	}
	res := func(cpu, mem string) corev1.ResourceList {
		l := corev1.ResourceList{}
		if cpu != "" {
			l[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			l[corev1.ResourceMemory] = resource.MustParse(mem)
		}
		return l
	}
	const unlimited = "9223372036854771712"
	cases := []struct {
		name     string
		req, lim corev1.ResourceList
		class    corev1.PodQOSClass
		tier     string
		// cgroup file -> value, for the container's cgroup
		want map[string]string
	}{
		{"guaranteed", res("700m", "200Mi"), res("700m", "200Mi"), corev1.PodQOSGuaranteed, "",
			map[string]string{"cpu/cpu.cfs_quota_us": "70000", "cpu/cpu.cfs_period_us": "100000", "cpu/cpu.shares": "716", "memory/memory.limit_in_bytes": "209715200"}},
		{"burstable", res("200m", "64Mi"), res("", "128Mi"), corev1.PodQOSBurstable, "burstable",
			map[string]string{"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.shares": "204", "memory/memory.limit_in_bytes": "134217728"}},
		{"besteffort", nil, nil, corev1.PodQOSBestEffort, "besteffort",
			map[string]string{"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.shares": "2", "memory/memory.limit_in_bytes": unlimited}},
	}
	for _, c := range cases {
		ctr := shContainer("c", "exec sleep 3600")
		ctr.Resources = corev1.ResourceRequirements{Requests: c.req, Limits: c.lim}
		createPod(t, ns, podOf(c.name, ctr))
	}
	for _, c := range cases {
		p := waitPodReady(t, ns, c.name)
		if p.Status.QOSClass != c.class {
			t.Errorf("pod %s: QoS class %s, want %s", c.name, p.Status.QOSClass, c.class)
		}
		id, ok := strings.CutPrefix(p.Status.ContainerStatuses[0].ContainerID, "peapod://")
		if !ok {
			t.Fatalf("pod %s: container ID %q is not peapod's", c.name, p.Status.ContainerStatuses[0].ContainerID)
		}
		pod := filepath.Join("kubepods", c.tier, "pod"+string(p.UID))
		for file, want := range c.want {
			ctrl, name, _ := strings.Cut(file, "/")
			path := filepath.Join(cgroupV1, ctrl, pod, id, name)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("pod %s: %v", c.name, err)
				continue
			}
			if got := strings.TrimSpace(string(b)); got != want {
				t.Errorf("pod %s: %s = %s, want %s", c.name, path, got, want)
			}
		}
	}
}
