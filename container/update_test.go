package container

import (
	"reflect"
	"testing"

	"github.com/peapod-runtime/peapod/cgroups"
)

func TestMergeResources(t *testing.T) {
	cur := &cgroups.Resources{
		CPUPeriod: 100000, CPUQuota: 50000, CPUShares: 512, MemoryLimitInBytes: 100 << 20,
		OomScoreAdj: 500, CpusetCpus: "0", PidsLimit: 77, Unified: map[string]string{"memory.high": "1"},
	}
	for _, tc := range []struct {
		name string
		cur  *cgroups.Resources
		upd  cgroups.Resources
		want cgroups.Resources
	}{
		{"nothing set keeps everything", cur, cgroups.Resources{}, *cur},
		{"set fields replace", cur,
			cgroups.Resources{CPUQuota: 20000, MemoryLimitInBytes: 200 << 20, MemorySwapLimitInBytes: 300 << 20, CpusetMems: "0", OomScoreAdj: -5, PidsLimit: 9},
			cgroups.Resources{CPUPeriod: 100000, CPUQuota: 20000, CPUShares: 512, MemoryLimitInBytes: 200 << 20, MemorySwapLimitInBytes: 300 << 20,
				OomScoreAdj: 500, CpusetCpus: "0", CpusetMems: "0", PidsLimit: 77, Unified: map[string]string{"memory.high": "1"}}},
		{"unlimited quota", cur, cgroups.Resources{CPUQuota: -1},
			cgroups.Resources{CPUPeriod: 100000, CPUQuota: -1, CPUShares: 512, MemoryLimitInBytes: 100 << 20, OomScoreAdj: 500, CpusetCpus: "0",
				PidsLimit: 77, Unified: map[string]string{"memory.high": "1"}}},
		{"unified merges by key", cur, cgroups.Resources{Unified: map[string]string{"memory.max": "2"}},
			cgroups.Resources{CPUPeriod: 100000, CPUQuota: 50000, CPUShares: 512, MemoryLimitInBytes: 100 << 20, OomScoreAdj: 500, CpusetCpus: "0",
				PidsLimit: 77, Unified: map[string]string{"memory.high": "1", "memory.max": "2"}}},
		{"from nothing", nil, cgroups.Resources{CPUShares: 2, HugepageLimits: []cgroups.HugepageLimit{{PageSize: "2MB", Limit: 1}}},
			cgroups.Resources{CPUShares: 2, HugepageLimits: []cgroups.HugepageLimit{{PageSize: "2MB", Limit: 1}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mergeResources(tc.cur, &tc.upd)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("mergeResources:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if cur.Unified["memory.max"] != "" || cur.CPUQuota != 50000 {
		t.Errorf("mergeResources changed its input: %+v", cur)
	}
}
