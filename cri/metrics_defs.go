package cri

import (
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The metrics a kubelet with PodAndContainerStatsFromCRI serves on /metrics/cadvisor instead
// of asking cadvisor: cadvisor's names, help texts, types and label keys. CRI carries values as
// unsigned integers, so the seconds counters are whole seconds (as containerd and CRI-O report
// them) and a limit that cadvisor reports as -1 (unlimited) is left out.
var (
	containerLabels = []string{"container", "id", "image", "name", "namespace", "pod"}
	cpuLabels       = withKeys("cpu")
	networkLabels   = withKeys("interface")
	fsLabels        = withKeys("device")
	blkioLabels     = withKeys("device", "major", "minor", "operation")
	failureLabels   = withKeys("failure_type", "scope")
	ulimitLabels    = withKeys("ulimit")
)

func withKeys(extra ...string) []string {
	return append(append([]string(nil), containerLabels...), extra...)
}

type metricDesc struct {
	name, help string
	typ        runtimeapi.MetricType
	labels     []string
}

const (
	counter = runtimeapi.MetricType_COUNTER
	gauge   = runtimeapi.MetricType_GAUGE
)

// metricDescs is every metric peapod reports. Hugetlb metrics are not among them: they would
// cost every container a read of each page size's files for a resource few pods use.
var metricDescs = []metricDesc{
	// cpu: cgroup cpuacct (v1) or cpu.stat (v2)
	{"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", counter, cpuLabels},
	{"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", counter, containerLabels},
	{"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", counter, containerLabels},
	{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", counter, containerLabels},
	{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", counter, containerLabels},
	{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", counter, containerLabels},

	// memory
	{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed", gauge, containerLabels},
	{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", gauge, containerLabels},
	{"container_memory_working_set_bytes", "Current working set in bytes.", gauge, containerLabels},
	{"container_memory_rss", "Size of RSS in bytes.", gauge, containerLabels},
	{"container_memory_cache", "Number of bytes of page cache memory.", gauge, containerLabels},
	{"container_memory_mapped_file", "Size of memory mapped files in bytes.", gauge, containerLabels},
	{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", gauge, containerLabels},
	{"container_memory_swap", "Container swap usage in bytes.", gauge, containerLabels},
	{"container_memory_failcnt", "Number of memory usage hits limits", counter, containerLabels},
	{"container_memory_failures_total", "Cumulative count of memory allocation failures.", counter, failureLabels},
	{"container_oom_events_total", "Count of out of memory events observed for the container", counter, containerLabels},

	// pressure (cgroup v2 only)
	{"container_pressure_cpu_waiting_seconds_total", "Total time duration tasks in the container have waited due to CPU congestion.", counter, containerLabels},
	{"container_pressure_cpu_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to CPU congestion.", counter, containerLabels},
	{"container_pressure_memory_waiting_seconds_total", "Total time duration tasks in the container have waited due to memory congestion.", counter, containerLabels},
	{"container_pressure_memory_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to memory congestion.", counter, containerLabels},
	{"container_pressure_io_waiting_seconds_total", "Total time duration tasks in the container have waited due to IO congestion.", counter, containerLabels},
	{"container_pressure_io_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to IO congestion.", counter, containerLabels},

	// processes: the cgroup's pids controller and /proc
	{"container_processes", "Number of processes running inside the container.", gauge, containerLabels},
	{"container_threads", "Number of threads running inside the container", gauge, containerLabels},
	{"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero", gauge, containerLabels},
	{"container_file_descriptors", "Number of open file descriptors for the container.", gauge, containerLabels},
	{"container_sockets", "Number of open sockets for the container.", gauge, containerLabels},
	{"container_ulimits_soft", "Soft ulimit values for the container root process. Unlimited if -1, except priority and nice", gauge, ulimitLabels},

	// writable layer and the filesystem holding it
	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", gauge, fsLabels},
	{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", gauge, fsLabels},
	{"container_fs_inodes_total", "Number of Inodes", gauge, fsLabels},
	{"container_fs_inodes_free", "Number of available Inodes", gauge, fsLabels},

	// block I/O: cgroup blkio (v1) or io.stat (v2)
	{"container_fs_reads_bytes_total", "Cumulative count of bytes read", counter, fsLabels},
	{"container_fs_reads_total", "Cumulative count of reads completed", counter, fsLabels},
	{"container_fs_writes_bytes_total", "Cumulative count of bytes written", counter, fsLabels},
	{"container_fs_writes_total", "Cumulative count of writes completed", counter, fsLabels},
	{"container_blkio_device_usage_total", "Blkio Device bytes usage", counter, blkioLabels},

	// network: the pod's namespace, reported for container "POD"
	{"container_network_receive_bytes_total", "Cumulative count of bytes received", counter, networkLabels},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", counter, networkLabels},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", counter, networkLabels},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", counter, networkLabels},
	{"container_network_receive_packets_total", "Cumulative count of packets received", counter, networkLabels},
	{"container_network_transmit_packets_total", "Cumulative count of packets transmitted", counter, networkLabels},
	{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving", counter, networkLabels},
	{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting", counter, networkLabels},

	// spec: the container's resources
	{"container_spec_cpu_period", "CPU period of the container.", gauge, containerLabels},
	{"container_spec_cpu_shares", "CPU share of the container.", gauge, containerLabels},
	{"container_spec_cpu_quota", "CPU quota of the container.", gauge, containerLabels},
	{"container_spec_memory_limit_bytes", "Memory limit for the container.", gauge, containerLabels},
	{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", gauge, containerLabels},
	{"container_spec_memory_reservation_limit_bytes", "Memory reservation limit for the container.", gauge, containerLabels},

	// lifecycle
	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", gauge, containerLabels},
	{"container_last_seen", "Last time a container was seen by the exporter", gauge, containerLabels},
}

var metricDescByName = func() map[string]metricDesc {
	m := make(map[string]metricDesc, len(metricDescs))
	for _, d := range metricDescs {
		m[d.name] = d
	}
	return m
}()
