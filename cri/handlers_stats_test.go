package cri

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/stats"
)

// addSamples gives pod1 and ctr1 a sample; ctr2 (created) has none yet.
func (f *fixture) addSamples() {
	f.addPodWithContainers()
	at := time.Unix(100, 0)
	f.stats.pods["pod1"] = stats.Pod{ID: "pod1", At: at, Cgroup: cgroups.Stats{MemoryWorkingSetBytes: 1 << 20, Pids: 3},
		CPU: stats.CPU{UsageNanos: 5e9}, NetworkAt: at, Interfaces: []stats.Interface{{Name: "lo"}, {Name: "eth0", RxBytes: 99}}}
	f.stats.ctrs["ctr1"] = stats.Container{ID: "ctr1", PodID: "pod1", At: at,
		Cgroup: cgroups.Stats{MemoryWorkingSetBytes: 512 << 10, MemoryLimitBytes: 1 << 20, CPUUsageNanos: 2e9},
		CPU:    stats.CPU{UsageNanos: 2e9, NanoCores: 1000, HasRate: true}}
}

func containerStats(ctx context.Context, f *fixture, id string) (*runtimeapi.ContainerStatsResponse, error) {
	return f.rt.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: id})
}

func noStats(f *fixture) { f.addSamples(); f.opts.Stats = nil }

func testContainerStats(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.ContainerStatsResponse]{{
		name: "the last sample", setup: (*fixture).addSamples,
		call: containerCall(containerStats, "ctr1"), want: twice(codes.OK),
		calls: []string{"Containers.Get ctr1", "Stats.ContainerNow ctr1"},
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ContainerStatsResponse) {
			s := r.GetStats()
			if s.GetAttributes().GetId() != "ctr1" || s.GetCpu().GetUsageNanoCores().GetValue() != 1000 ||
				s.GetMemory().GetWorkingSetBytes().GetValue() != 512<<10 || s.GetMemory().GetAvailableBytes().GetValue() != 512<<10 {
				t.Errorf("stats %v", s)
			}
		},
	}, {
		name: "never sampled: attributes only", setup: (*fixture).addSamples,
		call: containerCall(containerStats, "ctr2"), want: twice(codes.OK),
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ContainerStatsResponse) {
			if s := r.GetStats(); s.GetAttributes().GetId() != "ctr2" || s.GetCpu() != nil || s.GetMemory() != nil {
				t.Errorf("stats %v", s)
			}
		},
	}, {
		name: "an unknown container", setup: (*fixture).addSamples,
		call: containerCall(containerStats, "nosuchctr"), want: twice(codes.NotFound),
	}, {
		name: "stats not collected", setup: noStats,
		call: containerCall(containerStats, "ctr1"), want: twice(codes.Unavailable), calls: none,
	}})
}

func listContainerStats(filter *runtimeapi.ContainerStatsFilter) func(context.Context, *fixture) (*runtimeapi.ListContainerStatsResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.ListContainerStatsResponse, error) {
		return f.rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: filter})
	}
}

func statsIDs(list []*runtimeapi.ContainerStats) string {
	var ids []string
	for _, s := range list {
		ids = append(ids, s.GetAttributes().GetId())
	}
	return strings.Join(ids, ",")
}

func testListContainerStats(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.ListContainerStatsResponse]{{
		name: "created and running containers, not exited ones", setup: (*fixture).addSamples,
		call: listContainerStats(nil), want: twice(codes.OK),
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ListContainerStatsResponse) {
			if got := statsIDs(r.GetStats()); got != "ctr1,ctr2" {
				t.Errorf("stats of %q, want ctr1,ctr2", got)
			}
		},
	}, {
		name: "the filter is passed on", setup: (*fixture).addSamples,
		call: listContainerStats(&runtimeapi.ContainerStatsFilter{Id: "ctr1", PodSandboxId: "pod1", LabelSelector: map[string]string{"tier": "front"}}),
		want: twice(codes.OK), calls: []string{"Containers.List {ID:ctr1 PodID:pod1 State: LabelSelector:map[tier:front]}", "Stats.ContainerNow ctr1"},
	}, {
		name: "stats not collected", setup: noStats, call: listContainerStats(nil), want: twice(codes.Unavailable), calls: none,
	}})
}

func podSandboxStats(ctx context.Context, f *fixture, id string) (*runtimeapi.PodSandboxStatsResponse, error) {
	return f.rt.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: id})
}

func testPodSandboxStats(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.PodSandboxStatsResponse]{{
		name: "the pod, its network and its listed containers", setup: (*fixture).addSamples,
		call: containerCall(podSandboxStats, "pod1"), want: twice(codes.OK),
		check: func(t *testing.T, _ *fixture, r *runtimeapi.PodSandboxStatsResponse) {
			l := r.GetStats().GetLinux()
			if r.GetStats().GetAttributes().GetId() != "pod1" || l.GetCpu().GetUsageCoreNanoSeconds().GetValue() != 5e9 ||
				l.GetProcess().GetProcessCount().GetValue() != 3 || l.GetNetwork().GetDefaultInterface().GetName() != "eth0" {
				t.Errorf("pod stats %v", r.GetStats())
			}
			if got := statsIDs(l.GetContainers()); got != "ctr1,ctr2" {
				t.Errorf("container stats of %q, want ctr1,ctr2", got)
			}
		},
	}, {
		name: "never sampled: attributes only", setup: (*fixture).addSamples,
		call: containerCall(podSandboxStats, "pod1x"), want: twice(codes.OK),
		check: func(t *testing.T, _ *fixture, r *runtimeapi.PodSandboxStatsResponse) {
			if l := r.GetStats().GetLinux(); l.GetCpu() != nil || l.GetNetwork() != nil || len(l.GetContainers()) != 0 {
				t.Errorf("pod stats %v", r.GetStats())
			}
		},
	}, {
		name: "an unknown pod", call: containerCall(podSandboxStats, "nosuchpod"), want: twice(codes.NotFound),
	}, {
		name: "stats not collected", setup: noStats, call: containerCall(podSandboxStats, "pod1"), want: twice(codes.Unavailable), calls: none,
	}})
}

func listPodStats(filter *runtimeapi.PodSandboxStatsFilter) func(context.Context, *fixture) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.ListPodSandboxStatsResponse, error) {
		return f.rt.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{Filter: filter})
	}
}

func testListPodSandboxStats(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.ListPodSandboxStatsResponse]{{
		name: "ready pods only, with the filter", setup: (*fixture).addSamples,
		call: listPodStats(&runtimeapi.PodSandboxStatsFilter{Id: "pod", LabelSelector: map[string]string{"app": "web"}}),
		want: twice(codes.OK),
		check: func(t *testing.T, f *fixture, r *runtimeapi.ListPodSandboxStatsResponse) {
			if len(r.GetStats()) != 1 || r.GetStats()[0].GetAttributes().GetId() != "pod1" {
				t.Errorf("stats %v", r.GetStats())
			}
		},
	}, {
		name: "none ready", call: listPodStats(nil), want: twice(codes.OK),
		calls: []string{"Sandboxes.List {ID: State:ready LabelSelector:map[]}"},
	}, {
		name: "stats not collected", setup: noStats, call: listPodStats(nil), want: twice(codes.Unavailable), calls: none,
	}})
}

func testListMetricDescriptors(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.ListMetricDescriptorsResponse]{{
		name: "every metric named once",
		call: func(ctx context.Context, f *fixture) (*runtimeapi.ListMetricDescriptorsResponse, error) {
			return f.rt.ListMetricDescriptors(ctx, &runtimeapi.ListMetricDescriptorsRequest{})
		},
		want: twice(codes.OK), calls: none,
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ListMetricDescriptorsResponse) {
			seen := map[string]bool{}
			for _, d := range r.GetDescriptors() {
				if seen[d.GetName()] || d.GetHelp() == "" {
					t.Errorf("descriptor %v repeated or without help", d)
				}
				seen[d.GetName()] = true
			}
			if len(seen) != len(metricDescs) || !seen["container_cpu_usage_seconds_total"] {
				t.Errorf("%d descriptors, want %d", len(seen), len(metricDescs))
			}
		},
	}})
}

func listPodMetrics(ctx context.Context, f *fixture) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	return f.rt.ListPodSandboxMetrics(ctx, &runtimeapi.ListPodSandboxMetricsRequest{})
}

func testListPodSandboxMetrics(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.ListPodSandboxMetricsResponse]{{
		name: "ready pods with their listed containers", setup: (*fixture).addSamples,
		call: listPodMetrics, want: twice(codes.OK), varies: true, // unsampled containers' spec metrics carry the time of the call
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ListPodSandboxMetricsResponse) {
			if len(r.GetPodMetrics()) != 1 {
				t.Fatalf("pod metrics %v", r.GetPodMetrics())
			}
			pm := r.GetPodMetrics()[0]
			if pm.GetPodSandboxId() != "pod1" || len(pm.GetMetrics()) == 0 || len(pm.GetContainerMetrics()) != 2 ||
				len(pm.GetContainerMetrics()[0].GetMetrics()) == 0 {
				t.Errorf("pod metrics %v", pm)
			}
		},
	}, {
		name: "stats not collected", setup: noStats, call: listPodMetrics, want: twice(codes.Unavailable), calls: none,
	}})
}
