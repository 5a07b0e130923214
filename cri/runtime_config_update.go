package cri

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/internal/log"
)

const (
	runtimeBucket = "runtime"
	podCIDRKey    = "pod_cidr"
)

// UpdateRuntimeConfig stores the pod CIDR the kubelet hands down; it survives restarts.
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
	if err := s.opts.DB.Put(runtimeBucket, podCIDRKey, cidr); err != nil {
		return nil, fmt.Errorf("store pod CIDR: %w", err)
	}
	log.From(ctx).Info("pod cidr updated", zap.String("pod_cidr", cidr))
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}

func (s *Server) podCIDR() (string, error) {
	var cidr string
	if err := s.opts.DB.Get(runtimeBucket, podCIDRKey, &cidr); err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return "", nil
		}
		return "", err
	}
	return cidr, nil
}
