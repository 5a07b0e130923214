package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdateContainerResources changes a running container's cgroup limits live. The fields the
// request sets replace the container's; ContainerStatus then reports the result. Invalid
// values are InvalidArgument and change nothing.
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	if req.GetContainerId() == "" {
		return nil, fmt.Errorf("container_id is required: %w", errdefs.ErrInvalidArgument)
	}
	if req.GetLinux() == nil {
		if req.GetWindows() != nil {
			return nil, fmt.Errorf("windows resources on a Linux node: %w", errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("linux resources are required: %w", errdefs.ErrInvalidArgument)
	}
	res, err := s.resources(req.GetLinux())
	if err != nil {
		return nil, fmt.Errorf("linux: %w", err)
	}
	if err := s.opts.Containers.UpdateResources(ctx, req.GetContainerId(), res); err != nil {
		return nil, err
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}
