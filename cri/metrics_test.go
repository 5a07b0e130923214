package cri

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/sandbox"
	"github.com/peapod-runtime/peapod/stats"
)

// upstreamMetricNames is cri-tools' expectedMetricDescriptorNames (pkg/validate/pod.go), the
// metrics a kubelet got from cadvisor, minus hugetlb, which peapod does not report.
var upstreamMetricNames = []string{
	"container_blkio_device_usage_total", "container_cpu_cfs_periods_total",
	"container_cpu_cfs_throttled_periods_total", "container_cpu_cfs_throttled_seconds_total",
	"container_cpu_system_seconds_total", "container_cpu_usage_seconds_total",
	"container_cpu_user_seconds_total", "container_file_descriptors", "container_fs_inodes_free",
	"container_fs_inodes_total", "container_fs_limit_bytes", "container_fs_reads_bytes_total",
	"container_fs_reads_total", "container_fs_usage_bytes", "container_fs_writes_bytes_total",
	"container_fs_writes_total", "container_last_seen", "container_memory_cache",
	"container_memory_failcnt", "container_memory_failures_total", "container_memory_kernel_usage",
	"container_memory_mapped_file", "container_memory_max_usage_bytes", "container_memory_rss",
	"container_memory_swap", "container_memory_usage_bytes", "container_memory_working_set_bytes",
	"container_network_receive_bytes_total", "container_network_receive_errors_total",
	"container_network_receive_packets_dropped_total", "container_network_receive_packets_total",
	"container_network_transmit_bytes_total", "container_network_transmit_errors_total",
	"container_network_transmit_packets_dropped_total", "container_network_transmit_packets_total",
	"container_oom_events_total", "container_pressure_cpu_stalled_seconds_total",
	"container_pressure_cpu_waiting_seconds_total", "container_pressure_io_stalled_seconds_total",
	"container_pressure_io_waiting_seconds_total", "container_pressure_memory_stalled_seconds_total",
	"container_pressure_memory_waiting_seconds_total", "container_processes", "container_sockets",
	"container_spec_cpu_period", "container_spec_cpu_quota", "container_spec_cpu_shares",
	"container_spec_memory_limit_bytes", "container_spec_memory_reservation_limit_bytes",
	"container_spec_memory_swap_limit_bytes", "container_start_time_seconds", "container_threads",
	"container_threads_max", "container_ulimits_soft",
}

func TestMetricDescriptors(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range metricDescs {
		if seen[d.name] {
			t.Errorf("%s described twice", d.name)
		}
		seen[d.name] = true
		if d.help == "" || len(d.labels) == 0 || d.typ != counter && d.typ != gauge {
			t.Errorf("%s: help %q, labels %v, type %v", d.name, d.help, d.labels, d.typ)
		}
		// cadvisor's two exceptions: failcnt counts, inodes_total is a size.
		isCounter := strings.HasSuffix(d.name, "_total") != slices.Contains([]string{"container_memory_failcnt", "container_fs_inodes_total"}, d.name)
		if (d.typ == counter) != isCounter {
			t.Errorf("%s is a %v: counters, and only they, end in _total", d.name, d.typ)
		}
	}
	for _, n := range upstreamMetricNames {
		if !seen[n] {
			t.Errorf("%s not described", n)
		}
	}
}

// fullSample is a container sample with every figure set, on a v2-like host (PSI present).
func fullSample(at time.Time) stats.Container {
	psi := &cgroups.Pressure{Some: cgroups.PressureData{Total: 3e6}, Full: cgroups.PressureData{Total: 1e6}}
	return stats.Container{
		ID: "c1", PodID: "p1", At: at,
		Cgroup: cgroups.Stats{
			CPUUsageNanos: 3.5e9, CPUUserNanos: 2e9, CPUSystemNanos: 1.5e9,
			CPUPeriods: 40, CPUThrottledPeriods: 10, CPUThrottledNanos: 2.9e9,
			MemoryUsageBytes: 100, MemoryMaxUsageBytes: 150, MemoryWorkingSetBytes: 80, MemoryRSSBytes: 60,
			MemoryCacheBytes: 40, MemoryMappedFileBytes: 8, MemoryKernelBytes: 12, MemoryFailcnt: 2,
			PageFaults: 500, MajorPageFaults: 5, LocalPageFaults: 400, LocalMajorPageFaults: 4,
			Pids: 7, PidsLimit: 1024, SwapUsageBytes: 1, OOMKills: 1, Procs: []int{10, 11},
			CPUPressure: psi, MemoryPressure: psi, IOPressure: psi,
		},
		IOAt: at,
		IO: []stats.IO{
			{DeviceIO: cgroups.DeviceIO{Major: 254, Op: "Read", Bytes: 4096, IOs: 1}, Device: "/dev/vda"},
			{DeviceIO: cgroups.DeviceIO{Major: 254, Op: "Write", Bytes: 8192, IOs: 2}, Device: "/dev/vda"},
		},
		Processes: &stats.Processes{At: at, Count: 2, FDs: 9, Sockets: 2, MaxOpenFiles: 1024, HasMaxOpenFiles: true},
		Disk: &stats.Disk{At: at, UsedBytes: 4096, Inodes: 3, Device: "/dev/vda",
			CapacityBytes: 1 << 30, InodesTotal: 1000, InodesFree: 900},
	}
}

func testPod() sandbox.Sandbox {
	return sandbox.Sandbox{ID: "p1", State: sandbox.StateReady, CgroupParent: "/peapod/burstable/podu1",
		Config: sandbox.Config{Metadata: sandbox.Metadata{Name: "pod", Namespace: "ns", UID: "u1"}}}
}

func testContainer(res *cgroups.Resources) container.Container {
	return container.Container{ID: "c1", PodID: "p1", State: container.StateRunning,
		CgroupPath: "/peapod/burstable/podu1/c1", StartedAt: time.Unix(1700000000, 0),
		Config: container.Config{Metadata: container.Metadata{Name: "app"}, Image: "busybox", Resources: res}}
}

// byName indexes metrics by name and their extra label values (those after the base labels).
func byName(ms []*runtimeapi.Metric) map[string]map[string]uint64 {
	out := map[string]map[string]uint64{}
	for _, m := range ms {
		if out[m.Name] == nil {
			out[m.Name] = map[string]uint64{}
		}
		extra := ""
		for i, v := range m.LabelValues[len(containerLabels):] {
			if i > 0 {
				extra += ","
			}
			extra += v
		}
		out[m.Name][extra] = m.Value.GetValue()
	}
	return out
}

// TestContainerMetricsComplete: a full sample plus a pod's network yields a value for every
// descriptor, each with as many label values as its descriptor has keys and its type.
func TestContainerMetricsComplete(t *testing.T) {
	at := time.Unix(1700000100, 0)
	res := &cgroups.Resources{CPUPeriod: 100000, CPUQuota: 20000, CPUShares: 512,
		MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 64 << 20}
	ms := containerMetrics(testPod(), testContainer(res), fullSample(at))
	ms = append(ms, podMetrics(testPod(), stats.Pod{ID: "p1", NetworkAt: at,
		Interfaces: []stats.Interface{{Name: "eth0", RxBytes: 1}}})...)
	got := map[string]bool{}
	for _, m := range ms {
		d, ok := metricDescByName[m.Name]
		if !ok {
			t.Errorf("%s reported but not described", m.Name)
			continue
		}
		got[m.Name] = true
		if len(m.LabelValues) != len(d.labels) || m.MetricType != d.typ || m.Value == nil || m.Timestamp != at.UnixNano() {
			t.Errorf("%s: %d label values for %d keys, type %v (want %v), value %v, timestamp %d",
				m.Name, len(m.LabelValues), len(d.labels), m.MetricType, d.typ, m.Value, m.Timestamp)
		}
	}
	for _, d := range metricDescs {
		if !got[d.name] {
			t.Errorf("%s has no value", d.name)
		}
	}
}

func TestContainerMetricsValues(t *testing.T) {
	at := time.Unix(1700000100, 0)
	res := &cgroups.Resources{CPUPeriod: 50000, CPUQuota: 20000, CPUShares: 512,
		MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 96 << 20, Unified: map[string]string{"memory.low": "1048576"}}
	got := byName(containerMetrics(testPod(), testContainer(res), fullSample(at)))
	want := map[string]map[string]uint64{
		"container_cpu_usage_seconds_total":         {"total": 3},
		"container_cpu_user_seconds_total":          {"": 2},
		"container_cpu_system_seconds_total":        {"": 1},
		"container_cpu_cfs_periods_total":           {"": 40},
		"container_cpu_cfs_throttled_periods_total": {"": 10},
		"container_cpu_cfs_throttled_seconds_total": {"": 2},
		"container_memory_failures_total": {"pgfault,container": 400, "pgmajfault,container": 4,
			"pgfault,hierarchy": 500, "pgmajfault,hierarchy": 5},
		"container_memory_max_usage_bytes":   {"": 150},
		"container_memory_kernel_usage":      {"": 12},
		"container_memory_mapped_file":       {"": 8},
		"container_memory_cache":             {"": 40},
		"container_memory_failcnt":           {"": 2},
		"container_oom_events_total":         {"": 1},
		"container_processes":                {"": 2},
		"container_threads":                  {"": 7},
		"container_threads_max":              {"": 1024},
		"container_file_descriptors":         {"": 9},
		"container_sockets":                  {"": 2},
		"container_ulimits_soft":             {"max_open_files": 1024},
		"container_blkio_device_usage_total": {"/dev/vda,254,0,Read": 4096, "/dev/vda,254,0,Write": 8192},
		"container_fs_reads_bytes_total":     {"/dev/vda": 4096},
		"container_fs_reads_total":           {"/dev/vda": 1},
		"container_fs_writes_bytes_total":    {"/dev/vda": 8192},
		"container_fs_writes_total":          {"/dev/vda": 2},
		"container_fs_usage_bytes":           {"/dev/vda": 4096},
		"container_fs_limit_bytes":           {"/dev/vda": 1 << 30},
		"container_fs_inodes_total":          {"/dev/vda": 1000},
		"container_fs_inodes_free":           {"/dev/vda": 900},
		"container_spec_cpu_period":          {"": 50000},
		"container_spec_cpu_quota":           {"": 20000},
		"container_spec_cpu_shares":          {"": 512},
		"container_spec_memory_limit_bytes":  {"": 64 << 20},
		// memory+swap, as CRI gives it
		"container_spec_memory_swap_limit_bytes":        {"": 96 << 20},
		"container_spec_memory_reservation_limit_bytes": {"": 1 << 20},
		"container_start_time_seconds":                  {"": 1700000000},
		"container_last_seen":                           {"": 1700000100},
		"container_pressure_cpu_waiting_seconds_total":  {"": 3},
		"container_pressure_cpu_stalled_seconds_total":  {"": 1},
	}
	for name, w := range want {
		if diff := cmp.Diff(w, got[name]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	if l := containerMetrics(testPod(), testContainer(res), fullSample(at))[0].LabelValues; !slices.Equal(l[:len(containerLabels)],
		[]string{"app", "/peapod/burstable/podu1/c1", "busybox", "c1", "ns", "pod"}) {
		t.Errorf("base labels %v", l)
	}
}

// TestContainerMetricsSparse: a container without resources reports the kernel's defaults as
// its spec; one never read (no cgroup yet) reports only its spec; v1 (no PSI) no pressure.
func TestContainerMetricsSparse(t *testing.T) {
	at := time.Unix(1700000100, 0)
	s := fullSample(at)
	s.Cgroup.CPUPressure, s.Cgroup.MemoryPressure, s.Cgroup.IOPressure = nil, nil, nil
	s.IO, s.Processes.HasMaxOpenFiles = nil, false
	got := byName(containerMetrics(testPod(), testContainer(nil), s))
	for name, w := range map[string]uint64{
		"container_spec_cpu_period": 100000, "container_spec_cpu_shares": 1024,
		"container_spec_memory_limit_bytes": 0, "container_spec_memory_swap_limit_bytes": 0,
		"container_spec_memory_reservation_limit_bytes": 0,
	} {
		if v, ok := got[name][""]; !ok || v != w {
			t.Errorf("%s = %d (%v), want %d", name, v, ok, w)
		}
	}
	for _, name := range []string{"container_spec_cpu_quota", "container_pressure_cpu_waiting_seconds_total",
		"container_blkio_device_usage_total", "container_fs_reads_total", "container_ulimits_soft"} {
		if _, ok := got[name]; ok {
			t.Errorf("%s reported without its source", name)
		}
	}

	never := byName(containerMetrics(testPod(), testContainer(nil), stats.Container{ID: "c1"}))
	var names []string
	for n := range never {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"container_spec_cpu_period", "container_spec_cpu_shares", "container_spec_memory_limit_bytes",
		"container_spec_memory_reservation_limit_bytes", "container_spec_memory_swap_limit_bytes", "container_start_time_seconds"}
	if !slices.Equal(names, want) {
		t.Errorf("never-read container reports %v, want %v", names, want)
	}
}

func TestPodMetrics(t *testing.T) {
	at := time.Unix(1700000100, 0)
	if ms := podMetrics(testPod(), stats.Pod{ID: "p1"}); len(ms) != 0 {
		t.Errorf("pod without network read: %d metrics", len(ms))
	}
	ms := podMetrics(testPod(), stats.Pod{ID: "p1", NetworkAt: at, Interfaces: []stats.Interface{
		{Name: "eth0", RxBytes: 1, TxBytes: 2, RxErrors: 3, TxErrors: 4, RxPackets: 5, TxPackets: 6, RxDropped: 7, TxDropped: 8}}})
	if len(ms) != 8 {
		t.Fatalf("%d network metrics, want 8", len(ms))
	}
	if l := ms[0].LabelValues; !slices.Equal(l, []string{"POD", "/peapod/burstable/podu1", "", "p1", "ns", "pod", "eth0"}) {
		t.Errorf("labels %v", l)
	}
	if got := byName(ms)["container_network_transmit_packets_dropped_total"]["eth0"]; got != 8 {
		t.Errorf("tx dropped %d, want 8", got)
	}
}
