package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/cgroups"
)

// UpdatePodSandboxResources applies a pod-level resize to the pod cgroup: the containers'
// summed resources plus the pod overhead. Invalid values are InvalidArgument and change
// nothing; the pod's record then holds the new totals.
func (s *Server) UpdatePodSandboxResources(ctx context.Context, req *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, fmt.Errorf("pod_sandbox_id is required: %w", errdefs.ErrInvalidArgument)
	}
	if req.GetResources() == nil && req.GetOverhead() == nil {
		return nil, fmt.Errorf("resources or overhead is required: %w", errdefs.ErrInvalidArgument)
	}
	res, err := s.resources(req.GetResources())
	if err != nil {
		return nil, fmt.Errorf("resources: %w", err)
	}
	overhead, err := s.resources(req.GetOverhead())
	if err != nil {
		return nil, fmt.Errorf("overhead: %w", err)
	}
	total := podTotal(res, overhead)
	if err := total.Validate(); err != nil {
		return nil, fmt.Errorf("resources plus overhead: %w", err)
	}
	if err := s.opts.Sandboxes.UpdateResources(ctx, req.GetPodSandboxId(), total); err != nil {
		return nil, err
	}
	return &runtimeapi.UpdatePodSandboxResourcesResponse{}, nil
}

// podTotal is the pod cgroup's share: the containers' resources with the overhead added to
// the amounts (shares, quota, memory); the rest comes from resources, else from overhead.
func podTotal(res, overhead *cgroups.Resources) cgroups.Resources {
	switch {
	case res == nil:
		return *overhead
	case overhead == nil:
		return *res
	}
	out := *res
	if out.CPUShares > 0 && overhead.CPUShares > 0 {
		out.CPUShares = min(out.CPUShares+overhead.CPUShares, cgroups.MaxCPUShares)
	}
	if out.CPUQuota > 0 && overhead.CPUQuota > 0 {
		out.CPUQuota += overhead.CPUQuota
	}
	if out.MemoryLimitInBytes > 0 && overhead.MemoryLimitInBytes > 0 {
		out.MemoryLimitInBytes += overhead.MemoryLimitInBytes
	}
	return out
}
