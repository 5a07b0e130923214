package cgroups

import (
	"github.com/opencontainers/cgroups"
)

// unlimited is where a v1 limit means "no limit": the kernel reports the largest page-aligned
// int64 (9223372036854771712), v2 "max" (math.MaxUint64 from the library).
const unlimited = 1 << 62

// Stats is what CRI's pod and container stats need from one cgroup, its subtree included.
type Stats struct {
	CPUUsageNanos uint64 // cumulative cpu time
	// MemoryUsageBytes is everything charged, page cache included.
	MemoryUsageBytes uint64
	// MemoryWorkingSetBytes is usage minus inactive file pages, what the kubelet evicts on:
	// usage - total_inactive_file on v1, usage - inactive_file on v2, never below 0.
	MemoryWorkingSetBytes uint64
	MemoryRSSBytes        uint64 // total_rss on v1, anon on v2
	PageFaults            uint64
	MajorPageFaults       uint64
	Pids                  uint64 // processes and threads (pids.current)
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
	rss := "rss"
	if v2 {
		rss = "anon"
	}
	mem := st.MemoryStats
	out := Stats{
		CPUUsageNanos:    st.CpuStats.CpuUsage.TotalUsage,
		MemoryUsageBytes: mem.Usage.Usage,
		MemoryRSSBytes:   key(rss),
		PageFaults:       key("pgfault"),
		MajorPageFaults:  key("pgmajfault"),
		Pids:             st.PidsStats.Current,
		CPUPressure:      pressure(st.CpuStats.PSI),
		MemoryPressure:   pressure(mem.PSI),
		IOPressure:       pressure(st.BlkioStats.PSI),
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
		out.SwapUsageBytes = mem.SwapOnlyUsage.Usage
		if mem.SwapOnlyUsage.Limit < unlimited {
			out.SwapLimitBytes = mem.SwapOnlyUsage.Limit
		}
		return out
	}
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

func pressure(p *cgroups.PSIStats) *Pressure {
	if p == nil {
		return nil
	}
	conv := func(d cgroups.PSIData) PressureData {
		return PressureData{Avg10: d.Avg10, Avg60: d.Avg60, Avg300: d.Avg300, Total: d.Total}
	}
	return &Pressure{Some: conv(p.Some), Full: conv(p.Full)}
}
