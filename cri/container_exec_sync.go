package cri

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ExecSync runs a command in a running container and answers its output and exit code. A
// timeout kills what the command started and answers DeadlineExceeded.
func (s *Server) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	if req.GetTimeout() < 0 {
		return nil, fmt.Errorf("timeout %d must not be negative: %w", req.GetTimeout(), errdefs.ErrInvalidArgument)
	}
	timeout := time.Duration(req.GetTimeout()) * time.Second
	res, err := s.opts.Containers.ExecSync(ctx, req.GetContainerId(), req.GetCmd(), timeout)
	if err != nil {
		return nil, err
	}
	if res.TimedOut {
		return nil, fmt.Errorf("command %q timed out after %v: %w", req.GetCmd(), timeout, context.DeadlineExceeded)
	}
	stdout, stderr := fitExecOutput(res.Stdout, res.Stderr)
	return &runtimeapi.ExecSyncResponse{Stdout: stdout, Stderr: stderr, ExitCode: int32(res.ExitCode)}, nil
}

// maxExecResponse is the most output one ExecSync answer carries: the kubelet's CRI client
// refuses messages over 16 MiB, so the two streams (each already capped at 16 MiB by the
// shim) share that, less room for the message's framing and exit code.
const maxExecResponse = 16<<20 - 64

// fitExecOutput cuts stdout, then stderr, so that together they fit maxExecResponse.
func fitExecOutput(stdout, stderr []byte) ([]byte, []byte) {
	if len(stderr) > maxExecResponse {
		stderr = stderr[:maxExecResponse]
	}
	if room := maxExecResponse - len(stderr); len(stdout) > room {
		stdout = stdout[:room]
	}
	return stdout, stderr
}
