package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/stream"
)

// Attach answers a one-time URL on the streaming server at which the client joins a running
// container's own stdio.
func (s *Server) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if s.opts.Streams == nil {
		return nil, fmt.Errorf("attach: no streaming server: %w", errdefs.ErrUnavailable)
	}
	c, err := s.opts.Containers.CheckRunning(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	url, err := s.opts.Streams.AttachURL(stream.AttachRequest{
		ContainerID: c.ID, Tty: req.GetTty(),
		Stdin: req.GetStdin(), Stdout: req.GetStdout(), Stderr: req.GetStderr(),
	})
	if err != nil {
		return nil, err
	}
	return &runtimeapi.AttachResponse{Url: url}, nil
}
