package cri

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/internal/log"
)

// UpdateRuntimeConfig validates the pod CIDR the kubelet hands down and has the pod
// manager keep it; it survives restarts.
func (s *Server) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if cidr == "" {
		return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
	}
	for _, c := range strings.Split(cidr, ",") {
		if _, _, err := net.ParseCIDR(c); err != nil {
			return nil, fmt.Errorf("pod CIDR %q: %w", c, errdefs.ErrInvalidArgument)
		}
	}
	if err := s.opts.Sandboxes.SetPodCIDR(cidr); err != nil {
		return nil, err
	}
	log.From(ctx).Info("pod cidr updated", zap.String("pod_cidr", cidr))
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}
