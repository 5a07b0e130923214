package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/container"
)

// ListContainerStats lists the last sample of every created or running container matching
// the filter (id or prefix, pod, labels).
func (s *Server) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	list, err := s.listContainerStats(req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListContainerStatsResponse{Stats: list}, nil
}

func (s *Server) listContainerStats(f *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	if s.opts.Stats == nil {
		return nil, fmt.Errorf("stats are not collected: %w", errdefs.ErrUnavailable)
	}
	var out []*runtimeapi.ContainerStats
	for _, c := range s.opts.Containers.List(container.Filter{ID: f.GetId(), PodID: f.GetPodSandboxId(), LabelSelector: f.GetLabelSelector()}) {
		if statsListed(c) {
			out = append(out, s.criContainerStats(c))
		}
	}
	return out, nil
}
