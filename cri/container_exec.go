package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/stream"
)

// Exec answers a one-time URL on the streaming server at which the client runs cmd in a
// running container with its stdin, stdout, stderr and terminal.
func (s *Server) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if s.opts.Streams == nil {
		return nil, fmt.Errorf("exec: no streaming server: %w", errdefs.ErrUnavailable)
	}
	if len(req.GetCmd()) == 0 {
		return nil, fmt.Errorf("exec needs a command: %w", errdefs.ErrInvalidArgument)
	}
	c, err := s.opts.Containers.CheckRunning(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	// The URL names the full id: a prefix could become ambiguous before it is used.
	url, err := s.opts.Streams.ExecURL(stream.ExecRequest{
		ContainerID: c.ID, Cmd: req.GetCmd(), Tty: req.GetTty(),
		Stdin: req.GetStdin(), Stdout: req.GetStdout(), Stderr: req.GetStderr(),
	})
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ExecResponse{Url: url}, nil
}
