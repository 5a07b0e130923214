package cri

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/volumes"
)

// containerConfigFor is a valid CreateContainer config; edit changes a copy.
func containerConfigFor(edit func(*runtimeapi.ContainerConfig)) *runtimeapi.ContainerConfig {
	c := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: 1},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"sleep", "inf"},
		Envs:     []*runtimeapi.KeyValue{{Key: "A", Value: []byte("1")}},
		Mounts:   []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/tmp/data", Readonly: true}},
		LogPath:  "app/1.log",
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       &runtimeapi.LinuxContainerResources{CpuShares: 256},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{},
		},
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func createContainer(pod string, edit func(*runtimeapi.ContainerConfig)) func(context.Context, *fixture) (*runtimeapi.CreateContainerResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.CreateContainerResponse, error) {
		return f.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: containerConfigFor(edit),
			SandboxConfig: podConfig(nil)})
	}
}

func testCreateContainer(t *testing.T) {
	invalid := func(name string, edit func(*runtimeapi.ContainerConfig)) rpcCase[*runtimeapi.CreateContainerResponse] {
		return rpcCase[*runtimeapi.CreateContainerResponse]{name: name, setup: (*fixture).addPodWithContainers,
			call: createContainer("pod1", edit), want: twice(codes.InvalidArgument), calls: none}
	}
	ns := func(o *runtimeapi.NamespaceOption) func(*runtimeapi.ContainerConfig) {
		return func(c *runtimeapi.ContainerConfig) { c.Linux.SecurityContext.NamespaceOptions = o }
	}
	runCases(t, []rpcCase[*runtimeapi.CreateContainerResponse]{{
		name: "a retry gets the same container", setup: (*fixture).addPodWithContainers,
		call: createContainer("pod1", nil), want: twice(codes.OK), calls: []string{"Containers.Create pod1 app", "Sandboxes.Get pod1"},
		check: func(t *testing.T, f *fixture, r *runtimeapi.CreateContainerResponse) {
			c := f.ctrs.ctrs[r.GetContainerId()]
			if c == nil {
				t.Fatalf("no container %q made", r.GetContainerId())
			}
			cfg := c.Config
			if cfg.Hash == "" || cfg.Image != "busybox" || cfg.LogPath != "app/1.log" || len(cfg.Mounts) != 1 ||
				!cfg.Mounts[0].Readonly || cfg.Resources == nil || cfg.Resources.CPUShares != 256 ||
				strings.Join(cfg.Spec.Command, " ") != "sleep inf" || len(cfg.Spec.Env) != 1 {
				t.Errorf("container config %+v", cfg)
			}
		},
	}, {
		name: "a changed config under the same name is refused", setup: (*fixture).addPodWithContainers,
		call: func(ctx context.Context, f *fixture) (*runtimeapi.CreateContainerResponse, error) {
			if _, err := createContainer("pod1", nil)(ctx, f); err != nil {
				return nil, err
			}
			return createContainer("pod1", func(c *runtimeapi.ContainerConfig) { c.Args = []string{"x"} })(ctx, f)
		},
		want: twice(codes.AlreadyExists),
	}, {
		name: "in an unknown pod", call: createContainer("nosuchpod", nil), want: twice(codes.NotFound),
	}, {
		name: "in a pod not ready", setup: (*fixture).addPodWithContainers,
		call: createContainer("pod1x", nil), want: twice(codes.FailedPrecondition),
	}, {
		name: "the stop signal by name", setup: (*fixture).addPodWithContainers,
		call: createContainer("pod1", func(c *runtimeapi.ContainerConfig) { c.StopSignal = runtimeapi.Signal_SIGNAL_SIGUSR1 }),
		want: twice(codes.OK),
		check: func(t *testing.T, f *fixture, r *runtimeapi.CreateContainerResponse) {
			if got := f.ctrs.ctrs[r.GetContainerId()].Config.StopSignal; got != "SIGUSR1" {
				t.Errorf("stop signal %q", got)
			}
		},
	},
		invalid("no config", func(c *runtimeapi.ContainerConfig) { *c = runtimeapi.ContainerConfig{} }),
		rpcCase[*runtimeapi.CreateContainerResponse]{name: "no pod id", call: createContainer("", nil),
			want: twice(codes.InvalidArgument), calls: none},
		invalid("no name", func(c *runtimeapi.ContainerConfig) { c.Metadata.Name = "" }),
		invalid("a slash in the name", func(c *runtimeapi.ContainerConfig) { c.Metadata.Name = "a/b" }),
		invalid("no image", func(c *runtimeapi.ContainerConfig) { c.Image = nil }),
		invalid("labels over 256 KiB", func(c *runtimeapi.ContainerConfig) {
			c.Labels = map[string]string{"big": strings.Repeat("x", maxMetadataSize+1)}
		}),
		invalid("a CDI device without a name", func(c *runtimeapi.ContainerConfig) { c.CDIDevices = []*runtimeapi.CDIDevice{{}} }),
		invalid("pid namespace TARGET without a target", ns(&runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_TARGET})),
		invalid("a quota below the minimum", func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.CpuQuota = 10 }),
		invalid("an image volume with a host path", func(c *runtimeapi.ContainerConfig) {
			c.Mounts = append(c.Mounts, &runtimeapi.Mount{ContainerPath: "/img", HostPath: "/data", Image: &runtimeapi.ImageSpec{Image: "data"}})
		}),
		rpcCase[*runtimeapi.CreateContainerResponse]{name: "an image volume is read-only and private", setup: (*fixture).addPodWithContainers,
			call: createContainer("pod1", func(c *runtimeapi.ContainerConfig) {
				c.Mounts = append(c.Mounts, &runtimeapi.Mount{ContainerPath: "/img", Image: &runtimeapi.ImageSpec{Image: "data"},
					ImageSubPath: "sub", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL})
			}),
			want: twice(codes.OK),
			check: func(t *testing.T, f *fixture, r *runtimeapi.CreateContainerResponse) {
				ms := f.ctrs.ctrs[r.GetContainerId()].Config.Mounts
				if m := ms[len(ms)-1]; m.Image != "data" || m.ImageSubPath != "sub" || !m.Readonly || m.Propagation != volumes.PropagationPrivate || m.HostPath != "" {
					t.Errorf("image volume converted to %+v", m)
				}
			}},
		invalid("a user namespace without mappings", ns(&runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD}})),
		invalid("a user namespace of another container", ns(&runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}})),
		rpcCase[*runtimeapi.CreateContainerResponse]{
			name: "the pod's user namespace, as asked, reaches the manager", setup: (*fixture).addPodWithContainers,
			call: createContainer("pod1", ns(&runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
				Uids: []*runtimeapi.IDMapping{{HostId: 65536, Length: 65536}}, Gids: []*runtimeapi.IDMapping{{HostId: 65536, Length: 65536}}}})),
			want: twice(codes.OK),
			check: func(t *testing.T, f *fixture, r *runtimeapi.CreateContainerResponse) {
				u := f.ctrs.ctrs[r.GetContainerId()].Config.UserNamespace
				if u == nil || u.Node || u.Mapping == nil || u.Mapping.UIDs[0].HostID != 65536 {
					t.Errorf("user namespace given to the manager: %+v", u)
				}
			},
		},
	})
}

// containerCall makes a request that names one container.
func containerCall[Resp any](rpc func(context.Context, *fixture, string) (Resp, error), id string) func(context.Context, *fixture) (Resp, error) {
	return func(ctx context.Context, f *fixture) (Resp, error) { return rpc(ctx, f, id) }
}

func startContainer(ctx context.Context, f *fixture, id string) (*runtimeapi.StartContainerResponse, error) {
	return f.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
}

func testStartContainer(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.StartContainerResponse]{{
		name: "a created container starts once", setup: (*fixture).addPodWithContainers,
		call: containerCall(startContainer, "ctr2"), want: []codes.Code{codes.OK, codes.FailedPrecondition},
		calls: []string{"Containers.Start ctr2"},
		check: func(t *testing.T, f *fixture, _ *runtimeapi.StartContainerResponse) {
			if st := f.ctrs.ctrs["ctr2"].State; st != container.StateRunning {
				t.Errorf("state %s after start", st)
			}
		},
	}, {
		name: "an unknown container", call: containerCall(startContainer, "nosuchctr"), want: twice(codes.NotFound),
	}, {
		name: "the shim is gone", setup: func(f *fixture) {
			f.addPodWithContainers()
			f.rec.fail("Containers.Start", fmt.Errorf("shim of pod1: %w", errdefs.ErrUnavailable))
		},
		call: containerCall(startContainer, "ctr2"), want: twice(codes.Unavailable),
	}})
}

func stopContainer(timeout int64) func(context.Context, *fixture, string) (*runtimeapi.StopContainerResponse, error) {
	return func(ctx context.Context, f *fixture, id string) (*runtimeapi.StopContainerResponse, error) {
		return f.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: timeout})
	}
}

func testStopContainer(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.StopContainerResponse]{{
		name: "stops; twice is fine; the timeout is in seconds", setup: (*fixture).addPodWithContainers,
		call: containerCall(stopContainer(30), "ctr1"), want: twice(codes.OK), calls: []string{"Containers.Stop ctr1 30s"},
		check: func(t *testing.T, f *fixture, _ *runtimeapi.StopContainerResponse) {
			if st := f.ctrs.ctrs["ctr1"].State; st != container.StateExited {
				t.Errorf("state %s after stop", st)
			}
		},
	}, {
		name: "an unknown container is already stopped", call: containerCall(stopContainer(0), "nosuchctr"),
		want: twice(codes.OK), calls: []string{"Containers.Stop nosuchctr 0s"},
	}, {
		name: "a negative timeout", setup: (*fixture).addPodWithContainers,
		call: containerCall(stopContainer(-1), "ctr1"), want: twice(codes.InvalidArgument), calls: none,
	}, {
		name: "the caller gave up", setup: func(f *fixture) {
			f.addPodWithContainers()
			f.rec.fail("Containers.Stop", fmt.Errorf("stop ctr1: %w", context.DeadlineExceeded))
		},
		call: containerCall(stopContainer(10), "ctr1"), want: twice(codes.DeadlineExceeded),
	}})
}

func removeContainer(ctx context.Context, f *fixture, id string) (*runtimeapi.RemoveContainerResponse, error) {
	return f.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id})
}

func testRemoveContainer(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.RemoveContainerResponse]{{
		name: "removes; twice is fine", setup: (*fixture).addPodWithContainers,
		call: containerCall(removeContainer, "ctr9"), want: twice(codes.OK), calls: []string{"Containers.Remove ctr9"},
		check: func(t *testing.T, f *fixture, _ *runtimeapi.RemoveContainerResponse) {
			if f.ctrs.ctrs["ctr9"] != nil {
				t.Error("ctr9 still there")
			}
		},
	}, {
		name: "an unknown container is already removed", call: containerCall(removeContainer, "nosuchctr"), want: twice(codes.OK),
	}, {
		name: "removal fails", setup: func(f *fixture) {
			f.addPodWithContainers()
			f.rec.fail("Containers.Remove", fmt.Errorf("unmount rootfs: %w", errdefs.ErrFailedPrecondition))
		},
		call: containerCall(removeContainer, "ctr9"), want: twice(codes.FailedPrecondition),
	}})
}

func listContainers(filter *runtimeapi.ContainerFilter) func(context.Context, *fixture) (*runtimeapi.ListContainersResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.ListContainersResponse, error) {
		return f.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: filter})
	}
}

func containerIDs(items []*runtimeapi.Container) string {
	var ids []string
	for _, c := range items {
		ids = append(ids, c.GetId())
	}
	return strings.Join(ids, ",")
}

func testListContainers(t *testing.T) {
	state := func(s runtimeapi.ContainerState) *runtimeapi.ContainerFilter {
		return &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: s}}
	}
	list := func(name string, filter *runtimeapi.ContainerFilter, asked, want string) rpcCase[*runtimeapi.ListContainersResponse] {
		return rpcCase[*runtimeapi.ListContainersResponse]{name: name, setup: (*fixture).addPodWithContainers,
			call: listContainers(filter), want: twice(codes.OK), calls: []string{"Containers.List " + asked},
			check: func(t *testing.T, _ *fixture, r *runtimeapi.ListContainersResponse) {
				if got := containerIDs(r.GetContainers()); got != want {
					t.Errorf("containers %q, want %q", got, want)
				}
			}}
	}
	runCases(t, []rpcCase[*runtimeapi.ListContainersResponse]{
		list("every container", nil, "{ID: PodID: State: LabelSelector:map[]}", "ctr1,ctr2,ctr9"),
		list("created", state(runtimeapi.ContainerState_CONTAINER_CREATED), "{ID: PodID: State:created LabelSelector:map[]}", "ctr2"),
		list("running", state(runtimeapi.ContainerState_CONTAINER_RUNNING), "{ID: PodID: State:running LabelSelector:map[]}", "ctr1"),
		list("exited", state(runtimeapi.ContainerState_CONTAINER_EXITED), "{ID: PodID: State:exited LabelSelector:map[]}", "ctr9"),
		list("unknown", state(runtimeapi.ContainerState_CONTAINER_UNKNOWN), "{ID: PodID: State:unknown LabelSelector:map[]}", ""),
		list("by pod, id and label", &runtimeapi.ContainerFilter{Id: "ctr", PodSandboxId: "pod1", LabelSelector: map[string]string{"tier": "front"}},
			"{ID:ctr PodID:pod1 State: LabelSelector:map[tier:front]}", "ctr1"),
		{
			name: "an answer over 16 MiB is refused with a hint",
			setup: func(f *fixture) {
				big := map[string]string{"x": strings.Repeat("x", 200<<10)}
				for i := range 90 {
					f.ctrs.add(container.Container{ID: fmt.Sprintf("big%02d", i), PodID: "pod1", Config: container.Config{Labels: big}})
				}
			},
			call: listContainers(nil), want: twice(codes.ResourceExhausted),
		},
	})
}

func containerStatus(verbose bool) func(context.Context, *fixture, string) (*runtimeapi.ContainerStatusResponse, error) {
	return func(ctx context.Context, f *fixture, id string) (*runtimeapi.ContainerStatusResponse, error) {
		return f.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: verbose})
	}
}

func testContainerStatus(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.ContainerStatusResponse]{{
		name: "from memory, no spec read", setup: (*fixture).addPodWithContainers,
		call: containerCall(containerStatus(false), "ctr9"), want: twice(codes.OK), calls: []string{"Containers.Get ctr9"},
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ContainerStatusResponse) {
			st := r.GetStatus()
			if st.GetId() != "ctr9" || st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || r.GetInfo() != nil {
				t.Errorf("status %v, info %v", st, r.GetInfo())
			}
		},
	}, {
		name: "verbose adds the record and the runtime spec", setup: (*fixture).addPodWithContainers,
		call: containerCall(containerStatus(true), "ctr2"), want: twice(codes.OK),
		calls: []string{"Containers.Get ctr2", "Containers.Spec ctr2"},
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ContainerStatusResponse) {
			if info := r.GetInfo()["info"]; !strings.Contains(info, `"sandboxID":"pod1"`) || !strings.Contains(info, `"ociVersion":"1.2.1"`) {
				t.Errorf("info %q", info)
			}
		},
	}, {
		name: "verbose before the spec exists", setup: func(f *fixture) {
			f.addPodWithContainers()
			f.rec.fail("Containers.Spec", fmt.Errorf("spec of ctr2: %w", errdefs.ErrNotFound))
		},
		call: containerCall(containerStatus(true), "ctr2"), want: twice(codes.OK),
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ContainerStatusResponse) {
			if info := r.GetInfo()["info"]; info == "" || strings.Contains(info, "runtimeSpec") {
				t.Errorf("info %q", info)
			}
		},
	}, {
		name: "verbose with an unreadable spec", setup: func(f *fixture) {
			f.addPodWithContainers()
			f.rec.fail("Containers.Spec", fmt.Errorf("read spec: %w", errdefs.ErrDataLoss))
		},
		call: containerCall(containerStatus(true), "ctr2"), want: twice(codes.DataLoss),
	}, {
		name: "an unknown container", call: containerCall(containerStatus(false), "nosuchctr"), want: twice(codes.NotFound),
	}})
}

func updateContainerResources(req *runtimeapi.UpdateContainerResourcesRequest) func(context.Context, *fixture) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.UpdateContainerResourcesResponse, error) {
		return f.rt.UpdateContainerResources(ctx, req)
	}
}

func testUpdateContainerResources(t *testing.T) {
	linux := &runtimeapi.LinuxContainerResources{CpuShares: 1024, MemoryLimitInBytes: 128 << 20}
	invalid := func(name string, req *runtimeapi.UpdateContainerResourcesRequest) rpcCase[*runtimeapi.UpdateContainerResourcesResponse] {
		return rpcCase[*runtimeapi.UpdateContainerResourcesResponse]{name: name, setup: (*fixture).addPodWithContainers,
			call: updateContainerResources(req), want: twice(codes.InvalidArgument), calls: none}
	}
	runCases(t, []rpcCase[*runtimeapi.UpdateContainerResourcesResponse]{{
		name: "applied; twice is the same", setup: (*fixture).addPodWithContainers,
		call: updateContainerResources(&runtimeapi.UpdateContainerResourcesRequest{ContainerId: "ctr1", Linux: linux}),
		want: twice(codes.OK), calls: []string{"Containers.UpdateResources ctr1"},
		check: func(t *testing.T, f *fixture, _ *runtimeapi.UpdateContainerResourcesResponse) {
			if got := f.ctrs.updated["ctr1"]; got == nil || got.CPUShares != 1024 || got.MemoryLimitInBytes != 128<<20 {
				t.Errorf("applied %+v", got)
			}
		},
	}, {
		name: "an unknown container",
		call: updateContainerResources(&runtimeapi.UpdateContainerResourcesRequest{ContainerId: "nosuchctr", Linux: linux}),
		want: twice(codes.NotFound),
	},
		invalid("no container id", &runtimeapi.UpdateContainerResourcesRequest{Linux: linux}),
		invalid("no linux resources", &runtimeapi.UpdateContainerResourcesRequest{ContainerId: "ctr1"}),
		invalid("windows resources", &runtimeapi.UpdateContainerResourcesRequest{ContainerId: "ctr1", Windows: &runtimeapi.WindowsContainerResources{}}),
		invalid("swap without memory", &runtimeapi.UpdateContainerResourcesRequest{ContainerId: "ctr1",
			Linux: &runtimeapi.LinuxContainerResources{MemorySwapLimitInBytes: 1 << 30}}),
	})
}

func reopenLog(ctx context.Context, f *fixture, id string) (*runtimeapi.ReopenContainerLogResponse, error) {
	return f.rt.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: id})
}

func testReopenContainerLog(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.ReopenContainerLogResponse]{{
		name: "a running container's log; twice is fine", setup: (*fixture).addPodWithContainers,
		call: containerCall(reopenLog, "ctr1"), want: twice(codes.OK), calls: []string{"Containers.ReopenLog ctr1"},
	}, {
		name: "a container not running", setup: (*fixture).addPodWithContainers,
		call: containerCall(reopenLog, "ctr9"), want: twice(codes.FailedPrecondition),
	}, {
		name: "an unknown container", call: containerCall(reopenLog, "nosuchctr"), want: twice(codes.NotFound),
	}})
}

func execSync(cmd []string, timeout int64) func(context.Context, *fixture, string) (*runtimeapi.ExecSyncResponse, error) {
	return func(ctx context.Context, f *fixture, id string) (*runtimeapi.ExecSyncResponse, error) {
		return f.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: timeout})
	}
}

func testExecSync(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.ExecSyncResponse]{{
		name: "output and exit code", setup: func(f *fixture) {
			f.addPodWithContainers()
			f.ctrs.exec = container.ExecSyncResult{Stdout: []byte("out"), Stderr: []byte("err"), ExitCode: 3}
		},
		call: containerCall(execSync([]string{"sh", "-c", "exit 3"}, 5), "ctr1"), want: twice(codes.OK),
		calls: []string{"Containers.ExecSync ctr1 sh -c exit 3 5s"},
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ExecSyncResponse) {
			if string(r.GetStdout()) != "out" || string(r.GetStderr()) != "err" || r.GetExitCode() != 3 {
				t.Errorf("answer %v", r)
			}
		},
	}, {
		name: "a timeout is DeadlineExceeded", setup: func(f *fixture) {
			f.addPodWithContainers()
			f.ctrs.exec = container.ExecSyncResult{TimedOut: true}
		},
		call: containerCall(execSync([]string{"sleep", "9"}, 1), "ctr1"), want: twice(codes.DeadlineExceeded),
	}, {
		name: "a negative timeout", setup: (*fixture).addPodWithContainers,
		call: containerCall(execSync([]string{"true"}, -1), "ctr1"), want: twice(codes.InvalidArgument), calls: none,
	}, {
		name: "a container not running", setup: (*fixture).addPodWithContainers,
		call: containerCall(execSync([]string{"true"}, 0), "ctr2"), want: twice(codes.FailedPrecondition),
	}, {
		name: "an unknown container", call: containerCall(execSync([]string{"true"}, 0), "nosuchctr"), want: twice(codes.NotFound),
	}})
}

// addLongID adds running container "ctrlong0123", which its unique prefix "ctrlong" names.
func (f *fixture) addLongID() {
	f.addPodWithContainers()
	f.ctrs.add(container.Container{ID: "ctrlong0123", PodID: "pod1", State: container.StateRunning})
}

func execURL(req *runtimeapi.ExecRequest) func(context.Context, *fixture) (*runtimeapi.ExecResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.ExecResponse, error) { return f.rt.Exec(ctx, req) }
}

func testExec(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.ExecResponse]{{
		name: "a URL naming the full id", setup: (*fixture).addLongID,
		call:  execURL(&runtimeapi.ExecRequest{ContainerId: "ctrlong", Cmd: []string{"sh"}, Tty: true, Stdin: true, Stdout: true}),
		want:  twice(codes.OK),
		calls: []string{"Containers.CheckRunning ctrlong", "Streams.ExecURL ctrlong0123 sh true true true false"},
		check: func(t *testing.T, _ *fixture, r *runtimeapi.ExecResponse) {
			if !strings.HasSuffix(r.GetUrl(), "/exec/ctrlong0123") {
				t.Errorf("url %q", r.GetUrl())
			}
		},
	}, {
		name: "no command", setup: (*fixture).addPodWithContainers,
		call: execURL(&runtimeapi.ExecRequest{ContainerId: "ctr1", Stdout: true}), want: twice(codes.InvalidArgument), calls: none,
	}, {
		name: "a container not running", setup: (*fixture).addPodWithContainers,
		call: execURL(&runtimeapi.ExecRequest{ContainerId: "ctr2", Cmd: []string{"sh"}, Stdout: true}), want: twice(codes.FailedPrecondition),
	}, {
		name: "an unknown container",
		call: execURL(&runtimeapi.ExecRequest{ContainerId: "nosuchctr", Cmd: []string{"sh"}, Stdout: true}), want: twice(codes.NotFound),
	}, {
		name: "no streaming server", setup: func(f *fixture) { f.addPodWithContainers(); f.opts.Streams = nil },
		call: execURL(&runtimeapi.ExecRequest{ContainerId: "ctr1", Cmd: []string{"sh"}, Stdout: true}),
		want: twice(codes.Unavailable), calls: none,
	}, {
		name: "the streaming server refuses", setup: func(f *fixture) {
			f.addPodWithContainers()
			f.rec.fail("Streams.ExecURL", fmt.Errorf("exec needs one of stdin, stdout and stderr: %w", errdefs.ErrInvalidArgument))
		},
		call: execURL(&runtimeapi.ExecRequest{ContainerId: "ctr1", Cmd: []string{"sh"}}), want: twice(codes.InvalidArgument),
	}})
}

func attachURL(req *runtimeapi.AttachRequest) func(context.Context, *fixture) (*runtimeapi.AttachResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.AttachResponse, error) {
		return f.rt.Attach(ctx, req)
	}
}

func testAttach(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.AttachResponse]{{
		name: "a URL naming the full id", setup: (*fixture).addLongID,
		call: attachURL(&runtimeapi.AttachRequest{ContainerId: "ctrlong", Stdin: true, Stdout: true, Stderr: true}),
		want: twice(codes.OK), calls: []string{"Containers.CheckRunning ctrlong", "Streams.AttachURL ctrlong0123 false true true true"},
		check: func(t *testing.T, _ *fixture, r *runtimeapi.AttachResponse) {
			if !strings.HasSuffix(r.GetUrl(), "/attach/ctrlong0123") {
				t.Errorf("url %q", r.GetUrl())
			}
		},
	}, {
		name: "a container not running", setup: (*fixture).addPodWithContainers,
		call: attachURL(&runtimeapi.AttachRequest{ContainerId: "ctr9", Stdout: true}), want: twice(codes.FailedPrecondition),
	}, {
		name: "an unknown container", call: attachURL(&runtimeapi.AttachRequest{ContainerId: "nosuchctr", Stdout: true}),
		want: twice(codes.NotFound),
	}, {
		name: "no streaming server", setup: func(f *fixture) { f.addPodWithContainers(); f.opts.Streams = nil },
		call: attachURL(&runtimeapi.AttachRequest{ContainerId: "ctr1", Stdout: true}), want: twice(codes.Unavailable), calls: none,
	}})
}
