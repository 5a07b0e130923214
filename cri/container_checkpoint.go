package cri

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maxCheckpointTimeout bounds the timeout a request may ask for.
const maxCheckpointTimeout = time.Hour

// CheckpointContainer writes a checkpoint of a running container (CRIU's images of its
// processes, its rootfs changes, its spec) to the tar archive at location, the path the
// kubelet's checkpoint API chose; the container keeps running. A timeout of 0 leaves the
// caller's deadline alone.
func (s *Server) CheckpointContainer(ctx context.Context, req *runtimeapi.CheckpointContainerRequest) (*runtimeapi.CheckpointContainerResponse, error) {
	if req.GetContainerId() == "" {
		return nil, fmt.Errorf("container_id is required: %w", errdefs.ErrInvalidArgument)
	}
	if req.GetLocation() == "" {
		return nil, fmt.Errorf("location is required: %w", errdefs.ErrInvalidArgument)
	}
	if t := req.GetTimeout(); t < 0 || time.Duration(t) > maxCheckpointTimeout/time.Second {
		return nil, fmt.Errorf("timeout %ds is outside 0..%v: %w", t, maxCheckpointTimeout, errdefs.ErrInvalidArgument)
	} else if t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Second)
		defer cancel()
	}
	if err := s.opts.Containers.Checkpoint(ctx, req.GetContainerId(), req.GetLocation()); err != nil {
		return nil, err
	}
	return &runtimeapi.CheckpointContainerResponse{}, nil
}
