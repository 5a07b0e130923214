package cri

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestSandboxConfigAddsTheOverhead: the kubelet sends a pod's linux.resources without the
// overhead and the overhead beside it; the pod cgroup is sized to both, as the kubelet sizes
// it itself. Without an overhead the resources are taken as sent.
func TestSandboxConfigAddsTheOverhead(t *testing.T) {
	s := New(Options{})
	req := func(res, overhead *runtimeapi.LinuxContainerResources) *runtimeapi.RunPodSandboxRequest {
		return &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
			Linux:    &runtimeapi.LinuxPodSandboxConfig{Resources: res, Overhead: overhead},
		}}
	}
	const mi = 1 << 20
	cfg, err := s.sandboxConfig(req(
		&runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 100 * mi, CpuPeriod: 100000, CpuQuota: 10000, CpuShares: 102},
		&runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 140 * mi, CpuQuota: 20000, CpuShares: 204}))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Resources; r == nil || r.MemoryLimitInBytes != 240*mi || r.CPUQuota != 30000 || r.CPUShares != 306 || r.CPUPeriod != 100000 {
		t.Errorf("pod resources %+v, want 240Mi, quota 30000 of 100000, shares 306", r)
	}
	if o := cfg.Overhead; o == nil || o.MemoryLimitInBytes != 140*mi {
		t.Errorf("pod overhead %+v, want it kept as sent", o)
	}
	cfg, err = s.sandboxConfig(req(&runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 100 * mi}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Resources; r == nil || r.MemoryLimitInBytes != 100*mi {
		t.Errorf("pod resources without overhead %+v, want 100Mi", r)
	}
}
