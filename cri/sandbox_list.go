package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/sandbox"
)

// ListPodSandbox answers from memory, filtered by id or unique prefix, state and labels.
func (s *Server) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	filter := sandbox.Filter{ID: f.GetId(), LabelSelector: f.GetLabelSelector()}
	if st := f.GetState(); st != nil {
		filter.State = sandbox.StateNotReady
		if st.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
			filter.State = sandbox.StateReady
		}
	}
	resp := &runtimeapi.ListPodSandboxResponse{}
	for _, sb := range s.opts.Sandboxes.List(filter) {
		resp.Items = append(resp.Items, criSandbox(sb))
	}
	return resp, nil
}
