package cri

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/sandbox"
	"github.com/peapod-runtime/peapod/stats"
)

// The metrics a kubelet with PodAndContainerStatsFromCRI serves on /metrics/cadvisor instead
// of asking cadvisor: cadvisor's names, help texts and label keys. CRI carries values as
// unsigned integers, so the seconds counters are whole seconds (as CRI-O reports them).
var (
	containerLabels = []string{"container", "id", "image", "name", "namespace", "pod"}
	networkLabels   = append(append([]string(nil), containerLabels...), "interface")
	fsLabels        = append(append([]string(nil), containerLabels...), "device")
)

type metricDef struct {
	name, help string
	typ        runtimeapi.MetricType
	labels     []string
}

var metricDefs = []metricDef{
	{"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", runtimeapi.MetricType_COUNTER, containerLabels},
	{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", runtimeapi.MetricType_GAUGE, containerLabels},
	{"container_memory_working_set_bytes", "Current working set in bytes.", runtimeapi.MetricType_GAUGE, containerLabels},
	{"container_memory_rss", "Size of RSS in bytes.", runtimeapi.MetricType_GAUGE, containerLabels},
	{"container_memory_swap", "Container swap usage in bytes.", runtimeapi.MetricType_GAUGE, containerLabels},
	{"container_spec_memory_limit_bytes", "Memory limit for the container.", runtimeapi.MetricType_GAUGE, containerLabels},
	{"container_processes", "Number of processes running inside the container.", runtimeapi.MetricType_GAUGE, containerLabels},
	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", runtimeapi.MetricType_GAUGE, containerLabels},
	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", runtimeapi.MetricType_GAUGE, fsLabels},
	{"container_network_receive_bytes_total", "Cumulative count of bytes received", runtimeapi.MetricType_COUNTER, networkLabels},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", runtimeapi.MetricType_COUNTER, networkLabels},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", runtimeapi.MetricType_COUNTER, networkLabels},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", runtimeapi.MetricType_COUNTER, networkLabels},
	{"container_network_receive_packets_total", "Cumulative count of packets received", runtimeapi.MetricType_COUNTER, networkLabels},
	{"container_network_transmit_packets_total", "Cumulative count of packets transmitted", runtimeapi.MetricType_COUNTER, networkLabels},
	{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", runtimeapi.MetricType_COUNTER, networkLabels},
	{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", runtimeapi.MetricType_COUNTER, networkLabels},
}

var metricTypes = func() map[string]runtimeapi.MetricType {
	m := map[string]runtimeapi.MetricType{}
	for _, d := range metricDefs {
		m[d.name] = d.typ
	}
	return m
}()

// ListMetricDescriptors names every metric ListPodSandboxMetrics reports.
func (s *Server) ListMetricDescriptors(ctx context.Context, _ *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	resp := &runtimeapi.ListMetricDescriptorsResponse{}
	for _, d := range metricDefs {
		resp.Descriptors = append(resp.Descriptors, &runtimeapi.MetricDescriptor{Name: d.name, Help: d.help, LabelKeys: d.labels})
	}
	return resp, nil
}

// ListPodSandboxMetrics reports the metrics of every ready pod from the stats collector's last
// sample: the pod's network counters (container "POD", as cadvisor reports them for the
// sandbox) and its created or running containers' cpu, memory, processes and writable layer.
func (s *Server) ListPodSandboxMetrics(ctx context.Context, _ *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	list, err := s.listPodMetrics()
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListPodSandboxMetricsResponse{PodMetrics: list}, nil
}

func (s *Server) listPodMetrics() ([]*runtimeapi.PodSandboxMetrics, error) {
	if s.opts.Stats == nil {
		return nil, fmt.Errorf("stats are not collected: %w", errdefs.ErrUnavailable)
	}
	byPod := map[string][]container.Container{}
	for _, c := range s.opts.Containers.List(container.Filter{}) {
		if statsListed(c) {
			byPod[c.PodID] = append(byPod[c.PodID], c)
		}
	}
	var out []*runtimeapi.PodSandboxMetrics
	for _, sb := range s.opts.Sandboxes.List(sandbox.Filter{State: sandbox.StateReady}) {
		pm := &runtimeapi.PodSandboxMetrics{PodSandboxId: sb.ID}
		if sample, ok := s.opts.Stats.Pod(sb.ID); ok && !sample.NetworkAt.IsZero() {
			base := []string{"POD", sb.ID, "", sb.ID, sb.Config.Metadata.Namespace, sb.Config.Metadata.Name}
			pm.Metrics = networkMetrics(sample, base)
		}
		for _, c := range byPod[sb.ID] {
			pm.ContainerMetrics = append(pm.ContainerMetrics, s.containerMetrics(sb, c))
		}
		out = append(out, pm)
	}
	return out, nil
}

func metric(name string, at time.Time, labels []string, v uint64) *runtimeapi.Metric {
	return &runtimeapi.Metric{Name: name, Timestamp: at.UnixNano(), MetricType: metricTypes[name], LabelValues: labels, Value: u64(v)}
}

func withLabel(base []string, v string) []string {
	return append(append(make([]string, 0, len(base)+1), base...), v)
}

func networkMetrics(p stats.Pod, base []string) []*runtimeapi.Metric {
	var out []*runtimeapi.Metric
	at := p.NetworkAt
	for _, ifc := range p.Interfaces {
		l := withLabel(base, ifc.Name)
		out = append(out,
			metric("container_network_receive_bytes_total", at, l, ifc.RxBytes),
			metric("container_network_transmit_bytes_total", at, l, ifc.TxBytes),
			metric("container_network_receive_errors_total", at, l, ifc.RxErrors),
			metric("container_network_transmit_errors_total", at, l, ifc.TxErrors),
			metric("container_network_receive_packets_total", at, l, ifc.RxPackets),
			metric("container_network_transmit_packets_total", at, l, ifc.TxPackets),
			metric("container_network_receive_packets_dropped_total", at, l, ifc.RxDropped),
			metric("container_network_transmit_packets_dropped_total", at, l, ifc.TxDropped),
		)
	}
	return out
}

func (s *Server) containerMetrics(sb sandbox.Sandbox, c container.Container) *runtimeapi.ContainerMetrics {
	cm := &runtimeapi.ContainerMetrics{ContainerId: c.ID}
	sample, ok := s.opts.Stats.Container(c.ID)
	if !ok {
		return cm
	}
	// cadvisor's id is the cgroup path and its name the runtime's container name.
	base := []string{c.Config.Metadata.Name, c.CgroupPath, c.Config.Image, c.ID, sb.Config.Metadata.Namespace, sb.Config.Metadata.Name}
	if at := sample.At; !at.IsZero() {
		st := sample.Cgroup
		cm.Metrics = append(cm.Metrics,
			metric("container_cpu_usage_seconds_total", at, base, sample.CPU.UsageNanos/uint64(time.Second)),
			metric("container_memory_usage_bytes", at, base, st.MemoryUsageBytes),
			metric("container_memory_working_set_bytes", at, base, st.MemoryWorkingSetBytes),
			metric("container_memory_rss", at, base, st.MemoryRSSBytes),
			metric("container_memory_swap", at, base, st.SwapUsageBytes),
			metric("container_spec_memory_limit_bytes", at, base, st.MemoryLimitBytes),
			metric("container_processes", at, base, st.Pids),
		)
		if !c.StartedAt.IsZero() {
			cm.Metrics = append(cm.Metrics, metric("container_start_time_seconds", at, base, uint64(c.StartedAt.Unix())))
		}
	}
	if d := sample.Disk; d != nil {
		l := withLabel(base, filepath.Dir(c.Dir))
		cm.Metrics = append(cm.Metrics, metric("container_fs_usage_bytes", d.At, l, d.UsedBytes))
	}
	return cm
}
