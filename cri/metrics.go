package cri

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/sandbox"
	"github.com/peapod-runtime/peapod/stats"
)

// ListMetricDescriptors names every metric ListPodSandboxMetrics reports (metricDescs in
// metrics_defs.go).
func (s *Server) ListMetricDescriptors(ctx context.Context, _ *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	resp := &runtimeapi.ListMetricDescriptorsResponse{Descriptors: make([]*runtimeapi.MetricDescriptor, 0, len(metricDescs))}
	for _, d := range metricDescs {
		resp.Descriptors = append(resp.Descriptors, &runtimeapi.MetricDescriptor{Name: d.name, Help: d.help, LabelKeys: d.labels})
	}
	return resp, nil
}

// ListPodSandboxMetrics reports the metrics of every ready pod from the stats collector's last
// sample: the pod's network counters (container "POD", as cadvisor reports them for the
// sandbox) and its created or running containers' cpu, memory, block I/O, processes, writable
// layer and resources. A pod or container started since the collector's last pass is read at
// once (stats.Collector.PodNow, ContainerNow), so a new one is never reported empty.
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
		if sample, ok := s.opts.Stats.PodNow(sb); ok {
			pm.Metrics = podMetrics(sb, sample)
		}
		for _, c := range byPod[sb.ID] {
			cm := &runtimeapi.ContainerMetrics{ContainerId: c.ID}
			if sample, ok := s.opts.Stats.ContainerNow(c); ok {
				cm.Metrics = containerMetrics(sb, c, sample)
			}
			pm.ContainerMetrics = append(pm.ContainerMetrics, cm)
		}
		out = append(out, pm)
	}
	return out, nil
}

// metricSet builds one object's metrics: every value carries the object's labels, plus the
// extra labels its descriptor names.
type metricSet struct {
	base []string
	out  []*runtimeapi.Metric
}

func (m *metricSet) add(name string, at time.Time, v uint64, extra ...string) {
	d, ok := metricDescByName[name]
	if !ok || len(m.base)+len(extra) != len(d.labels) {
		// A programming error the table test catches; never send a metric the kubelet's
		// collector would reject for its label count.
		return
	}
	labels := append(append(make([]string, 0, len(d.labels)), m.base...), extra...)
	m.out = append(m.out, &runtimeapi.Metric{
		Name: name, Timestamp: at.UnixNano(), MetricType: d.typ, LabelValues: labels, Value: u64(v),
	})
}

// seconds converts a nanosecond counter to the whole seconds CRI's integers carry (as
// containerd and CRI-O report them).
func seconds(nanos uint64) uint64 { return nanos / uint64(time.Second) }

// podMetrics are a pod's own metrics: its network interfaces, cadvisor's "POD" container.
func podMetrics(sb sandbox.Sandbox, p stats.Pod) []*runtimeapi.Metric {
	if p.NetworkAt.IsZero() {
		return nil
	}
	m := metricSet{base: []string{"POD", sb.CgroupParent, "", sb.ID, sb.Config.Metadata.Namespace, sb.Config.Metadata.Name}}
	at := p.NetworkAt
	for _, ifc := range p.Interfaces {
		m.add("container_network_receive_bytes_total", at, ifc.RxBytes, ifc.Name)
		m.add("container_network_transmit_bytes_total", at, ifc.TxBytes, ifc.Name)
		m.add("container_network_receive_errors_total", at, ifc.RxErrors, ifc.Name)
		m.add("container_network_transmit_errors_total", at, ifc.TxErrors, ifc.Name)
		m.add("container_network_receive_packets_total", at, ifc.RxPackets, ifc.Name)
		m.add("container_network_transmit_packets_total", at, ifc.TxPackets, ifc.Name)
		m.add("container_network_receive_packets_dropped_total", at, ifc.RxDropped, ifc.Name)
		m.add("container_network_transmit_packets_dropped_total", at, ifc.TxDropped, ifc.Name)
	}
	return m.out
}

// containerMetrics converts a container's sample. cadvisor's id label is the cgroup path and
// its name the runtime's container name.
func containerMetrics(sb sandbox.Sandbox, c container.Container, sample stats.Container) []*runtimeapi.Metric {
	m := metricSet{base: []string{c.Config.Metadata.Name, c.CgroupPath, c.Config.Image, c.ID, sb.Config.Metadata.Namespace, sb.Config.Metadata.Name}}
	if at := sample.At; !at.IsZero() {
		m.addCgroup(at, sample.Cgroup)
		m.add("container_last_seen", at, uint64(at.Unix()))
	}
	for _, io := range sample.IO {
		m.addIO(sample.IOAt, io)
	}
	if p := sample.Processes; p != nil {
		m.add("container_file_descriptors", p.At, p.FDs)
		m.add("container_sockets", p.At, p.Sockets)
		if p.HasMaxOpenFiles {
			m.add("container_ulimits_soft", p.At, p.MaxOpenFiles, "max_open_files")
		}
	}
	if d := sample.Disk; d != nil {
		m.add("container_fs_usage_bytes", d.At, d.UsedBytes, d.Device)
		m.add("container_fs_limit_bytes", d.At, d.CapacityBytes, d.Device)
		m.add("container_fs_inodes_total", d.At, d.InodesTotal, d.Device)
		m.add("container_fs_inodes_free", d.At, d.InodesFree, d.Device)
	}
	// What the container was given, as a kubelet's cadvisor reads it back from the cgroup.
	at := sample.At
	if at.IsZero() {
		at = time.Now()
	}
	m.addSpec(at, c)
	return m.out
}

func (m *metricSet) addCgroup(at time.Time, st cgroups.Stats) {
	m.add("container_cpu_usage_seconds_total", at, seconds(st.CPUUsageNanos), "total")
	m.add("container_cpu_user_seconds_total", at, seconds(st.CPUUserNanos))
	m.add("container_cpu_system_seconds_total", at, seconds(st.CPUSystemNanos))
	m.add("container_cpu_cfs_periods_total", at, st.CPUPeriods)
	m.add("container_cpu_cfs_throttled_periods_total", at, st.CPUThrottledPeriods)
	m.add("container_cpu_cfs_throttled_seconds_total", at, seconds(st.CPUThrottledNanos))

	m.add("container_memory_usage_bytes", at, st.MemoryUsageBytes)
	m.add("container_memory_max_usage_bytes", at, st.MemoryMaxUsageBytes)
	m.add("container_memory_working_set_bytes", at, st.MemoryWorkingSetBytes)
	m.add("container_memory_rss", at, st.MemoryRSSBytes)
	m.add("container_memory_cache", at, st.MemoryCacheBytes)
	m.add("container_memory_mapped_file", at, st.MemoryMappedFileBytes)
	m.add("container_memory_kernel_usage", at, st.MemoryKernelBytes)
	m.add("container_memory_swap", at, st.SwapUsageBytes)
	m.add("container_memory_failcnt", at, st.MemoryFailcnt)
	m.add("container_memory_failures_total", at, st.LocalPageFaults, "pgfault", "container")
	m.add("container_memory_failures_total", at, st.LocalMajorPageFaults, "pgmajfault", "container")
	m.add("container_memory_failures_total", at, st.PageFaults, "pgfault", "hierarchy")
	m.add("container_memory_failures_total", at, st.MajorPageFaults, "pgmajfault", "hierarchy")
	m.add("container_oom_events_total", at, st.OOMKills)

	m.add("container_processes", at, uint64(len(st.Procs)))
	m.add("container_threads", at, st.Pids)
	m.add("container_threads_max", at, st.PidsLimit)

	// PSI totals are microseconds; "waiting" is some (at least one task stalled), "stalled"
	// full (all of them), as cadvisor names them. Only v2 has per-cgroup PSI.
	for _, p := range []struct {
		res string
		psi *cgroups.Pressure
	}{{"cpu", st.CPUPressure}, {"memory", st.MemoryPressure}, {"io", st.IOPressure}} {
		if p.psi == nil {
			continue
		}
		m.add("container_pressure_"+p.res+"_waiting_seconds_total", at, p.psi.Some.Total/1e6)
		m.add("container_pressure_"+p.res+"_stalled_seconds_total", at, p.psi.Full.Total/1e6)
	}
}

// addIO reports one device's I/O: every operation's bytes as blkio device usage, reads and
// writes also as the filesystem counters cadvisor derives from the same table.
func (m *metricSet) addIO(at time.Time, io stats.IO) {
	m.add("container_blkio_device_usage_total", at, io.Bytes, io.Device,
		strconv.FormatUint(io.Major, 10), strconv.FormatUint(io.Minor, 10), io.Op)
	switch io.Op {
	case "Read":
		m.add("container_fs_reads_bytes_total", at, io.Bytes, io.Device)
		m.add("container_fs_reads_total", at, io.IOs, io.Device)
	case "Write":
		m.add("container_fs_writes_bytes_total", at, io.Bytes, io.Device)
		m.add("container_fs_writes_total", at, io.IOs, io.Device)
	}
}

// Kernel defaults a cgroup nobody wrote to reads back: cpu.cfs_period_us and (v1) cpu.shares.
const (
	defaultCPUPeriod = cgroups.DefaultCPUPeriod
	defaultCPUShares = 1024
)

// addSpec reports the container's resources (as last set by Create or
// UpdateContainerResources) the way cadvisor reads them from its cgroup: an unset period or
// share is the kernel's default, an unset or unlimited memory or swap limit is 0, and a quota
// only when there is one.
func (m *metricSet) addSpec(at time.Time, c container.Container) {
	var r cgroups.Resources
	if c.Config.Resources != nil {
		r = *c.Config.Resources
	}
	period, shares := uint64(defaultCPUPeriod), uint64(defaultCPUShares)
	if r.CPUPeriod > 0 {
		period = uint64(r.CPUPeriod)
	}
	if r.CPUShares > 0 {
		shares = uint64(r.CPUShares)
	}
	m.add("container_spec_cpu_period", at, period)
	m.add("container_spec_cpu_shares", at, shares)
	if r.CPUQuota > 0 {
		m.add("container_spec_cpu_quota", at, uint64(r.CPUQuota))
	}
	m.add("container_spec_memory_limit_bytes", at, uint64(max(r.MemoryLimitInBytes, 0)))
	// memory+swap, as CRI and cgroup v1's memsw give it.
	m.add("container_spec_memory_swap_limit_bytes", at, uint64(max(r.MemorySwapLimitInBytes, 0)))
	// Only cgroup v2's memory.low (through unified) reserves memory; peapod sets no v1
	// soft limit.
	var low uint64
	if v, ok := r.Unified["memory.low"]; ok {
		low, _ = strconv.ParseUint(v, 10, 64)
	}
	m.add("container_spec_memory_reservation_limit_bytes", at, low)
	start := c.StartedAt
	if start.IsZero() {
		start = c.CreatedAt
	}
	if !start.IsZero() {
		m.add("container_start_time_seconds", at, uint64(start.Unix()))
	}
}
