package cgroups

import (
	"github.com/opencontainers/cgroups"
)

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
	out := Stats{
		CPUUsageNanos:    st.CpuStats.CpuUsage.TotalUsage,
		MemoryUsageBytes: st.MemoryStats.Usage.Usage,
		MemoryRSSBytes:   key(rss),
		PageFaults:       key("pgfault"),
		MajorPageFaults:  key("pgmajfault"),
		Pids:             st.PidsStats.Current,
	}
	out.MemoryWorkingSetBytes = out.MemoryUsageBytes
	if inactive := key("inactive_file"); inactive < out.MemoryUsageBytes {
		out.MemoryWorkingSetBytes -= inactive
	} else {
		out.MemoryWorkingSetBytes = 0
	}
	return out
}
