package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/container"
)

// ListContainers answers from memory, filtered by id or prefix, pod, state and labels.
func (s *Server) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f := req.GetFilter()
	filter := container.Filter{ID: f.GetId(), PodID: f.GetPodSandboxId(), LabelSelector: f.GetLabelSelector()}
	if st := f.GetState(); st != nil {
		switch st.GetState() {
		case runtimeapi.ContainerState_CONTAINER_CREATED:
			filter.State = container.StateCreated
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			filter.State = container.StateRunning
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			filter.State = container.StateExited
		default:
			filter.State = container.StateUnknown
		}
	}
	resp := &runtimeapi.ListContainersResponse{}
	for _, c := range s.opts.Containers.List(filter) {
		resp.Containers = append(resp.Containers, criContainer(c))
	}
	return resp, nil
}
