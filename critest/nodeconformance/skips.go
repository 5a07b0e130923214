package main

import (
	"regexp"
	"strings"
)

// Skip is a selected spec that cannot run on this machine, by a unique part of its name.
type Skip struct {
	Spec   string
	Reason string
}

// Skips is the one list of the [NodeConformance] specs make node-conformance skips by name,
// each with its reason. Everything else selected runs, on peapod and on containerd alike.
var Skips = []Skip{
	{
		Spec: "Summary API [NodeConformance] when querying /stats/summary should report resource usage through the stats api",
		Reason: "VM limit: it expects PSI figures for every container (KubeletPSI is on by default) and there is " +
			"no PSI on this cgroup v1 host; and a \"misc\" system container, which the kubelet makes only by " +
			"moving every process of the root cgroup into --system-cgroups (/system), which would move every " +
			"other program on this shared machine. It fails on containerd here alike.",
	},
	{
		Spec: "PrivilegedPod [NodeConformance] should enable privileged commands",
		Reason: "VM limit: it runs `ip link add dummy1 type dummy` in a privileged container, and this " +
			"kernel has no dummy network device driver (RTNETLINK: Operation not supported, on the host too).",
	},
	{
		Spec: "ContainerMetrics [LinuxOnly] [NodeConformance] when querying /metrics/cadvisor should report container metrics",
		Reason: "not a runtime's to pass: the kubelet's built-in cAdvisor names containers (pod, namespace, " +
			"container labels) only through the clients it has for containerd and CRI-O; for any other CRI " +
			"runtime the kubelet's way is PodAndContainerStatsFromCRI (alpha), under which this spec skips itself.",
	},
}

// SkipRegex is the ginkgo -skip expression matching every entry of Skips ($^, which matches
// no name, when there is none).
func SkipRegex() string {
	parts := make([]string, 0, len(Skips))
	for _, s := range Skips {
		parts = append(parts, regexp.QuoteMeta(s.Spec))
	}
	if len(parts) == 0 {
		return "$^"
	}
	return strings.Join(parts, "|")
}
