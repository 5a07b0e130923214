package cgroups

import (
	"fmt"
	"maps"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// libResources converts OCI resources to the cgroup library's, for pod cgroups and updates.
// Device rules are skipped, as the kubelet does for pod cgroups: libcontainer enforces them
// per container, and an empty rule list would otherwise deny every device to the subtree.
// Block I/O, network and RDMA settings are not part of CRI and are ignored.
func libResources(res *specs.LinuxResources, v2 bool) (*cgroups.Resources, error) {
	out := &cgroups.Resources{SkipDevices: true, SkipFreezeOnSet: true}
	if res == nil {
		return out, nil
	}
	if c := res.CPU; c != nil {
		if c.Shares != nil {
			out.CpuShares = *c.Shares
			if v2 {
				out.CpuWeight = CPUSharesToWeight(*c.Shares)
			}
		}
		if c.Quota != nil {
			out.CpuQuota = *c.Quota
		}
		if c.Period != nil {
			out.CpuPeriod = *c.Period
		}
		out.CpuBurst = c.Burst
		if c.RealtimeRuntime != nil {
			out.CpuRtRuntime = *c.RealtimeRuntime
		}
		if c.RealtimePeriod != nil {
			out.CpuRtPeriod = *c.RealtimePeriod
		}
		out.CpusetCpus, out.CpusetMems = c.Cpus, c.Mems
		out.CPUIdle = c.Idle
	}
	if m := res.Memory; m != nil {
		if m.Limit != nil {
			out.Memory = *m.Limit
		}
		if m.Reservation != nil {
			out.MemoryReservation = *m.Reservation
		}
		if m.Swap != nil {
			out.MemorySwap = *m.Swap
		}
		out.MemorySwappiness = m.Swappiness
		if m.DisableOOMKiller != nil {
			out.OomKillDisable = *m.DisableOOMKiller
		}
	}
	if res.Pids != nil && res.Pids.Limit != nil {
		out.PidsLimit = res.Pids.Limit
	}
	for _, h := range res.HugepageLimits {
		out.HugetlbLimit = append(out.HugetlbLimit, &cgroups.HugepageLimit{Pagesize: h.Pagesize, Limit: h.Limit})
	}
	if len(res.Unified) > 0 {
		if !v2 {
			return nil, fmt.Errorf("unified resources %v need cgroup v2 and this host uses v1: %w", res.Unified, errdefs.ErrInvalidArgument)
		}
		out.Unified = maps.Clone(res.Unified)
	}
	return out, nil
}
