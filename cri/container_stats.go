package cri

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/stats"
)

// ContainerStats answers from the stats collector's last sample: it never reads the kernel
// and never waits behind an operation on the container.
func (s *Server) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	if s.opts.Stats == nil {
		return nil, fmt.Errorf("stats are not collected: %w", errdefs.ErrUnavailable)
	}
	c, err := s.opts.Containers.Get(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatsResponse{Stats: s.criContainerStats(c)}, nil
}

// statsListed reports whether a container has stats to list: it exists in the kernel, created
// (cgroup made, process not yet started) or running.
func statsListed(c container.Container) bool {
	return c.State == container.StateCreated || c.State == container.StateRunning
}

// criContainerStats converts a container's last sample; a container never sampled yet (just
// created) has only its attributes.
func (s *Server) criContainerStats(c container.Container) *runtimeapi.ContainerStats {
	out := &runtimeapi.ContainerStats{Attributes: &runtimeapi.ContainerAttributes{
		Id: c.ID, Metadata: criContainerMetadata(c.Config.Metadata),
		Labels: c.Config.Labels, Annotations: c.Config.Annotations,
	}}
	sample, ok := s.opts.Stats.ContainerNow(c)
	if !ok {
		return out
	}
	if !sample.At.IsZero() {
		out.Cpu = criCPU(sample.At, sample.Cgroup, sample.CPU)
		out.Memory = criMemory(sample.At, sample.Cgroup)
		out.Swap = criSwap(sample.At, sample.Cgroup)
		out.Io = criIO(sample.At, sample.Cgroup)
	}
	if d := sample.Disk; d != nil {
		out.WritableLayer = &runtimeapi.FilesystemUsage{
			Timestamp: d.At.UnixNano(),
			// Any directory on the filesystem names it; the kubelet asks cadvisor about it.
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: filepath.Dir(c.Dir)},
			UsedBytes:  u64(d.UsedBytes),
			InodesUsed: u64(d.Inodes),
		}
	}
	return out
}

func u64(v uint64) *runtimeapi.UInt64Value { return &runtimeapi.UInt64Value{Value: v} }

func criCPU(at time.Time, st cgroups.Stats, cpu stats.CPU) *runtimeapi.CpuUsage {
	out := &runtimeapi.CpuUsage{
		Timestamp:            at.UnixNano(),
		UsageCoreNanoSeconds: u64(cpu.UsageNanos),
		Psi:                  criPSI(st.CPUPressure),
	}
	if cpu.HasRate {
		out.UsageNanoCores = u64(cpu.NanoCores)
	}
	return out
}

func criMemory(at time.Time, st cgroups.Stats) *runtimeapi.MemoryUsage {
	out := &runtimeapi.MemoryUsage{
		Timestamp:       at.UnixNano(),
		WorkingSetBytes: u64(st.MemoryWorkingSetBytes),
		UsageBytes:      u64(st.MemoryUsageBytes),
		RssBytes:        u64(st.MemoryRSSBytes),
		PageFaults:      u64(st.PageFaults),
		MajorPageFaults: u64(st.MajorPageFaults),
		Psi:             criPSI(st.MemoryPressure),
	}
	// As the kubelet (cadvisor) computes it: what the limit leaves above the working set.
	if st.MemoryLimitBytes > 0 {
		out.AvailableBytes = u64(st.MemoryLimitBytes - min(st.MemoryLimitBytes, st.MemoryWorkingSetBytes))
	}
	return out
}

func criSwap(at time.Time, st cgroups.Stats) *runtimeapi.SwapUsage {
	out := &runtimeapi.SwapUsage{Timestamp: at.UnixNano(), SwapUsageBytes: u64(st.SwapUsageBytes)}
	if st.SwapLimitBytes > 0 {
		out.SwapAvailableBytes = u64(st.SwapLimitBytes - min(st.SwapLimitBytes, st.SwapUsageBytes))
	}
	return out
}

// criIO is only the io pressure: nil where the kernel has none (cgroup v1).
func criIO(at time.Time, st cgroups.Stats) *runtimeapi.IoUsage {
	if st.IOPressure == nil {
		return nil
	}
	return &runtimeapi.IoUsage{Timestamp: at.UnixNano(), Psi: criPSI(st.IOPressure)}
}

func criPSI(p *cgroups.Pressure) *runtimeapi.PsiStats {
	if p == nil {
		return nil
	}
	conv := func(d cgroups.PressureData) *runtimeapi.PsiData {
		return &runtimeapi.PsiData{Total: d.Total, Avg10: d.Avg10, Avg60: d.Avg60, Avg300: d.Avg300}
	}
	return &runtimeapi.PsiStats{Some: conv(p.Some), Full: conv(p.Full)}
}
