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
// (and crictl, which uses it) refuses messages over 16 MiB, so the two streams (each already
// capped at 16 MiB by the shim) share that, less room for the message's framing and exit
// code. Raising the server's send limit would not help: the client would refuse the answer.
const maxExecResponse = 16<<20 - 64

// fitExecOutput cuts the streams so that together they fit maxExecResponse, each stream
// bounded on its own: neither can crowd the other out. A stream within half the room keeps
// all of it and the other takes what is left; when both are larger, each keeps its first
// half of the room. Only the end of a stream is ever cut.
func fitExecOutput(stdout, stderr []byte) ([]byte, []byte) {
	if len(stdout)+len(stderr) <= maxExecResponse {
		return stdout, stderr
	}
	const half = maxExecResponse / 2
	switch {
	case len(stdout) <= half:
		stderr = stderr[:maxExecResponse-len(stdout)]
	case len(stderr) <= half:
		stdout = stdout[:maxExecResponse-len(stderr)]
	default:
		stdout, stderr = stdout[:half], stderr[:maxExecResponse-half]
	}
	return stdout, stderr
}
