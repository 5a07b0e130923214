package cri

import (
	"context"
	"encoding/json"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/volumes"
)

// Status reports RuntimeReady and NetworkReady; verbose adds the effective config.
func (s *Server) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	runtimeCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.RuntimeReady, Status: true}
	netCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if s.opts.Network == nil {
		netCond.Status, netCond.Reason, netCond.Message = false, "NetworkPluginNotReady", "pod networking is not configured"
	} else if err := s.opts.Network.Status(); err != nil {
		netCond.Status, netCond.Reason, netCond.Message = false, "NetworkPluginNotReady", err.Error()
	}
	resp := &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{
		Conditions: []*runtimeapi.RuntimeCondition{runtimeCond, netCond},
	}}
	// What the kubelet and critest read to decide which fields they may send: one entry per
	// handler peapod answers to, all the same runtime.
	rro := volumes.RecursiveReadOnlySupported()
	// User namespaces as Kubernetes means them: a pod's own, with idmapped mounts of its
	// volumes and rootfs layers, which the daemon probed the kernel for at start.
	userns := s.opts.Sandboxes != nil && s.opts.Sandboxes.UserNamespacesSupported()
	for _, name := range s.handlerNames() {
		resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtimeapi.RuntimeHandler{
			Name:     name,
			Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: rro, UserNamespaces: userns},
		})
	}
	// Merge and Strict are both honoured, and ContainerStatus reports the groups in effect.
	resp.Features = &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true}

	if req.GetVerbose() {
		cfg, err := json.Marshal(s.opts.Config)
		if err != nil {
			return nil, fmt.Errorf("encode config: %w", err)
		}
		resp.Info = map[string]string{"config": string(cfg)}
		if cidr, err := s.opts.Sandboxes.PodCIDR(); err == nil && cidr != "" {
			resp.Info["podCIDR"] = cidr
		}
	}
	return resp, nil
}
