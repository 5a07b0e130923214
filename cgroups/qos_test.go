package cgroups

import "testing"

// kubelet encodes a container's cpu request and limit and memory limit the way
// kuberuntime does: shares = request*1024/1000 (min 2), quota = limit*100000/1000 (min 1000).
func kubelet(requestMilli, limitMilli, memLimit int64) Resources {
	r := Resources{MemoryLimitInBytes: memLimit, CPUShares: max(requestMilli*1024/1000, MinCPUShares)}
	if limitMilli > 0 {
		r.CPUPeriod = DefaultCPUPeriod
		r.CPUQuota = max(limitMilli*DefaultCPUPeriod/1000, MinCPUQuota)
	}
	return r
}

func TestPodQoSClass(t *testing.T) {
	const mi = 1 << 20
	tests := []struct {
		name       string
		sandbox    *Resources
		containers []Resources
		want       QoSClass
	}{
		{"nothing known", nil, nil, BestEffort},
		{"PODS.md guaranteed 700m/200Mi", nil, []Resources{guaranteed700m}, Guaranteed},
		{"kubelet 700m/200Mi", nil, []Resources{kubelet(700, 700, 200*mi)}, Guaranteed},
		{"shares unset, limits set", nil, []Resources{{CPUQuota: 50000, CPUPeriod: 100000, MemoryLimitInBytes: 64 * mi}}, Guaranteed},
		{"period unset means 100ms", nil, []Resources{{CPUQuota: 50000, CPUShares: 512, MemoryLimitInBytes: 64 * mi}}, Guaranteed},
		{"odd millis round within 1", nil, []Resources{kubelet(333, 333, 64*mi), kubelet(1, 1, 64*mi), kubelet(5, 5, 64*mi), kubelet(4000, 4000, 64*mi)}, Guaranteed},
		{"non-default period", nil, []Resources{{CPUPeriod: 50000, CPUQuota: 25000, CPUShares: 512, MemoryLimitInBytes: 64 * mi}}, Guaranteed},
		{"PODS.md burstable: memory limit 200Mi, request 100Mi", nil, []Resources{kubelet(0, 0, 200*mi)}, Burstable},
		{"cpu request below limit", nil, []Resources{kubelet(100, 700, 200*mi)}, Burstable},
		{"cpu limit without memory limit", nil, []Resources{kubelet(700, 700, 0)}, Burstable},
		{"cpu request only", nil, []Resources{kubelet(100, 0, 0)}, Burstable},
		{"one guaranteed, one besteffort container", nil, []Resources{guaranteed700m, kubelet(0, 0, 0)}, Burstable},
		{"PODS.md besteffort: shares 2", nil, []Resources{kubelet(0, 0, 0), {}}, BestEffort},
		{"unlimited quota is no limit", nil, []Resources{{CPUQuota: -1, CPUShares: 2}}, BestEffort},
		{"1m request rounds to 2 shares", nil, []Resources{kubelet(1, 0, 0)}, BestEffort},
		{"sandbox stands in", &guaranteed700m, nil, Guaranteed},
		{"sandbox besteffort", &Resources{CPUShares: 2}, nil, BestEffort},
		{"containers decide over sandbox", &guaranteed700m, []Resources{kubelet(0, 0, 0)}, BestEffort},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := PodQoSClass(tc.sandbox, tc.containers); got != tc.want {
				t.Errorf("PodQoSClass = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestQoSClassString(t *testing.T) {
	for c, want := range map[QoSClass]string{Guaranteed: "Guaranteed", Burstable: "Burstable", BestEffort: "BestEffort", 0: "Unknown", 9: "Unknown"} {
		if got := c.String(); got != want {
			t.Errorf("QoSClass(%d).String() = %q, want %q", int(c), got, want)
		}
	}
}
