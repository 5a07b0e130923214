package cgroups

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Limits the kernel or CRI puts on the values in Resources.
const (
	// MinCPUPeriod and MaxCPUPeriod bound cpu.cfs_period_us (1 ms .. 1 s).
	MinCPUPeriod = 1000
	MaxCPUPeriod = 1000000
	// MinCPUQuota is the smallest cpu.cfs_quota_us the kernel accepts (1 ms).
	MinCPUQuota = 1000
	// MinCPUShares and MaxCPUShares bound cpu.shares; 2 is also the BestEffort tier's value.
	MinCPUShares = 2
	MaxCPUShares = 262144
	// MinMemoryLimit is the smallest memory limit peapod accepts: 6 MiB, Docker's
	// linuxMinMemory. Neither runc nor the kernel checks, but below a few MiB the container's
	// init (libcontainer re-executing peapod-shim) is OOM-killed before the workload starts,
	// which reaches the user as an opaque start failure instead of a clear InvalidArgument.
	// CRI-O picks 12 MiB for the same reason; kubelet never sends less than the pod asks.
	MinMemoryLimit = 6 << 20
	// DefaultCPUPeriod is what the kubelet sends with a cpu limit (100 ms).
	DefaultCPUPeriod = 100000
)

// HugepageLimit is one CRI hugepage limit: PageSize as the kernel names it ("2MB", "1GB").
type HugepageLimit struct {
	PageSize string
	Limit    uint64
}

// Resources mirrors CRI's LinuxContainerResources, plus the pids limit peapod's config sets
// (CRI has none). Zero means "unset" for every field, as in CRI. The kubelet derives them as
// cpu_shares = request_millicpu*1024/1000 (at least 2), cpu_quota = limit_millicpu*period/1000,
// memory_limit_in_bytes = the memory limit.
//
// OomScoreAdj is validated here but is not a cgroup setting: ToSpec leaves it out, and the
// caller puts it in the OCI spec's process.oomScoreAdj.
type Resources struct {
	CPUPeriod              int64 // µs; 0 = unset
	CPUQuota               int64 // µs; 0 = unset, -1 = unlimited
	CPUShares              int64 // 0 = unset
	MemoryLimitInBytes     int64 // 0 = unset
	OomScoreAdj            int64
	CpusetCpus             string // "0-3,5"
	CpusetMems             string
	HugepageLimits         []HugepageLimit
	Unified                map[string]string // cgroup v2 files, e.g. "memory.high"
	MemorySwapLimitInBytes int64             // memory+swap, as in OCI; 0 = unset, -1 = unlimited
	PidsLimit              int64             // 0 = unset, -1 = unlimited
}

// Validate reports the first field outside what CRI, the kernel and this host accept, as an
// error wrapping errdefs.ErrInvalidArgument that names the CRI field.
func (r Resources) Validate() error {
	return r.validate(cgroups.HugePageSizes())
}

func (r Resources) validate(hugePageSizes []string) error {
	invalid := func(field string, format string, args ...any) error {
		return fmt.Errorf("%s %s: %w", field, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
	}
	if p := r.CPUPeriod; p != 0 && (p < MinCPUPeriod || p > MaxCPUPeriod) {
		return invalid("cpu_period", "%d: must be 0 (unset) or within [%d, %d] µs", p, MinCPUPeriod, MaxCPUPeriod)
	}
	if q := r.CPUQuota; q < -1 || (q > 0 && q < MinCPUQuota) {
		return invalid("cpu_quota", "%d: must be 0 (unset), -1 (unlimited) or at least %d µs", q, MinCPUQuota)
	}
	if s := r.CPUShares; s != 0 && (s < MinCPUShares || s > MaxCPUShares) {
		return invalid("cpu_shares", "%d: must be 0 (unset) or within [%d, %d]", s, MinCPUShares, MaxCPUShares)
	}
	if m := r.MemoryLimitInBytes; m < 0 || (m > 0 && m < MinMemoryLimit) {
		return invalid("memory_limit_in_bytes", "%d: must be 0 (unset) or at least %d (6 MiB)", m, MinMemoryLimit)
	}
	switch s, m := r.MemorySwapLimitInBytes, r.MemoryLimitInBytes; {
	case s < -1:
		return invalid("memory_swap_limit_in_bytes", "%d: must be 0 (unset), -1 (unlimited) or a byte count", s)
	case s > 0 && m == 0:
		return invalid("memory_swap_limit_in_bytes", "%d: needs memory_limit_in_bytes (memory+swap cannot be limited without a memory limit)", s)
	case s > 0 && s < m:
		return invalid("memory_swap_limit_in_bytes", "%d: is memory+swap and must not be below memory_limit_in_bytes %d", s, m)
	}
	if o := r.OomScoreAdj; o < -1000 || o > 1000 {
		return invalid("oom_score_adj", "%d: must be within [-1000, 1000]", o)
	}
	if err := checkCPUList(r.CpusetCpus); err != nil {
		return invalid("cpuset_cpus", "%q: %v", r.CpusetCpus, err)
	}
	if err := checkCPUList(r.CpusetMems); err != nil {
		return invalid("cpuset_mems", "%q: %v", r.CpusetMems, err)
	}
	seen := make(map[string]bool)
	for _, h := range r.HugepageLimits {
		if !slices.Contains(hugePageSizes, h.PageSize) {
			return invalid("hugepage_limits", "page size %q: this host has %v", h.PageSize, hugePageSizes)
		}
		if seen[h.PageSize] {
			return invalid("hugepage_limits", "page size %q given twice", h.PageSize)
		}
		seen[h.PageSize] = true
	}
	for _, k := range slices.Sorted(maps.Keys(r.Unified)) {
		if err := checkUnifiedKey(k); err != nil {
			return invalid("unified", "key %q: %v", k, err)
		}
	}
	if p := r.PidsLimit; p < -1 {
		return invalid("pids_limit", "%d: must be 0 (unset), -1 (unlimited) or positive", p)
	}
	return nil
}

// checkCPUList accepts the kernel's list format: "", "3", "0-3", "0-3,8,10-11".
func checkCPUList(s string) error {
	if s == "" {
		return nil
	}
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return fmt.Errorf("%q is not a number or a range N-M", part)
		}
		if !isRange {
			continue
		}
		b, err := strconv.ParseUint(hi, 10, 16)
		if err != nil {
			return fmt.Errorf("%q is not a range N-M", part)
		}
		if a > b {
			return fmt.Errorf("range %q runs backwards", part)
		}
	}
	return nil
}

// checkUnifiedKey accepts "<controller>.<file>" names of the cgroup itself; the core
// "cgroup.*" files (procs, subtree_control, type ...) belong to the runtime, not the caller.
func checkUnifiedKey(k string) error {
	ctrl, file, ok := strings.Cut(k, ".")
	switch {
	case !ok || ctrl == "" || file == "":
		return fmt.Errorf("not a <controller>.<file> name")
	case strings.ContainsAny(k, "/\x00") || k == "." || k == "..":
		return fmt.Errorf("must name a file in the cgroup itself")
	case ctrl == "cgroup":
		return fmt.Errorf("cgroup core files are managed by the runtime")
	}
	return nil
}

// CPUSharesToWeight converts cgroup v1 cpu.shares [2, 262144] to cgroup v2 cpu.weight
// [1, 10000] linearly, as the kubelet (KEP-2254, getCPUWeight) does for pod cgroups:
// weight = 1 + (shares-2)*9999/262142. 0 stays 0 (unset).
//
// runc since 1.3.2 and crun since 1.23 (and opencontainers/cgroups's
// ConvertCPUSharesToCgroupV2Value) use a non-linear formula mapping 1024 to 100 instead of
// 39. ToSpec pins the linear value through unified["cpu.weight"], so a pod's cgroup (written
// here or by a kubelet) and its containers' cgroups (written by libcontainer) use one scale.
func CPUSharesToWeight(shares uint64) uint64 {
	switch {
	case shares == 0:
		return 0
	case shares <= MinCPUShares:
		return 1
	case shares >= MaxCPUShares:
		return 10000
	}
	return 1 + (shares-2)*9999/262142
}

// ToSpec converts r to OCI resources: CPU, memory, pids and hugepage limits, and on cgroup
// v2 the unified map, with cpu.weight derived from cpu_shares unless the caller set it.
// Unset (zero) fields stay nil. The result is never nil. Call Validate first.
func (r Resources) ToSpec(v2 bool) *specs.LinuxResources {
	out := &specs.LinuxResources{}
	var cpu specs.LinuxCPU
	if r.CPUShares > 0 {
		cpu.Shares = ptr(uint64(r.CPUShares))
	}
	if r.CPUQuota != 0 {
		cpu.Quota = ptr(r.CPUQuota)
	}
	if r.CPUPeriod > 0 {
		cpu.Period = ptr(uint64(r.CPUPeriod))
	}
	cpu.Cpus, cpu.Mems = r.CpusetCpus, r.CpusetMems
	if cpu != (specs.LinuxCPU{}) {
		out.CPU = &cpu
	}
	if r.MemoryLimitInBytes != 0 || r.MemorySwapLimitInBytes != 0 {
		out.Memory = &specs.LinuxMemory{}
		if r.MemoryLimitInBytes != 0 {
			out.Memory.Limit = ptr(r.MemoryLimitInBytes)
		}
		if r.MemorySwapLimitInBytes != 0 {
			out.Memory.Swap = ptr(r.MemorySwapLimitInBytes)
		}
	}
	if r.PidsLimit != 0 {
		out.Pids = &specs.LinuxPids{Limit: ptr(r.PidsLimit)}
	}
	for _, h := range r.HugepageLimits {
		out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.PageSize, Limit: h.Limit})
	}
	if v2 {
		unified := maps.Clone(r.Unified)
		if w := CPUSharesToWeight(uint64(max(r.CPUShares, 0))); w != 0 {
			if _, set := unified["cpu.weight"]; !set {
				if unified == nil {
					unified = make(map[string]string)
				}
				unified["cpu.weight"] = strconv.FormatUint(w, 10)
			}
		}
		if len(unified) > 0 {
			out.Unified = unified
		}
	}
	return out
}

// FromSpec is ToSpec's reverse, for reporting a container's resources in its status. A
// cpu.weight that ToSpec derived from the shares is dropped again; OomScoreAdj stays 0
// (it lives in the spec's process, not its resources).
func FromSpec(res *specs.LinuxResources) Resources {
	var r Resources
	if res == nil {
		return r
	}
	if c := res.CPU; c != nil {
		if c.Shares != nil {
			r.CPUShares = int64(*c.Shares)
		}
		if c.Quota != nil {
			r.CPUQuota = *c.Quota
		}
		if c.Period != nil {
			r.CPUPeriod = int64(*c.Period)
		}
		r.CpusetCpus, r.CpusetMems = c.Cpus, c.Mems
	}
	if m := res.Memory; m != nil {
		if m.Limit != nil {
			r.MemoryLimitInBytes = *m.Limit
		}
		if m.Swap != nil {
			r.MemorySwapLimitInBytes = *m.Swap
		}
	}
	if res.Pids != nil && res.Pids.Limit != nil {
		r.PidsLimit = *res.Pids.Limit
	}
	for _, h := range res.HugepageLimits {
		r.HugepageLimits = append(r.HugepageLimits, HugepageLimit{PageSize: h.Pagesize, Limit: h.Limit})
	}
	if len(res.Unified) > 0 {
		unified := maps.Clone(res.Unified)
		derived := strconv.FormatUint(CPUSharesToWeight(uint64(r.CPUShares)), 10)
		if r.CPUShares > 0 && unified["cpu.weight"] == derived {
			delete(unified, "cpu.weight")
		}
		if len(unified) > 0 {
			r.Unified = unified
		}
	}
	return r
}

func ptr[T any](v T) *T { return &v }
