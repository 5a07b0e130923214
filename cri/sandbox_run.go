package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RunPodSandbox creates a pod's shell: namespaces, network, cgroup, files. A retry of the
// same config gets the same pod.
func (s *Server) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	cfg, err := s.sandboxConfig(req)
	if err != nil {
		return nil, err
	}
	sb, err := s.opts.Sandboxes.Run(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: sb.ID}, nil
}
