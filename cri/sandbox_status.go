package cri

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/container"
)

// PodSandboxStatus answers from memory: it never waits behind another pod's run or stop. It
// carries its containers' statuses and the time they were read, as an evented PLEG expects.
func (s *Server) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	sb, err := s.opts.Sandboxes.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	resp, err := criSandboxStatus(sb, req.GetVerbose())
	if err != nil {
		return nil, err
	}
	resp.Timestamp = time.Now().UnixNano()
	for _, c := range s.opts.Containers.List(container.Filter{PodID: sb.ID}) {
		if c.PodID != sb.ID {
			continue // the filter matches prefixes
		}
		st, err := criContainerStatus(c, false, nil)
		if err != nil {
			return nil, err
		}
		resp.ContainersStatuses = append(resp.ContainersStatuses, st.GetStatus())
	}
	return resp, nil
}
