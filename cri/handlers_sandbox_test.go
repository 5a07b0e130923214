package cri

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/sandbox"
)

// podConfig is a valid RunPodSandbox config; edit changes a copy.
func podConfig(edit func(*runtimeapi.PodSandboxConfig)) *runtimeapi.PodSandboxConfig {
	c := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "uid-9"},
		Hostname:     "web",
		LogDirectory: "/var/log/pods/default_web_uid-9",
		Labels:       map[string]string{"app": "web"},
		PortMappings: []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 8080}},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/besteffort/poduid-9",
			Resources:    &runtimeapi.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 64 << 20},
		},
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func runPod(handler string, edit func(*runtimeapi.PodSandboxConfig)) func(context.Context, *fixture) (*runtimeapi.RunPodSandboxResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.RunPodSandboxResponse, error) {
		return f.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podConfig(edit), RuntimeHandler: handler})
	}
}

func testRunPodSandbox(t *testing.T) {
	invalid := func(name string, edit func(*runtimeapi.PodSandboxConfig)) rpcCase[*runtimeapi.RunPodSandboxResponse] {
		return rpcCase[*runtimeapi.RunPodSandboxResponse]{name: name, call: runPod("", edit), want: twice(codes.InvalidArgument), calls: none}
	}
	int64p := func(v int64) *runtimeapi.Int64Value { return &runtimeapi.Int64Value{Value: v} }
	secCtx := func(sc *runtimeapi.LinuxSandboxSecurityContext) func(*runtimeapi.PodSandboxConfig) {
		return func(c *runtimeapi.PodSandboxConfig) { c.Linux.SecurityContext = sc }
	}
	runCases(t, []rpcCase[*runtimeapi.RunPodSandboxResponse]{{
		name: "a retry gets the same pod", call: runPod("", nil),
		want: twice(codes.OK), calls: []string{"Sandboxes.Run default/web/uid-9/0"},
		check: func(t *testing.T, f *fixture, r *runtimeapi.RunPodSandboxResponse) {
			sb := f.pods.pods[r.GetPodSandboxId()]
			if sb == nil {
				t.Fatalf("no pod %q made", r.GetPodSandboxId())
			}
			c := sb.Config
			if c.Hash == "" || c.Hostname != "web" || c.CgroupParent != "/kubepods/besteffort/poduid-9" ||
				len(c.PortMappings) != 1 || c.PortMappings[0] != (sandbox.PortMapping{Protocol: "tcp", ContainerPort: 80, HostPort: 8080}) ||
				c.Resources == nil || c.Resources.CPUShares != 512 {
				t.Errorf("pod config %+v", c)
			}
		},
	}, {
		name: "the handler named runc is peapod", call: runPod("runc", nil), want: twice(codes.OK),
	}, {
		name: "a changed config under the same name is refused",
		call: func(ctx context.Context, f *fixture) (*runtimeapi.RunPodSandboxResponse, error) {
			if _, err := runPod("", nil)(ctx, f); err != nil {
				return nil, err
			}
			return runPod("", func(c *runtimeapi.PodSandboxConfig) { c.Hostname = "other" })(ctx, f)
		},
		want: twice(codes.AlreadyExists),
	}, {
		name: "an unknown runtime handler", call: runPod("kata", nil), want: twice(codes.InvalidArgument), calls: none,
	},
		invalid("no config", func(c *runtimeapi.PodSandboxConfig) { *c = runtimeapi.PodSandboxConfig{} }),
		invalid("no name", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "" }),
		invalid("no namespace", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Namespace = "" }),
		invalid("no uid", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Uid = "" }),
		invalid("a slash in the name", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "../etc" }),
		invalid("a NUL in the uid", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Uid = "a\x00b" }),
		invalid("a relative log directory", func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = "var/log/pods" }),
		invalid("labels over 256 KiB", func(c *runtimeapi.PodSandboxConfig) {
			c.Annotations = map[string]string{"big": strings.Repeat("x", maxMetadataSize)}
		}),
		invalid("network namespace TARGET", secCtx(&runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_TARGET}})),
		invalid("run_as_group without run_as_user", secCtx(&runtimeapi.LinuxSandboxSecurityContext{RunAsGroup: int64p(1000)})),
		invalid("a negative run_as_user", secCtx(&runtimeapi.LinuxSandboxSecurityContext{RunAsUser: int64p(-1)})),
		invalid("run_as_group past uint32", secCtx(&runtimeapi.LinuxSandboxSecurityContext{RunAsUser: int64p(0), RunAsGroup: int64p(1 << 32)})),
		invalid("a container port of 0", func(c *runtimeapi.PodSandboxConfig) { c.PortMappings[0].ContainerPort = 0 }),
		invalid("a host port past 65535", func(c *runtimeapi.PodSandboxConfig) { c.PortMappings[0].HostPort = 65536 }),
		invalid("cpu shares past the maximum", func(c *runtimeapi.PodSandboxConfig) { c.Linux.Resources.CpuShares = 1 << 20 }),
		invalid("a memory limit below 6 MiB in the overhead", func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.Overhead = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 4096}
		}),
		invalid("a user namespace without mappings", secCtx(&runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
			UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD}}})),
		invalid("a user namespace per container", secCtx(&runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
			UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}}})),
		rpcCase[*runtimeapi.RunPodSandboxResponse]{
			name: "a user namespace of the pod's own reaches the manager",
			call: runPod("", secCtx(&runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
				UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
					Uids: []*runtimeapi.IDMapping{{HostId: 65536, Length: 65536}}, Gids: []*runtimeapi.IDMapping{{HostId: 131072, Length: 65536}}}}})),
			want: twice(codes.OK),
			check: func(t *testing.T, f *fixture, r *runtimeapi.RunPodSandboxResponse) {
				u := f.pods.pods[r.GetPodSandboxId()].Config.UserNamespace
				if u == nil || len(u.UIDs) != 1 || u.UIDs[0].HostID != 65536 || u.UIDs[0].Size != 65536 || len(u.GIDs) != 1 || u.GIDs[0].HostID != 131072 {
					t.Errorf("user namespace given to the manager: %+v", u)
				}
			},
		},
		rpcCase[*runtimeapi.RunPodSandboxResponse]{
			name: "the manager's error keeps its code",
			setup: func(f *fixture) {
				f.rec.fail("Sandboxes.Run", fmt.Errorf("set up network: %w", errdefs.ErrUnavailable))
			},
			call: runPod("", nil), want: twice(codes.Unavailable),
		},
		rpcCase[*runtimeapi.RunPodSandboxResponse]{
			name:  "an unclassified error is Unknown",
			setup: func(f *fixture) { f.rec.fail("Sandboxes.Run", errors.New("mount /dev/shm: no space left on device")) },
			call:  runPod("", nil), want: twice(codes.Unknown),
		},
	})
}

func stopPod(id string) func(context.Context, *fixture) (*runtimeapi.StopPodSandboxResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.StopPodSandboxResponse, error) {
		return f.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
	}
}

func testStopPodSandbox(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.StopPodSandboxResponse]{{
		name: "containers first, then the pod; twice is fine", setup: (*fixture).addPodWithContainers,
		call: stopPod("pod1x"), want: twice(codes.OK),
		calls: []string{"Sandboxes.Get pod1x", "Containers.HoldPod pod1x", "Containers.StopPod pod1x", "Sandboxes.Stop pod1x", "Containers.HoldPod.release pod1x"},
	}, {
		name: "by unique prefix, the full id is stopped", setup: (*fixture).addPodWithContainers,
		call: stopPod("pod1"), want: twice(codes.OK),
		calls: []string{"Sandboxes.Get pod1", "Containers.HoldPod pod1", "Containers.StopPod pod1", "Sandboxes.Stop pod1", "Containers.HoldPod.release pod1"},
		check: func(t *testing.T, f *fixture, _ *runtimeapi.StopPodSandboxResponse) {
			if f.pods.pods["pod1"].State != sandbox.StateNotReady || f.ctrs.ctrs["ctr1"].State != "exited" {
				t.Errorf("pod %s, container %s after stop", f.pods.pods["pod1"].State, f.ctrs.ctrs["ctr1"].State)
			}
		},
	}, {
		name: "an unknown pod is already stopped", call: stopPod("nosuchpod"),
		want: twice(codes.OK), calls: []string{"Sandboxes.Get nosuchpod"},
	}, {
		name: "a container that will not stop keeps the pod up",
		setup: func(f *fixture) {
			f.addPodWithContainers()
			f.rec.fail("Containers.StopPod", fmt.Errorf("stop container ctr1: %w", errdefs.ErrUnavailable))
		},
		call: stopPod("pod1x"), want: twice(codes.Unavailable),
		calls: []string{"Sandboxes.Get pod1x", "Containers.HoldPod pod1x", "Containers.StopPod pod1x", "Containers.HoldPod.release pod1x"},
	}, {
		name: "a pod removed meanwhile is stopped", setup: func(f *fixture) {
			f.addPodWithContainers()
			f.rec.fail("Sandboxes.Stop", fmt.Errorf("pod sandbox pod1x: %w", errdefs.ErrNotFound))
		},
		call: stopPod("pod1x"), want: twice(codes.OK),
	}})
}

func removePod(id string) func(context.Context, *fixture) (*runtimeapi.RemovePodSandboxResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.RemovePodSandboxResponse, error) {
		return f.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
	}
}

func testRemovePodSandbox(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.RemovePodSandboxResponse]{{
		name: "containers first, then the pod; twice is fine", setup: (*fixture).addPodWithContainers,
		call: removePod("pod1x"), want: twice(codes.OK),
		calls: []string{"Sandboxes.Get pod1x", "Containers.HoldPod pod1x", "Containers.RemovePod pod1x", "Sandboxes.Remove pod1x", "Containers.HoldPod.release pod1x"},
		check: func(t *testing.T, f *fixture, _ *runtimeapi.RemovePodSandboxResponse) {
			if f.pods.pods["pod1x"] != nil || f.ctrs.ctrs["ctr9"] != nil || f.pods.pods["pod1"] == nil {
				t.Errorf("pods %v, containers %v after removing pod1x", f.pods.pods, f.ctrs.ctrs)
			}
		},
	}, {
		name: "an unknown pod is already removed", call: removePod("nosuchpod"),
		want: twice(codes.OK), calls: []string{"Sandboxes.Get nosuchpod"},
	}, {
		name: "a container that will not go keeps the pod",
		setup: func(f *fixture) {
			f.addPodWithContainers()
			f.rec.fail("Containers.RemovePod", fmt.Errorf("remove container ctr9: %w", errdefs.ErrFailedPrecondition))
		},
		call: removePod("pod1x"), want: twice(codes.FailedPrecondition),
		calls: []string{"Sandboxes.Get pod1x", "Containers.HoldPod pod1x", "Containers.RemovePod pod1x", "Containers.HoldPod.release pod1x"},
	}, {
		name: "the pod's own removal fails",
		setup: func(f *fixture) {
			f.addPodWithContainers()
			f.rec.fail("Sandboxes.Remove", errors.New("unmount shm: device busy"))
		},
		call: removePod("pod1x"), want: twice(codes.Unknown),
	}})
}

func podStatus(id string, verbose bool) func(context.Context, *fixture) (*runtimeapi.PodSandboxStatusResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.PodSandboxStatusResponse, error) {
		return f.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: verbose})
	}
}

func testPodSandboxStatus(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.PodSandboxStatusResponse]{{
		name: "the pod with its own containers only", setup: (*fixture).addPodWithContainers,
		call: podStatus("pod1", false), want: twice(codes.OK), varies: true,
		calls: []string{"Sandboxes.Get pod1", "Containers.List {ID: PodID:pod1 State: LabelSelector:map[]}"},
		check: func(t *testing.T, _ *fixture, r *runtimeapi.PodSandboxStatusResponse) {
			st := r.GetStatus()
			if st.GetId() != "pod1" || st.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY ||
				st.GetNetwork().GetIp() != "10.89.0.5" || len(st.GetNetwork().GetAdditionalIps()) != 1 {
				t.Errorf("status %v", st)
			}
			if len(r.GetContainersStatuses()) != 2 || r.GetTimestamp() == 0 || r.GetInfo() != nil {
				t.Errorf("containers %v (want ctr1, ctr2, not pod1x's ctr9), timestamp %d, info %v",
					r.GetContainersStatuses(), r.GetTimestamp(), r.GetInfo())
			}
		},
	}, {
		name: "a pod not ready reports no IP", setup: func(f *fixture) {
			f.addPodWithContainers()
			f.pods.pods["pod1x"].IPs = []string{"10.89.0.6"}
		},
		call: podStatus("pod1x", false), want: twice(codes.OK), varies: true,
		check: func(t *testing.T, _ *fixture, r *runtimeapi.PodSandboxStatusResponse) {
			if r.GetStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_NOTREADY || r.GetStatus().GetNetwork().GetIp() != "" {
				t.Errorf("status %v", r.GetStatus())
			}
		},
	}, {
		name: "verbose adds the record", setup: (*fixture).addPodWithContainers,
		call: podStatus("pod1", true), want: twice(codes.OK), varies: true,
		check: func(t *testing.T, _ *fixture, r *runtimeapi.PodSandboxStatusResponse) {
			if !strings.Contains(r.GetInfo()["info"], `"id":"pod1"`) {
				t.Errorf("info %v", r.GetInfo())
			}
		},
	}, {
		name: "an unknown pod", call: podStatus("nosuchpod", false), want: twice(codes.NotFound),
		calls: []string{"Sandboxes.Get nosuchpod"},
	}, {
		name: "an ambiguous prefix", setup: (*fixture).addPodWithContainers,
		call: podStatus("pod", false), want: twice(codes.InvalidArgument),
	}})
}

func listPods(filter *runtimeapi.PodSandboxFilter) func(context.Context, *fixture) (*runtimeapi.ListPodSandboxResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.ListPodSandboxResponse, error) {
		return f.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: filter})
	}
}

func podIDs(items []*runtimeapi.PodSandbox) string {
	var ids []string
	for _, p := range items {
		ids = append(ids, p.GetId())
	}
	return strings.Join(ids, ",")
}

func testListPodSandbox(t *testing.T) {
	ids := func(want string) func(*testing.T, *fixture, *runtimeapi.ListPodSandboxResponse) {
		return func(t *testing.T, _ *fixture, r *runtimeapi.ListPodSandboxResponse) {
			if got := podIDs(r.GetItems()); got != want {
				t.Errorf("pods %q, want %q", got, want)
			}
		}
	}
	runCases(t, []rpcCase[*runtimeapi.ListPodSandboxResponse]{{
		name: "every pod", setup: (*fixture).addPodWithContainers, call: listPods(nil),
		want: twice(codes.OK), calls: []string{"Sandboxes.List {ID: State: LabelSelector:map[]}"}, check: ids("pod1,pod1x"),
	}, {
		name: "ready ones", setup: (*fixture).addPodWithContainers,
		call: listPods(&runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}),
		want: twice(codes.OK), calls: []string{"Sandboxes.List {ID: State:ready LabelSelector:map[]}"}, check: ids("pod1"),
	}, {
		name: "not ready ones", setup: (*fixture).addPodWithContainers,
		call: listPods(&runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}}),
		want: twice(codes.OK), check: ids("pod1x"),
	}, {
		name: "by id prefix and label", setup: (*fixture).addPodWithContainers,
		call: listPods(&runtimeapi.PodSandboxFilter{Id: "pod1", LabelSelector: map[string]string{"app": "web"}}),
		want: twice(codes.OK), calls: []string{"Sandboxes.List {ID:pod1 State: LabelSelector:map[app:web]}"}, check: ids("pod1"),
	}, {
		name: "nothing", call: listPods(nil), want: twice(codes.OK), check: ids(""),
	}})
}

func updatePodResources(id string, res, overhead *runtimeapi.LinuxContainerResources) func(context.Context, *fixture) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
		return f.rt.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: id, Resources: res, Overhead: overhead})
	}
}

func testUpdatePodSandboxResources(t *testing.T) {
	res := &runtimeapi.LinuxContainerResources{CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20}
	overhead := &runtimeapi.LinuxContainerResources{CpuShares: 100, CpuQuota: 10000, MemoryLimitInBytes: 16 << 20}
	invalid := func(name, id string, res, overhead *runtimeapi.LinuxContainerResources) rpcCase[*runtimeapi.UpdatePodSandboxResourcesResponse] {
		return rpcCase[*runtimeapi.UpdatePodSandboxResourcesResponse]{name: name, setup: (*fixture).addPodWithContainers,
			call: updatePodResources(id, res, overhead), want: twice(codes.InvalidArgument), calls: none}
	}
	runCases(t, []rpcCase[*runtimeapi.UpdatePodSandboxResourcesResponse]{{
		name: "resources plus overhead", setup: (*fixture).addPodWithContainers,
		call: updatePodResources("pod1", res, overhead), want: twice(codes.OK), calls: []string{"Sandboxes.UpdateResources pod1"},
		check: func(t *testing.T, f *fixture, _ *runtimeapi.UpdatePodSandboxResourcesResponse) {
			got := f.pods.updated["pod1"]
			if got.CPUShares != 612 || got.CPUQuota != 60000 || got.CPUPeriod != 100000 || got.MemoryLimitInBytes != 80<<20 {
				t.Errorf("pod total %+v", got)
			}
		},
	}, {
		name: "overhead alone", setup: (*fixture).addPodWithContainers,
		call: updatePodResources("pod1", nil, overhead), want: twice(codes.OK),
		check: func(t *testing.T, f *fixture, _ *runtimeapi.UpdatePodSandboxResourcesResponse) {
			if got := f.pods.updated["pod1"]; got.CPUShares != 100 || got.MemoryLimitInBytes != 16<<20 {
				t.Errorf("pod total %+v", got)
			}
		},
	}, {
		name: "an unknown pod", call: updatePodResources("nosuchpod", res, nil), want: twice(codes.NotFound),
	},
		invalid("no pod id", "", res, nil),
		invalid("neither resources nor overhead", "pod1", nil, nil),
		invalid("invalid resources", "pod1", &runtimeapi.LinuxContainerResources{CpuPeriod: 1}, nil),
		invalid("invalid overhead", "pod1", res, &runtimeapi.LinuxContainerResources{OomScoreAdj: 5000}),
	})
}

func portForward(id string) func(context.Context, *fixture) (*runtimeapi.PortForwardResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.PortForwardResponse, error) {
		return f.rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: id, Port: []int32{80, 443}})
	}
}

func testPortForward(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.PortForwardResponse]{{
		name: "a URL for the full id", setup: (*fixture).addPodWithContainers,
		call: portForward("pod1"), want: twice(codes.OK),
		calls: []string{"Sandboxes.Get pod1", "Streams.PortForwardURL pod1 [80 443]"},
		check: func(t *testing.T, _ *fixture, r *runtimeapi.PortForwardResponse) {
			if !strings.HasSuffix(r.GetUrl(), "/portforward/pod1") {
				t.Errorf("url %q", r.GetUrl())
			}
		},
	}, {
		name: "a pod not ready", setup: (*fixture).addPodWithContainers,
		call: portForward("pod1x"), want: twice(codes.FailedPrecondition), calls: []string{"Sandboxes.Get pod1x"},
	}, {
		name: "an unknown pod", call: portForward("nosuchpod"), want: twice(codes.NotFound),
	}, {
		name: "no streaming server", setup: func(f *fixture) { f.addPodWithContainers(); f.opts.Streams = nil },
		call: portForward("pod1"), want: twice(codes.Unavailable), calls: none,
	}})
}
