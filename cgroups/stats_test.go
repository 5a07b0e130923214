package cgroups

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/cgroups"
)

func TestStatsFromLimitsSwapPressure(t *testing.T) {
	const v1Unlimited = 9223372036854771712
	psi := &cgroups.PSIStats{Some: cgroups.PSIData{Avg10: 1.5, Total: 42}, Full: cgroups.PSIData{Avg60: 0.5}}
	wantPSI := &Pressure{Some: PressureData{Avg10: 1.5, Total: 42}, Full: PressureData{Avg60: 0.5}}
	tests := []struct {
		desc string
		v2   bool
		in   cgroups.Stats
		want Stats
	}{
		{
			desc: "v1 limited with swap accounting",
			in: cgroups.Stats{
				CpuStats: cgroups.CpuStats{CpuUsage: cgroups.CpuUsage{TotalUsage: 7}},
				MemoryStats: cgroups.MemoryStats{
					Usage:     cgroups.MemoryData{Usage: 100 << 20, Limit: 200 << 20},
					SwapUsage: cgroups.MemoryData{Usage: 110 << 20, Limit: 300 << 20},
					Stats: map[string]uint64{"total_inactive_file": 30 << 20, "total_rss": 60 << 20,
						"total_pgfault": 5, "total_pgmajfault": 1, "inactive_file": 99},
				},
				PidsStats: cgroups.PidsStats{Current: 3},
			},
			want: Stats{CPUUsageNanos: 7, MemoryUsageBytes: 100 << 20, MemoryWorkingSetBytes: 70 << 20,
				MemoryRSSBytes: 60 << 20, PageFaults: 5, MajorPageFaults: 1, Pids: 3,
				MemoryLimitBytes: 200 << 20, SwapUsageBytes: 10 << 20, SwapLimitBytes: 100 << 20},
		},
		{
			desc: "v1 unlimited, no swap accounting, inactive above usage",
			in: cgroups.Stats{MemoryStats: cgroups.MemoryStats{
				Usage: cgroups.MemoryData{Usage: 10, Limit: v1Unlimited},
				Stats: map[string]uint64{"total_inactive_file": 20},
			}},
			want: Stats{MemoryUsageBytes: 10},
		},
		{
			desc: "v2 with pressure",
			v2:   true,
			in: cgroups.Stats{
				CpuStats: cgroups.CpuStats{PSI: psi},
				MemoryStats: cgroups.MemoryStats{
					Usage:         cgroups.MemoryData{Usage: 50, Limit: math.MaxUint64},
					SwapOnlyUsage: cgroups.MemoryData{Usage: 4, Limit: 8},
					Stats:         map[string]uint64{"inactive_file": 20, "anon": 9},
					PSI:           psi,
				},
				BlkioStats: cgroups.BlkioStats{PSI: psi},
			},
			want: Stats{MemoryUsageBytes: 50, MemoryWorkingSetBytes: 30, MemoryRSSBytes: 9,
				SwapUsageBytes: 4, SwapLimitBytes: 8,
				CPUPressure: wantPSI, MemoryPressure: wantPSI, IOPressure: wantPSI},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, statsFrom(&tc.in, tc.v2)); diff != "" {
				t.Errorf("statsFrom (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStatsFromMetrics: the figures only metrics report (cpu split and throttling, cache,
// mapped files, kernel memory, failcnt, peak, pids.max, own and subtree faults, block I/O).
func TestStatsFromMetrics(t *testing.T) {
	cpu := cgroups.CpuStats{
		CpuUsage:       cgroups.CpuUsage{TotalUsage: 30, UsageInUsermode: 20, UsageInKernelmode: 10},
		ThrottlingData: cgroups.ThrottlingData{Periods: 100, ThrottledPeriods: 40, ThrottledTime: 2e9},
	}
	tests := []struct {
		desc string
		v2   bool
		in   cgroups.Stats
		want Stats
	}{
		{
			desc: "v1",
			in: cgroups.Stats{
				CpuStats: cpu,
				MemoryStats: cgroups.MemoryStats{
					Usage:       cgroups.MemoryData{Usage: 10, MaxUsage: 64, Failcnt: 3, Limit: 100},
					KernelUsage: cgroups.MemoryData{Usage: 5},
					Stats: map[string]uint64{"total_cache": 7, "cache": 1, "total_mapped_file": 2,
						"total_pgfault": 50, "pgfault": 20, "total_pgmajfault": 4, "pgmajfault": 1},
				},
				PidsStats: cgroups.PidsStats{Current: 6, Limit: 1024},
				BlkioStats: cgroups.BlkioStats{
					IoServiceBytesRecursive: []cgroups.BlkioStatEntry{
						{Major: 254, Minor: 0, Op: "Read", Value: 4096}, {Major: 254, Minor: 0, Op: "Write", Value: 8192},
						{Major: 8, Minor: 0, Op: "Read", Value: 512},
					},
					IoServicedRecursive: []cgroups.BlkioStatEntry{
						{Major: 254, Minor: 0, Op: "Read", Value: 1}, {Major: 254, Minor: 0, Op: "Write", Value: 2},
						{Major: 8, Minor: 0, Op: "Read", Value: 1},
					},
				},
			},
			want: Stats{CPUUsageNanos: 30, CPUUserNanos: 20, CPUSystemNanos: 10,
				CPUPeriods: 100, CPUThrottledPeriods: 40, CPUThrottledNanos: 2e9,
				MemoryUsageBytes: 10, MemoryMaxUsageBytes: 64, MemoryWorkingSetBytes: 10, MemoryFailcnt: 3,
				MemoryCacheBytes: 7, MemoryMappedFileBytes: 2, MemoryKernelBytes: 5, MemoryLimitBytes: 100,
				PageFaults: 50, MajorPageFaults: 4, LocalPageFaults: 20, LocalMajorPageFaults: 1,
				Pids: 6, PidsLimit: 1024,
				IO: []DeviceIO{
					{Major: 8, Minor: 0, Op: "Read", Bytes: 512, IOs: 1},
					{Major: 254, Minor: 0, Op: "Read", Bytes: 4096, IOs: 1},
					{Major: 254, Minor: 0, Op: "Write", Bytes: 8192, IOs: 2},
				}},
		},
		{
			desc: "v2 with memory.stat kernel",
			v2:   true,
			in: cgroups.Stats{
				CpuStats: cpu,
				MemoryStats: cgroups.MemoryStats{
					Usage: cgroups.MemoryData{Usage: 10, MaxUsage: 64, Limit: math.MaxUint64},
					Stats: map[string]uint64{"file": 7, "file_mapped": 2, "kernel": 5, "kernel_stack": 1,
						"pgfault": 50, "pgmajfault": 4},
				},
				BlkioStats: cgroups.BlkioStats{
					IoServicedRecursive: []cgroups.BlkioStatEntry{{Major: 254, Op: "Write", Value: 2}},
				},
			},
			want: Stats{CPUUsageNanos: 30, CPUUserNanos: 20, CPUSystemNanos: 10,
				CPUPeriods: 100, CPUThrottledPeriods: 40, CPUThrottledNanos: 2e9,
				MemoryUsageBytes: 10, MemoryMaxUsageBytes: 64, MemoryWorkingSetBytes: 10,
				MemoryCacheBytes: 7, MemoryMappedFileBytes: 2, MemoryKernelBytes: 5,
				PageFaults: 50, MajorPageFaults: 4, LocalPageFaults: 50, LocalMajorPageFaults: 4,
				IO: []DeviceIO{{Major: 254, Op: "Write", IOs: 2}}},
		},
		{
			desc: "v2 before kernel 5.18: kernel memory summed from its parts",
			v2:   true,
			in: cgroups.Stats{MemoryStats: cgroups.MemoryStats{Stats: map[string]uint64{
				"kernel_stack": 1, "pagetables": 2, "percpu": 4, "sock": 8, "slab": 16, "vmalloc": 32}}},
			want: Stats{MemoryKernelBytes: 63},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, statsFrom(&tc.in, tc.v2)); diff != "" {
				t.Errorf("statsFrom (-want +got):\n%s", diff)
			}
		})
	}
}
