package cri

import (
	"context"
	"errors"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/container"
)

// ContainerStatus answers from memory: it never waits behind a slow create, start or stop.
func (s *Server) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	c, err := s.opts.Containers.Get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	// The CRI's user is who the process is, which it may have changed itself since it was
	// started (the kubelet shows it in the pod's status). Reading it costs one read of
	// /proc; a process that has just exited keeps the identity it was started with.
	if c.State == container.StateRunning && c.Pid > 0 {
		if u, err := container.ProcessUser(c.Pid); err == nil {
			u.Username = c.User.Username
			c.User = u
		}
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
