package cgroups

// QoSClass is a pod's Kubernetes quality-of-service class; it picks the pod's cgroup tier.
type QoSClass int

// The three classes. The zero value is not a class.
const (
	Guaranteed QoSClass = iota + 1
	Burstable
	BestEffort
)

// String returns the name Kubernetes uses ("Guaranteed", "Burstable", "BestEffort").
func (c QoSClass) String() string {
	switch c {
	case Guaranteed:
		return "Guaranteed"
	case Burstable:
		return "Burstable"
	case BestEffort:
		return "BestEffort"
	}
	return "Unknown"
}

// tier is the class's directory under the tier root: Guaranteed pods sit in the root itself.
func (c QoSClass) tier() string {
	switch c {
	case Burstable:
		return "burstable"
	case BestEffort:
		return "besteffort"
	}
	return ""
}

// PodQoSClass derives a pod's QoS class the way Kubernetes defines it, from what CRI carries.
// CRI has no requests: it has cpu_shares (the kubelet's image of the cpu request), cpu quota
// and period (the cpu limit) and memory_limit_in_bytes (the memory limit). A memory request
// alone is invisible, so such a pod comes out BestEffort.
//
// The containers decide when known (CreateContainer); otherwise sandbox, the sandbox's
// resources (the kubelet sends the sum of its containers' in LinuxPodSandboxConfig), stands
// in for them. Nothing known at all is BestEffort.
//
//   - BestEffort: no container has a cpu or memory limit, and none has shares above 2.
//   - Guaranteed: every container has a cpu limit and a memory limit, and its shares are unset
//     or equal to the shares its cpu limit implies (requests equal limits).
//   - Burstable: everything else.
func PodQoSClass(sandbox *Resources, containers []Resources) QoSClass {
	rs := containers
	if len(rs) == 0 && sandbox != nil {
		rs = []Resources{*sandbox}
	}
	bestEffort, guaranteed := true, len(rs) > 0
	for _, r := range rs {
		cpuLimit, memLimit := r.CPUQuota > 0, r.MemoryLimitInBytes > 0
		if cpuLimit || memLimit || r.CPUShares > MinCPUShares {
			bestEffort = false
		}
		if !cpuLimit || !memLimit || !sharesMatchLimit(r) {
			guaranteed = false
		}
	}
	switch {
	case bestEffort:
		return BestEffort
	case guaranteed:
		return Guaranteed
	}
	return Burstable
}

// sharesMatchLimit reports whether r's cpu request equals its cpu limit as the kubelet encodes
// them: shares = milli*1024/1000 and quota = milli*period/1000, so the shares the quota
// implies are quota*1024/period, give or take the two integer divisions (±1).
func sharesMatchLimit(r Resources) bool {
	if r.CPUShares == 0 {
		return true
	}
	period := r.CPUPeriod
	if period == 0 {
		period = DefaultCPUPeriod
	}
	implied := r.CPUQuota * 1024 / period
	if d := r.CPUShares - implied; d >= -1 && d <= 1 {
		return true
	}
	// Below 10m the kubelet raises the quota to the 1 ms minimum and the shares to at least 2,
	// so both sides are clamped and no longer proportional.
	return r.CPUQuota == MinCPUQuota && r.CPUShares <= implied
}
