package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/sandbox"
)

// ListPodSandboxStats lists the last sample of every ready pod matching the filter (id or
// prefix, labels), each with its containers' stats.
func (s *Server) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	list, err := s.listPodStats(req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: list}, nil
}

func (s *Server) listPodStats(f *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	if s.opts.Stats == nil {
		return nil, fmt.Errorf("stats are not collected: %w", errdefs.ErrUnavailable)
	}
	var out []*runtimeapi.PodSandboxStats
	for _, sb := range s.opts.Sandboxes.List(sandbox.Filter{ID: f.GetId(), State: sandbox.StateReady, LabelSelector: f.GetLabelSelector()}) {
		out = append(out, s.criPodStats(sb))
	}
	return out, nil
}
