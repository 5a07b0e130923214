package cgroups

import (
	"cmp"
	"slices"

	"github.com/opencontainers/cgroups"
)

// unlimited is where a v1 limit means "no limit": the kernel reports the largest page-aligned
// int64 (9223372036854771712), v2 "max" (math.MaxUint64 from the library).
const unlimited = 1 << 62

// Extra selects what Stats reads beyond the cpu, memory and pids figures every caller gets.
// A pod's stats need none; a container's metrics need all.
type Extra uint8

const (
	// ExtraIO reads block I/O per device: v1's blkio recursive counters, v2's io.stat.
	ExtraIO Extra = 1 << iota
	// ExtraEvents reads the OOM kill counter (v1 memory.oom_control, v2 memory.events) and,
	// on v2, memory.events' "max" as MemoryFailcnt.
	ExtraEvents
	// ExtraProcs lists the processes in the cgroup (Procs).
	ExtraProcs
)

// Stats is what CRI's pod and container stats and metrics need from one cgroup, its subtree
// included unless a field says otherwise.
type Stats struct {
	CPUUsageNanos uint64 // cumulative cpu time
	// CPUUserNanos and CPUSystemNanos split it: cpuacct.stat on v1 (USER_HZ ticks, so 10 ms
	// steps), cpu.stat user_usec and system_usec on v2.
	CPUUserNanos, CPUSystemNanos uint64
	// CPUPeriods, CPUThrottledPeriods and CPUThrottledNanos are CFS bandwidth control's
	// counters (cpu.stat nr_periods, nr_throttled, throttled_time); zero without a cpu quota.
	CPUPeriods, CPUThrottledPeriods, CPUThrottledNanos uint64
	// MemoryUsageBytes is everything charged, page cache included.
	MemoryUsageBytes uint64
	// MemoryMaxUsageBytes is the highest usage recorded: memory.max_usage_in_bytes on v1,
	// memory.peak on v2 (kernel 5.19+, else 0).
	MemoryMaxUsageBytes uint64
	// MemoryWorkingSetBytes is usage minus inactive file pages, what the kubelet evicts on:
	// usage - total_inactive_file on v1, usage - inactive_file on v2, never below 0.
	MemoryWorkingSetBytes uint64
	MemoryRSSBytes        uint64 // total_rss on v1, anon on v2
	// MemoryCacheBytes is page cache (total_cache on v1, file on v2) and
	// MemoryMappedFileBytes the part of it mapped into processes (total_mapped_file, file_mapped).
	MemoryCacheBytes, MemoryMappedFileBytes uint64
	// MemoryKernelBytes is kernel memory charged to the cgroup: memory.kmem.usage_in_bytes on
	// v1, memory.stat "kernel" on v2 (kernel 5.18+; before, the sum of its parts).
	MemoryKernelBytes uint64
	// MemoryFailcnt counts how often usage hit the limit: memory.failcnt on v1, memory.events
	// "max" on v2 (with ExtraEvents only).
	MemoryFailcnt uint64
	// PageFaults and MajorPageFaults count the subtree's faults; LocalPageFaults and
	// LocalMajorPageFaults the cgroup's own (v1's memory.stat without "total_"; on v2, which
	// only has hierarchical figures, the same as the subtree's).
	PageFaults, MajorPageFaults           uint64
	LocalPageFaults, LocalMajorPageFaults uint64
	Pids                                  uint64 // processes and threads (pids.current)
	// PidsLimit is pids.max, 0 when unlimited.
	PidsLimit uint64
	// MemoryLimitBytes is the cgroup's own memory limit, 0 when it has none.
	MemoryLimitBytes uint64
	// SwapUsageBytes is swap in use: memory.memsw.usage_in_bytes minus memory usage on v1
	// (0 when the kernel does no swap accounting), memory.swap.current on v2.
	SwapUsageBytes uint64
	// SwapLimitBytes is how much swap the cgroup may use, 0 when unlimited or unknown: on v1
	// memsw limit minus memory limit, on v2 memory.swap.max.
	SwapLimitBytes uint64
	// CPUPressure, MemoryPressure and IOPressure are the cgroup's PSI figures, nil where the
	// kernel offers none: cgroup v1 has no per-cgroup pressure files, and v2 has them only
	// with CONFIG_PSI (IOPressure is read on v2 only).
	CPUPressure, MemoryPressure, IOPressure *Pressure

	// OOMKills counts processes the OOM killer killed in the cgroup (ExtraEvents).
	OOMKills uint64
	// IO is block I/O per device and operation (ExtraIO); empty where the kernel accounts
	// none. On v1 since kernel 6.9 blk-throttle, which keeps these counters, only starts
	// on a disk once some cgroup sets a throttle rule on it.
	IO []DeviceIO
	// Procs are the processes (thread group ids) in the cgroup itself, not below it, as
	// cadvisor counts a container's processes (ExtraProcs).
	Procs []int
}

// DeviceIO is a cgroup's I/O on one block device for one operation, as the kernel names it:
// "Read", "Write", and on v1 also "Sync", "Async", "Discard" and "Total".
type DeviceIO struct {
	Major, Minor uint64
	Op           string
	Bytes        uint64 // bytes transferred (io_service_bytes, io.stat rbytes/wbytes)
	IOs          uint64 // requests completed (io_serviced, io.stat rios/wios)
}

// Pressure is one resource's pressure stall information.
type Pressure struct {
	Some, Full PressureData
}

// PressureData is one line of a *.pressure file: the share of time stalled, averaged over
// 10, 60 and 300 seconds (percent), and the total stall time in microseconds.
type PressureData struct {
	Avg10, Avg60, Avg300 float64
	Total                uint64
}

// statsFrom picks Stats out of the library's stats; v1's memory.stat keys carry a "total_"
// prefix for the hierarchical sums, v2's are hierarchical already.
func statsFrom(st *cgroups.Stats, v2 bool) Stats {
	key := func(k string) uint64 {
		if !v2 {
			k = "total_" + k
		}
		return st.MemoryStats.Stats[k]
	}
	rss, cache, mapped := "rss", "cache", "mapped_file"
	if v2 {
		rss, cache, mapped = "anon", "file", "file_mapped"
	}
	mem, cpu := st.MemoryStats, st.CpuStats
	out := Stats{
		CPUUsageNanos:         cpu.CpuUsage.TotalUsage,
		CPUUserNanos:          cpu.CpuUsage.UsageInUsermode,
		CPUSystemNanos:        cpu.CpuUsage.UsageInKernelmode,
		CPUPeriods:            cpu.ThrottlingData.Periods,
		CPUThrottledPeriods:   cpu.ThrottlingData.ThrottledPeriods,
		CPUThrottledNanos:     cpu.ThrottlingData.ThrottledTime,
		MemoryUsageBytes:      mem.Usage.Usage,
		MemoryMaxUsageBytes:   mem.Usage.MaxUsage,
		MemoryRSSBytes:        key(rss),
		MemoryCacheBytes:      key(cache),
		MemoryMappedFileBytes: key(mapped),
		MemoryFailcnt:         mem.Usage.Failcnt,
		PageFaults:            key("pgfault"),
		MajorPageFaults:       key("pgmajfault"),
		LocalPageFaults:       mem.Stats["pgfault"],
		LocalMajorPageFaults:  mem.Stats["pgmajfault"],
		Pids:                  st.PidsStats.Current,
		PidsLimit:             st.PidsStats.Limit,
		CPUPressure:           pressure(cpu.PSI),
		MemoryPressure:        pressure(mem.PSI),
		IOPressure:            pressure(st.BlkioStats.PSI),
		IO:                    deviceIO(st.BlkioStats),
	}
	out.MemoryWorkingSetBytes = out.MemoryUsageBytes
	if inactive := key("inactive_file"); inactive < out.MemoryUsageBytes {
		out.MemoryWorkingSetBytes -= inactive
	} else {
		out.MemoryWorkingSetBytes = 0
	}
	if mem.Usage.Limit < unlimited {
		out.MemoryLimitBytes = mem.Usage.Limit
	}
	if v2 {
		out.MemoryKernelBytes = kernelV2(mem.Stats)
		out.SwapUsageBytes = mem.SwapOnlyUsage.Usage
		if mem.SwapOnlyUsage.Limit < unlimited {
			out.SwapLimitBytes = mem.SwapOnlyUsage.Limit
		}
		return out
	}
	out.MemoryKernelBytes = mem.KernelUsage.Usage
	// v1: memsw counts memory plus swap; without swap accounting its files are absent and
	// the library reports zeros.
	if mem.SwapUsage.Usage > mem.Usage.Usage {
		out.SwapUsageBytes = mem.SwapUsage.Usage - mem.Usage.Usage
	}
	if l := mem.SwapUsage.Limit; l < unlimited && l > mem.Usage.Limit {
		out.SwapLimitBytes = l - mem.Usage.Limit
	}
	return out
}

// kernelV2 is v2's kernel memory: memory.stat "kernel" since 5.18, before that the parts it
// sums (cgroup v2 has no kmem counter of its own).
func kernelV2(stat map[string]uint64) uint64 {
	if v, ok := stat["kernel"]; ok {
		return v
	}
	return stat["kernel_stack"] + stat["pagetables"] + stat["percpu"] + stat["sock"] + stat["slab"] + stat["vmalloc"]
}

// deviceIO merges the library's bytes and requests tables into one entry per device and
// operation, in (major, minor) order and the kernel's order of operations.
func deviceIO(b cgroups.BlkioStats) []DeviceIO {
	if len(b.IoServiceBytesRecursive) == 0 && len(b.IoServicedRecursive) == 0 {
		return nil
	}
	type key struct {
		major, minor uint64
		op           string
	}
	var out []DeviceIO
	at := map[key]int{}
	entry := func(e cgroups.BlkioStatEntry) *DeviceIO {
		k := key{e.Major, e.Minor, e.Op}
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			out = append(out, DeviceIO{Major: e.Major, Minor: e.Minor, Op: e.Op})
		}
		return &out[i]
	}
	for _, e := range b.IoServiceBytesRecursive {
		entry(e).Bytes = e.Value
	}
	for _, e := range b.IoServicedRecursive {
		entry(e).IOs = e.Value
	}
	slices.SortStableFunc(out, func(a, b DeviceIO) int {
		return cmp.Or(cmp.Compare(a.Major, b.Major), cmp.Compare(a.Minor, b.Minor))
	})
	return out
}

func pressure(p *cgroups.PSIStats) *Pressure {
	if p == nil {
		return nil
	}
	conv := func(d cgroups.PSIData) PressureData {
		return PressureData{Avg10: d.Avg10, Avg60: d.Avg60, Avg300: d.Avg300, Total: d.Total}
	}
	return &Pressure{Some: conv(p.Some), Full: conv(p.Full)}
}
