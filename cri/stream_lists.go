package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The Stream* RPCs (cri-api v0.37, feature gate CRIListStreaming) answer what their List twin
// answers, cut into messages of at most streamChunk items: every item exactly once, at least
// one item per message, no message at all for an empty list, then EOF. Items are small (a few
// hundred bytes; a pod's stats with its containers a few KiB), so 200 stays far below gRPC's
// 4 MiB message limit.
const streamChunk = 200

// sendChunks sends items in order, streamChunk at a time.
func sendChunks[T any](ctx context.Context, items []T, send func([]T) error) error {
	for len(items) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(items), streamChunk)
		if err := send(items[:n]); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

// StreamPodSandboxes streams ListPodSandbox's answer.
func (s *Server) StreamPodSandboxes(req *runtimeapi.StreamPodSandboxesRequest, stream runtimeapi.RuntimeService_StreamPodSandboxesServer) error {
	ctx := stream.Context()
	resp, err := s.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(ctx, resp.GetItems(), func(items []*runtimeapi.PodSandbox) error {
		return stream.Send(&runtimeapi.StreamPodSandboxesResponse{PodSandboxes: items})
	})
}

// StreamContainers streams ListContainers' answer.
func (s *Server) StreamContainers(req *runtimeapi.StreamContainersRequest, stream runtimeapi.RuntimeService_StreamContainersServer) error {
	ctx := stream.Context()
	resp, err := s.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(ctx, resp.GetContainers(), func(items []*runtimeapi.Container) error {
		return stream.Send(&runtimeapi.StreamContainersResponse{Containers: items})
	})
}

// StreamImages streams ListImages' answer.
func (s *Server) StreamImages(req *runtimeapi.StreamImagesRequest, stream runtimeapi.ImageService_StreamImagesServer) error {
	ctx := stream.Context()
	resp, err := s.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(ctx, resp.GetImages(), func(items []*runtimeapi.Image) error {
		return stream.Send(&runtimeapi.StreamImagesResponse{Images: items})
	})
}

// StreamContainerStats streams ListContainerStats' answer.
func (s *Server) StreamContainerStats(req *runtimeapi.StreamContainerStatsRequest, stream runtimeapi.RuntimeService_StreamContainerStatsServer) error {
	list, err := s.listContainerStats(req.GetFilter())
	if err != nil {
		return err
	}
	return sendChunks(stream.Context(), list, func(items []*runtimeapi.ContainerStats) error {
		return stream.Send(&runtimeapi.StreamContainerStatsResponse{ContainerStats: items})
	})
}

// StreamPodSandboxStats streams ListPodSandboxStats' answer.
func (s *Server) StreamPodSandboxStats(req *runtimeapi.StreamPodSandboxStatsRequest, stream runtimeapi.RuntimeService_StreamPodSandboxStatsServer) error {
	list, err := s.listPodStats(req.GetFilter())
	if err != nil {
		return err
	}
	return sendChunks(stream.Context(), list, func(items []*runtimeapi.PodSandboxStats) error {
		return stream.Send(&runtimeapi.StreamPodSandboxStatsResponse{PodSandboxStats: items})
	})
}

// StreamPodSandboxMetrics streams ListPodSandboxMetrics' answer.
func (s *Server) StreamPodSandboxMetrics(_ *runtimeapi.StreamPodSandboxMetricsRequest, stream runtimeapi.RuntimeService_StreamPodSandboxMetricsServer) error {
	list, err := s.listPodMetrics()
	if err != nil {
		return err
	}
	return sendChunks(stream.Context(), list, func(items []*runtimeapi.PodSandboxMetrics) error {
		return stream.Send(&runtimeapi.StreamPodSandboxMetricsResponse{PodSandboxMetrics: items})
	})
}
