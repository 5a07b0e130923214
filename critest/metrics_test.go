package critest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// expectedMetrics is cri-tools' expectedMetricDescriptorNames (pkg/validate/pod.go): what a
// kubelet served from cadvisor, and so what it serves from ListPodSandboxMetrics.
var expectedMetrics = []string{
	"container_blkio_device_usage_total", "container_cpu_cfs_periods_total",
	"container_cpu_cfs_throttled_periods_total", "container_cpu_cfs_throttled_seconds_total",
	"container_cpu_system_seconds_total", "container_cpu_usage_seconds_total",
	"container_cpu_user_seconds_total", "container_file_descriptors", "container_fs_inodes_free",
	"container_fs_inodes_total", "container_fs_limit_bytes", "container_fs_reads_bytes_total",
	"container_fs_reads_total", "container_fs_usage_bytes", "container_fs_writes_bytes_total",
	"container_fs_writes_total", "container_hugetlb_max_usage_bytes", "container_hugetlb_usage_bytes",
	"container_last_seen", "container_memory_cache", "container_memory_failcnt",
	"container_memory_failures_total", "container_memory_kernel_usage", "container_memory_mapped_file",
	"container_memory_max_usage_bytes", "container_memory_rss", "container_memory_swap",
	"container_memory_usage_bytes", "container_memory_working_set_bytes",
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

// notDescribed are expected metrics peapod does not report: hugetlb (a read per page size
// for every container, for what few pods use).
var notDescribed = []string{"container_hugetlb_max_usage_bytes", "container_hugetlb_usage_bytes"}

// valuesOptional are described metrics a running pod may lack on some hosts: per-cgroup
// pressure exists on cgroup v2 only, and block I/O counters only where the kernel accounts it
// (on v1 since kernel 6.9 only once some cgroup set a blk-throttle rule on the disk).
var valuesOptional = []string{
	"container_pressure_cpu_stalled_seconds_total", "container_pressure_cpu_waiting_seconds_total",
	"container_pressure_io_stalled_seconds_total", "container_pressure_io_waiting_seconds_total",
	"container_pressure_memory_stalled_seconds_total", "container_pressure_memory_waiting_seconds_total",
	"container_blkio_device_usage_total", "container_fs_reads_bytes_total", "container_fs_reads_total",
	"container_fs_writes_bytes_total", "container_fs_writes_total",
}

// podMetricValues indexes one pod's metrics: owner ("" for the pod's own, else the container
// id) → metric name → the metrics carrying it.
func podMetricValues(list []*runtimeapi.PodSandboxMetrics, podID string) map[string]map[string][]*runtimeapi.Metric {
	out := map[string]map[string][]*runtimeapi.Metric{}
	put := func(owner string, ms []*runtimeapi.Metric) {
		if out[owner] == nil {
			out[owner] = map[string][]*runtimeapi.Metric{}
		}
		for _, m := range ms {
			out[owner][m.GetName()] = append(out[owner][m.GetName()], m)
		}
	}
	for _, pm := range list {
		if pm.GetPodSandboxId() != podID {
			continue
		}
		put("", pm.GetMetrics())
		for _, cm := range pm.GetContainerMetrics() {
			put(cm.GetContainerId(), cm.GetMetrics())
		}
	}
	return out
}

// value returns the value of owner's metric name whose label values end with suffix.
func value(v map[string]map[string][]*runtimeapi.Metric, owner, name string, suffix ...string) (uint64, bool) {
	for _, m := range v[owner][name] {
		l := m.GetLabelValues()
		if len(l) >= len(suffix) && slices.Equal(l[len(l)-len(suffix):], suffix) {
			return m.GetValue().GetValue(), true
		}
	}
	return 0, false
}

// TestMetricsPod: the descriptors cover what cri-tools expects, with help and label keys;
// right after its containers start, a pod has a value for each (as cri-tools' "listing pod
// sandbox metrics" checks, with label values matching the keys); and the values are the
// kernel's: a throttled busy loop under a 20% quota, an OOM kill under a 24 MiB limit, the
// resources each container was given, its processes and its writable layer's filesystem.
func TestMetricsPod(t *testing.T) {
	p := newTestPod(t, "metrics", nil)
	ctx := framework.Context(t)

	descs, err := p.rt.ListMetricDescriptors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]int{}
	for _, d := range descs {
		keys[d.GetName()] = len(d.GetLabelKeys())
		if d.GetHelp() == "" || len(d.GetLabelKeys()) == 0 {
			t.Errorf("descriptor %s: help %q, label keys %v", d.GetName(), d.GetHelp(), d.GetLabelKeys())
		}
	}
	for _, n := range expectedMetrics {
		if _, ok := keys[n]; !ok && !slices.Contains(notDescribed, n) {
			t.Errorf("descriptor %s missing", n)
		}
	}

	// As cri-tools' createContainerForMetrics, with a busy loop.
	busyCfg := statsShell("busy", "while :; do :; done")
	busyCfg.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 20000, CpuShares: 1024,
		MemoryLimitInBytes: 64 * mib, MemorySwapLimitInBytes: 64 * mib}
	busy := p.run(t, busyCfg)
	// tail of /dev/zero buffers an endless line until the OOM killer ends it; sh lives on.
	oomCfg := statsShell("oom", "tail /dev/zero; exec sleep 3600")
	oomCfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 24 * mib}
	oom := p.run(t, oomCfg)
	p.sh(t, busy, "mkdir -p /var/lib/mydisktest && for i in $(seq 1 10); do echo hi >> /var/lib/mydisktest/f$i; done; sync")

	list, err := p.rt.ListPodSandboxMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := podMetricValues(list, p.id)
	for _, ctr := range []string{busy, oom} {
		if now[ctr] == nil {
			t.Fatalf("no metrics for container %s right after it started", ctr)
		}
	}
	for name, n := range keys {
		var found bool
		for _, owner := range []string{"", busy, oom} {
			for _, m := range now[owner][name] {
				found = true
				if len(m.GetLabelValues()) != n || m.GetValue() == nil || m.GetTimestamp() == 0 {
					t.Errorf("%s: %d label values for %d keys, value %v, timestamp %d", name, len(m.GetLabelValues()), n, m.GetValue(), m.GetTimestamp())
				}
			}
		}
		if !found && !slices.Contains(valuesOptional, name) {
			t.Errorf("%s has no value right after the pod's containers started", name)
		}
	}
	if _, ok := value(now, "", "container_network_receive_bytes_total", "eth0"); !ok {
		t.Error("no network metrics for the pod's eth0")
	}

	var last map[string]map[string][]*runtimeapi.Metric
	pollStats(t, 15*time.Second, func() (map[string]map[string][]*runtimeapi.Metric, error) {
		l, err := p.rt.ListPodSandboxMetrics(ctx)
		last = podMetricValues(l, p.id)
		return last, err
	}, func(v map[string]map[string][]*runtimeapi.Metric) error {
		if n, _ := value(v, busy, "container_cpu_cfs_throttled_periods_total"); n == 0 {
			return fmt.Errorf("busy not throttled yet")
		}
		if n, _ := value(v, oom, "container_oom_events_total"); n == 0 {
			return fmt.Errorf("no OOM kill counted for oom yet")
		}
		// The OOM-killed tail may be counted until sh, once it is reaped, execs sleep.
		if n, _ := value(v, oom, "container_processes"); n != 1 {
			return fmt.Errorf("oom has %d processes, not yet only its sleep", n)
		}
		// A pass sampled while the exec ran counts its shell too: wait for one after it.
		if n, _ := value(v, busy, "container_processes"); n != 1 {
			return fmt.Errorf("busy has %d processes, not yet only its loop", n)
		}
		// The writable layer's usage is sampled in the background: wait for a pass that
		// follows the exec's writes.
		if n, _ := value(v, busy, "container_fs_usage_bytes"); n < 10*4096 {
			return fmt.Errorf("busy's writable layer usage %d does not count the exec's files yet", n)
		}
		return nil
	})
	for _, tc := range []struct {
		owner, name string
		labels      []string
		lo, hi      uint64
	}{
		{busy, "container_spec_cpu_period", nil, 100000, 100000},
		{busy, "container_spec_cpu_quota", nil, 20000, 20000},
		{busy, "container_spec_cpu_shares", nil, 1024, 1024},
		{busy, "container_spec_memory_limit_bytes", nil, 64 * mib, 64 * mib},
		{busy, "container_spec_memory_swap_limit_bytes", nil, 64 * mib, 64 * mib},
		{oom, "container_spec_memory_limit_bytes", nil, 24 * mib, 24 * mib},
		{busy, "container_cpu_cfs_periods_total", nil, 1, 1 << 30},
		{busy, "container_processes", nil, 1, 1},
		{busy, "container_threads", nil, 1, 1},
		{busy, "container_file_descriptors", nil, 3, 64},
		{busy, "container_ulimits_soft", []string{"max_open_files"}, 1, 1 << 30},
		{busy, "container_memory_failures_total", []string{"pgfault", "hierarchy"}, 1, 1 << 40},
		{busy, "container_fs_inodes_total", nil, 1, 1 << 40},
		{busy, "container_fs_limit_bytes", nil, 1 << 20, 1 << 60},
		// the exec wrote 10 files in a new directory (and mkdir -p may make /var/lib)
		{busy, "container_fs_usage_bytes", nil, 10 * 4096, 1 << 30},
		{oom, "container_memory_max_usage_bytes", nil, 20 * mib, 24 * mib},
		{oom, "container_memory_failcnt", nil, 1, 1 << 40},
		{oom, "container_processes", nil, 1, 1},
		{busy, "container_start_time_seconds", nil, uint64(time.Now().Add(-time.Minute).Unix()), uint64(time.Now().Unix())},
		{busy, "container_last_seen", nil, uint64(time.Now().Add(-10 * time.Second).Unix()), uint64(time.Now().Unix()) + 1},
	} {
		// fs metrics carry the device label: match any value.
		v, ok := value(last, tc.owner, tc.name, tc.labels...)
		if !ok || v < tc.lo || v > tc.hi {
			t.Errorf("%s of %s = %d (%v), want %d..%d", tc.name, ctrName(tc.owner, busy), v, ok, tc.lo, tc.hi)
		}
	}
	if ms := last[busy]["container_fs_usage_bytes"]; len(ms) > 0 {
		dev := ms[0].GetLabelValues()[len(ms[0].GetLabelValues())-1]
		if !strings.HasPrefix(dev, "/dev/") && dev != "overlay" && dev != "tmpfs" {
			t.Errorf("writable layer's device label %q", dev)
		}
		t.Logf("writable layer on %s", dev)
	}
}

func ctrName(id, busy string) string {
	if id == busy {
		return "busy"
	}
	return "oom"
}
