package cgroups

import (
	"math"
	"testing"

	"github.com/opencontainers/cgroups"
)

func TestStatsFromLimitsSwapPressure(t *testing.T) {
	const v1Unlimited = 9223372036854771712
	psi := &cgroups.PSIStats{Some: cgroups.PSIData{Avg10: 1.5, Total: 42}, Full: cgroups.PSIData{Avg60: 0.5}}
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
				CPUPressure:    &Pressure{Some: PressureData{Avg10: 1.5, Total: 42}, Full: PressureData{Avg60: 0.5}},
				MemoryPressure: &Pressure{Some: PressureData{Avg10: 1.5, Total: 42}, Full: PressureData{Avg60: 0.5}},
				IOPressure:     &Pressure{Some: PressureData{Avg10: 1.5, Total: 42}, Full: PressureData{Avg60: 0.5}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got := statsFrom(&tc.in, tc.v2)
			if !equalStats(got, tc.want) {
				t.Errorf("statsFrom =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func equalStats(a, b Stats) bool {
	eqP := func(x, y *Pressure) bool { return x == nil && y == nil || x != nil && y != nil && *x == *y }
	if !eqP(a.CPUPressure, b.CPUPressure) || !eqP(a.MemoryPressure, b.MemoryPressure) || !eqP(a.IOPressure, b.IOPressure) {
		return false
	}
	a.CPUPressure, a.MemoryPressure, a.IOPressure = nil, nil, nil
	b.CPUPressure, b.MemoryPressure, b.IOPressure = nil, nil, nil
	return a == b
}
