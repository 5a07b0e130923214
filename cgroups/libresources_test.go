package cgroups

import (
	"errors"
	"reflect"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestLibResources(t *testing.T) {
	base := cgroups.Resources{SkipDevices: true, SkipFreezeOnSet: true}
	with := func(f func(r *cgroups.Resources)) *cgroups.Resources {
		r := base
		f(&r)
		return &r
	}
	tests := []struct {
		name string
		in   *specs.LinuxResources
		v2   bool
		want *cgroups.Resources // nil = InvalidArgument
	}{
		{"nil", nil, false, &base},
		{"700m v1", guaranteed700m.ToSpec(false), false, with(func(r *cgroups.Resources) {
			r.CpuShares, r.CpuQuota, r.CpuPeriod, r.Memory = 716, 70000, 100000, 209715200
		})},
		{"700m v2: weight on the kubelet's scale", guaranteed700m.ToSpec(true), true, with(func(r *cgroups.Resources) {
			r.CpuShares, r.CpuWeight, r.CpuQuota, r.CpuPeriod, r.Memory = 716, 28, 70000, 100000, 209715200
			r.Unified = map[string]string{"cpu.weight": "28"}
		})},
		{"pids, swap, cpuset, hugepages", Resources{PidsLimit: 10, MemoryLimitInBytes: 1 << 30, MemorySwapLimitInBytes: -1, CpusetCpus: "0",
			HugepageLimits: []HugepageLimit{{"2MB", 1 << 21}}}.ToSpec(false), false, with(func(r *cgroups.Resources) {
			r.PidsLimit, r.Memory, r.MemorySwap, r.CpusetCpus = ptr[int64](10), 1<<30, -1, "0"
			r.HugetlbLimit = []*cgroups.HugepageLimit{{Pagesize: "2MB", Limit: 1 << 21}}
		})},
		{"unified on v1", &specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}}, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := libResources(tc.in, tc.v2)
			if tc.want == nil {
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("libResources = %+v, %v; want InvalidArgument", got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("libResources = %+v, %v;\nwant %+v", got, err, tc.want)
			}
		})
	}
}

func TestStatsFrom(t *testing.T) {
	v1 := cgroups.NewStats()
	v1.CpuStats.CpuUsage.TotalUsage = 5e9
	v1.MemoryStats.Usage.Usage = 100 << 20
	v1.MemoryStats.Stats = map[string]uint64{
		"inactive_file": 1, "rss": 2, // this cgroup only: ignored
		"total_inactive_file": 30 << 20, "total_rss": 50 << 20, "total_pgfault": 7, "total_pgmajfault": 3,
	}
	v1.PidsStats.Current = 4

	v2 := cgroups.NewStats()
	v2.CpuStats.CpuUsage.TotalUsage = 6e9
	v2.MemoryStats.Usage.Usage = 10 << 20
	v2.MemoryStats.Stats = map[string]uint64{"inactive_file": 20 << 20, "anon": 8 << 20, "pgfault": 9, "pgmajfault": 1}
	v2.PidsStats.Current = 1

	for _, tc := range []struct {
		name string
		in   *cgroups.Stats
		v2   bool
		want Stats
	}{
		{"v1", v1, false, Stats{CPUUsageNanos: 5e9, MemoryUsageBytes: 100 << 20, MemoryWorkingSetBytes: 70 << 20,
			MemoryRSSBytes: 50 << 20, PageFaults: 7, MajorPageFaults: 3, Pids: 4}},
		{"v2, inactive above usage", v2, true, Stats{CPUUsageNanos: 6e9, MemoryUsageBytes: 10 << 20, MemoryWorkingSetBytes: 0,
			MemoryRSSBytes: 8 << 20, PageFaults: 9, MajorPageFaults: 1, LocalPageFaults: 9, LocalMajorPageFaults: 1, Pids: 1}},
	} {
		if diff := cmp.Diff(tc.want, statsFrom(tc.in, tc.v2)); diff != "" {
			t.Errorf("%s: statsFrom (-want +got):\n%s", tc.name, diff)
		}
	}
}
