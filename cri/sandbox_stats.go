package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/sandbox"
	"github.com/peapod-runtime/peapod/stats"
)

// PodSandboxStats answers from the stats collector's last sample of the pod cgroup, the
// pod's network namespace and its containers.
func (s *Server) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	if s.opts.Stats == nil {
		return nil, fmt.Errorf("stats are not collected: %w", errdefs.ErrUnavailable)
	}
	sb, err := s.opts.Sandboxes.Get(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: s.criPodStats(sb)}, nil
}

func (s *Server) criPodStats(sb sandbox.Sandbox) *runtimeapi.PodSandboxStats {
	linux := &runtimeapi.LinuxPodSandboxStats{}
	out := &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{
			Id: sb.ID, Metadata: criSandboxMetadata(sb.Config.Metadata),
			Labels: sb.Config.Labels, Annotations: sb.Config.Annotations,
		},
		Linux: linux,
	}
	if sample, ok := s.opts.Stats.Pod(sb.ID); ok {
		if at := sample.At; !at.IsZero() {
			linux.Cpu = criCPU(at, sample.Cgroup, sample.CPU)
			linux.Memory = criMemory(at, sample.Cgroup)
			linux.Io = criIO(at, sample.Cgroup)
			linux.Process = &runtimeapi.ProcessUsage{Timestamp: at.UnixNano(), ProcessCount: u64(sample.Cgroup.Pids)}
		}
		if !sample.NetworkAt.IsZero() {
			linux.Network = criNetwork(sample)
		}
	}
	for _, c := range s.opts.Containers.List(container.Filter{PodID: sb.ID}) {
		if c.PodID == sb.ID && statsListed(c) {
			linux.Containers = append(linux.Containers, s.criContainerStats(c))
		}
	}
	return out
}

// defaultInterface is the pod's main interface: CNI's eth0, else the first one.
func defaultInterface(ifs []stats.Interface) int {
	for i, ifc := range ifs {
		if ifc.Name == "eth0" {
			return i
		}
	}
	if len(ifs) > 0 {
		return 0
	}
	return -1
}

func criNetwork(p stats.Pod) *runtimeapi.NetworkUsage {
	out := &runtimeapi.NetworkUsage{Timestamp: p.NetworkAt.UnixNano()}
	for _, ifc := range p.Interfaces {
		out.Interfaces = append(out.Interfaces, &runtimeapi.NetworkInterfaceUsage{
			Name:    ifc.Name,
			RxBytes: u64(ifc.RxBytes), RxErrors: u64(ifc.RxErrors),
			TxBytes: u64(ifc.TxBytes), TxErrors: u64(ifc.TxErrors),
		})
	}
	if i := defaultInterface(p.Interfaces); i >= 0 {
		out.DefaultInterface = out.Interfaces[i]
	}
	return out
}
