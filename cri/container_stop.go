package cri

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StopContainer sends the stop signal, waits up to timeout seconds, then kills. Stopping an
// exited or unknown container succeeds, as the CRI requires.
func (s *Server) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	if req.GetTimeout() < 0 {
		return nil, fmt.Errorf("timeout %d must not be negative: %w", req.GetTimeout(), errdefs.ErrInvalidArgument)
	}
	err := s.opts.Containers.Stop(ctx, req.GetContainerId(), time.Duration(req.GetTimeout())*time.Second)
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	return &runtimeapi.StopContainerResponse{}, nil
}
