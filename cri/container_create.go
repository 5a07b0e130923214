package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CreateContainer makes a container in a ready pod from a pulled image. A retry of the same
// request gets the same container.
func (s *Server) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	cfg, err := s.containerConfig(req)
	if err != nil {
		return nil, err
	}
	c, err := s.opts.Containers.Create(ctx, req.GetPodSandboxId(), cfg)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: c.ID}, nil
}
