package cri

import (
	"context"
	"errors"

	"github.com/containerd/errdefs"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStatus answers from memory: it never waits behind a slow create, start or stop.
func (s *Server) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	c, err := s.opts.Containers.Get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if !req.GetVerbose() {
		return criContainerStatus(c, false, nil)
	}
	// Only verbose status reads the disk; a container still being made has no spec yet.
	spec, err := s.opts.Containers.Spec(c.ID)
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	return criContainerStatus(c, true, spec)
}
