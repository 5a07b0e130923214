package cgroups

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// guaranteed700m is PODS.md §6's Guaranteed container: 700m / 200Mi.
var guaranteed700m = Resources{CPUPeriod: 100000, CPUQuota: 70000, CPUShares: 716, MemoryLimitInBytes: 209715200}

func TestValidate(t *testing.T) {
	sizes := []string{"2MB", "1GB"}
	tests := []struct {
		name  string
		r     Resources
		field string // "" = valid
	}{
		{"zero", Resources{}, ""},
		{"guaranteed 700m", guaranteed700m, ""},
		{"everything", Resources{CPUPeriod: 1000, CPUQuota: 1000, CPUShares: 2, MemoryLimitInBytes: MinMemoryLimit,
			MemorySwapLimitInBytes: MinMemoryLimit, OomScoreAdj: -1000, CpusetCpus: "0-1,3", CpusetMems: "0",
			HugepageLimits: []HugepageLimit{{"2MB", 1 << 21}, {"1GB", 0}}, Unified: map[string]string{"memory.high": "max"},
			PidsLimit: 100}, ""},
		{"unlimited quota", Resources{CPUQuota: -1}, ""},
		{"unlimited swap", Resources{MemoryLimitInBytes: 1 << 30, MemorySwapLimitInBytes: -1}, ""},
		{"unlimited pids", Resources{PidsLimit: -1}, ""},
		{"max period", Resources{CPUPeriod: 1000000}, ""},
		{"period too small", Resources{CPUPeriod: 999}, "cpu_period"},
		{"period too large", Resources{CPUPeriod: 1000001}, "cpu_period"},
		{"negative period", Resources{CPUPeriod: -5}, "cpu_period"},
		{"quota too small", Resources{CPUQuota: 999}, "cpu_quota"},
		{"quota -2", Resources{CPUQuota: -2}, "cpu_quota"},
		{"shares 1", Resources{CPUShares: 1}, "cpu_shares"},
		{"shares too large", Resources{CPUShares: 262145}, "cpu_shares"},
		{"negative memory", Resources{MemoryLimitInBytes: -1}, "memory_limit_in_bytes"},
		{"memory below 6MiB", Resources{MemoryLimitInBytes: MinMemoryLimit - 1}, "memory_limit_in_bytes"},
		{"swap below memory", Resources{MemoryLimitInBytes: 1 << 30, MemorySwapLimitInBytes: 1 << 29}, "memory_swap_limit_in_bytes"},
		{"swap without memory", Resources{MemorySwapLimitInBytes: 1 << 30}, "memory_swap_limit_in_bytes"},
		{"swap -2", Resources{MemorySwapLimitInBytes: -2}, "memory_swap_limit_in_bytes"},
		{"oom_score_adj low", Resources{OomScoreAdj: -1001}, "oom_score_adj"},
		{"oom_score_adj high", Resources{OomScoreAdj: 1001}, "oom_score_adj"},
		{"cpuset letters", Resources{CpusetCpus: "a"}, "cpuset_cpus"},
		{"cpuset backwards", Resources{CpusetCpus: "3-1"}, "cpuset_cpus"},
		{"cpuset empty entry", Resources{CpusetCpus: "1,,2"}, "cpuset_cpus"},
		{"cpuset open range", Resources{CpusetCpus: "1-"}, "cpuset_cpus"},
		{"cpuset negative", Resources{CpusetMems: "-1"}, "cpuset_mems"},
		{"unknown hugepage size", Resources{HugepageLimits: []HugepageLimit{{"3MB", 1}}}, "hugepage_limits"},
		{"kubelet-style size", Resources{HugepageLimits: []HugepageLimit{{"2Mi", 1}}}, "hugepage_limits"},
		{"hugepage size twice", Resources{HugepageLimits: []HugepageLimit{{"2MB", 1}, {"2MB", 2}}}, "hugepage_limits"},
		{"unified path", Resources{Unified: map[string]string{"../memory.max": "1"}}, "unified"},
		{"unified core file", Resources{Unified: map[string]string{"cgroup.procs": "1"}}, "unified"},
		{"unified no dot", Resources{Unified: map[string]string{"memory": "1"}}, "unified"},
		{"pids -2", Resources{PidsLimit: -2}, "pids_limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.validate(sizes)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("validate = %v, want InvalidArgument", err)
			}
			if !strings.HasPrefix(err.Error(), tc.field+" ") {
				t.Errorf("error %q does not start with field %s", err, tc.field)
			}
		})
	}
}

func TestValidateUsesHostHugePageSizes(t *testing.T) {
	if err := (Resources{HugepageLimits: []HugepageLimit{{"3MB", 1}}}).Validate(); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("3MB pages: %v, want InvalidArgument", err)
	}
}

func TestCPUSharesToWeight(t *testing.T) {
	for _, tc := range []struct{ shares, weight uint64 }{
		{0, 0}, {1, 1}, {2, 1}, {3, 1}, {28, 1}, {29, 2},
		{102, 4},  // 100m
		{716, 28}, // 700m
		{1024, 39},
		{2048, 79},
		{262143, 9999}, {262144, 10000}, {1 << 20, 10000},
	} {
		if got := CPUSharesToWeight(tc.shares); got != tc.weight {
			t.Errorf("CPUSharesToWeight(%d) = %d, want %d", tc.shares, got, tc.weight)
		}
	}
}

func TestToSpec(t *testing.T) {
	tests := []struct {
		name string
		r    Resources
		v2   bool
		want *specs.LinuxResources
	}{
		{"empty v1", Resources{}, false, &specs.LinuxResources{}},
		{"empty v2", Resources{}, true, &specs.LinuxResources{}},
		{"oom_score_adj is not a cgroup setting", Resources{OomScoreAdj: 500}, false, &specs.LinuxResources{}},
		{"guaranteed 700m v1", guaranteed700m, false, &specs.LinuxResources{
			CPU:    &specs.LinuxCPU{Shares: ptr[uint64](716), Quota: ptr[int64](70000), Period: ptr[uint64](100000)},
			Memory: &specs.LinuxMemory{Limit: ptr[int64](209715200)},
		}},
		{"guaranteed 700m v2", guaranteed700m, true, &specs.LinuxResources{
			CPU:     &specs.LinuxCPU{Shares: ptr[uint64](716), Quota: ptr[int64](70000), Period: ptr[uint64](100000)},
			Memory:  &specs.LinuxMemory{Limit: ptr[int64](209715200)},
			Unified: map[string]string{"cpu.weight": "28"},
		}},
		{"besteffort v2", Resources{CPUShares: 2}, true, &specs.LinuxResources{
			CPU:     &specs.LinuxCPU{Shares: ptr[uint64](2)},
			Unified: map[string]string{"cpu.weight": "1"},
		}},
		{"caller's cpu.weight wins", Resources{CPUShares: 1024, Unified: map[string]string{"cpu.weight": "100", "memory.high": "1000000"}}, true, &specs.LinuxResources{
			CPU:     &specs.LinuxCPU{Shares: ptr[uint64](1024)},
			Unified: map[string]string{"cpu.weight": "100", "memory.high": "1000000"},
		}},
		{"unified dropped on v1", Resources{CPUShares: 1024, Unified: map[string]string{"memory.high": "1"}}, false, &specs.LinuxResources{
			CPU: &specs.LinuxCPU{Shares: ptr[uint64](1024)},
		}},
		{"cpuset, swap, pids, hugepages", Resources{CpusetCpus: "0-1", CpusetMems: "0", MemoryLimitInBytes: 1 << 30, MemorySwapLimitInBytes: 2 << 30,
			PidsLimit: 64, HugepageLimits: []HugepageLimit{{"2MB", 4 << 20}}}, false, &specs.LinuxResources{
			CPU:            &specs.LinuxCPU{Cpus: "0-1", Mems: "0"},
			Memory:         &specs.LinuxMemory{Limit: ptr[int64](1 << 30), Swap: ptr[int64](2 << 30)},
			Pids:           &specs.LinuxPids{Limit: ptr[int64](64)},
			HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}},
		}},
		{"unlimited quota and swap", Resources{CPUQuota: -1, MemoryLimitInBytes: 1 << 30, MemorySwapLimitInBytes: -1}, false, &specs.LinuxResources{
			CPU:    &specs.LinuxCPU{Quota: ptr[int64](-1)},
			Memory: &specs.LinuxMemory{Limit: ptr[int64](1 << 30), Swap: ptr[int64](-1)},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.r.ToSpec(tc.v2)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ToSpec(%v) =\n%s\nwant\n%s", tc.v2, dump(got), dump(tc.want))
			}
			// FromSpec reverses it, minus what a spec cannot carry.
			back := FromSpec(got)
			want := tc.r
			want.OomScoreAdj = 0
			if !tc.v2 {
				want.Unified = nil
			}
			if !reflect.DeepEqual(back, want) {
				t.Errorf("FromSpec(ToSpec(r)) = %+v, want %+v", back, want)
			}
		})
	}
}

func TestFromSpecNil(t *testing.T) {
	if got := FromSpec(nil); !reflect.DeepEqual(got, Resources{}) {
		t.Errorf("FromSpec(nil) = %+v", got)
	}
}

func TestToSpecDoesNotShareUnified(t *testing.T) {
	r := Resources{CPUShares: 1024, Unified: map[string]string{"memory.high": "1"}}
	_ = r.ToSpec(true)
	if len(r.Unified) != 1 {
		t.Errorf("ToSpec changed the caller's map: %v", r.Unified)
	}
}

func dump(r *specs.LinuxResources) string {
	b, err := json.Marshal(r)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
