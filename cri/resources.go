package cri

import (
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/cgroups"
)

// resources converts CRI resources into peapod's and validates them; nil stays nil.
func (s *Server) resources(r *runtimeapi.LinuxContainerResources) (*cgroups.Resources, error) {
	if r == nil {
		return nil, nil
	}
	out := &cgroups.Resources{
		CPUPeriod:              r.GetCpuPeriod(),
		CPUQuota:               r.GetCpuQuota(),
		CPUShares:              r.GetCpuShares(),
		MemoryLimitInBytes:     r.GetMemoryLimitInBytes(),
		OomScoreAdj:            r.GetOomScoreAdj(),
		CpusetCpus:             r.GetCpusetCpus(),
		CpusetMems:             r.GetCpusetMems(),
		Unified:                r.GetUnified(),
		MemorySwapLimitInBytes: r.GetMemorySwapLimitInBytes(),
	}
	for _, h := range r.GetHugepageLimits() {
		out.HugepageLimits = append(out.HugepageLimits, cgroups.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("resources: %w", err)
	}
	return out, nil
}

// criResources converts back for status answers.
func criResources(r *cgroups.Resources) *runtimeapi.LinuxContainerResources {
	if r == nil {
		return nil
	}
	out := &runtimeapi.LinuxContainerResources{
		CpuPeriod:              r.CPUPeriod,
		CpuQuota:               r.CPUQuota,
		CpuShares:              r.CPUShares,
		MemoryLimitInBytes:     r.MemoryLimitInBytes,
		OomScoreAdj:            r.OomScoreAdj,
		CpusetCpus:             r.CpusetCpus,
		CpusetMems:             r.CpusetMems,
		Unified:                r.Unified,
		MemorySwapLimitInBytes: r.MemorySwapLimitInBytes,
	}
	for _, h := range r.HugepageLimits {
		out.HugepageLimits = append(out.HugepageLimits, &runtimeapi.HugepageLimit{PageSize: h.PageSize, Limit: h.Limit})
	}
	return out
}
