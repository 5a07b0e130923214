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

	"github.com/peapod-runtime/peapod/config"
)

func testVersion(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.VersionResponse]{{
		name: "names the runtime and the CRI version",
		call: func(ctx context.Context, f *fixture) (*runtimeapi.VersionResponse, error) {
			return f.rt.Version(ctx, &runtimeapi.VersionRequest{Version: "v1"})
		},
		want: twice(codes.OK), calls: none,
		check: func(t *testing.T, _ *fixture, r *runtimeapi.VersionResponse) {
			if r.GetRuntimeName() != config.DefaultRuntimeName || r.GetRuntimeApiVersion() != "v1" || r.GetRuntimeVersion() != "0.2.0-test" {
				t.Errorf("Version = %v", r)
			}
		},
	}})
}

func statusCall(verbose bool) func(context.Context, *fixture) (*runtimeapi.StatusResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.StatusResponse, error) {
		return f.rt.Status(ctx, &runtimeapi.StatusRequest{Verbose: verbose})
	}
}

// netReady is the NetworkReady condition of a Status answer.
func netReady(t *testing.T, r *runtimeapi.StatusResponse) *runtimeapi.RuntimeCondition {
	t.Helper()
	for _, c := range r.GetStatus().GetConditions() {
		if c.GetType() == runtimeapi.NetworkReady {
			return c
		}
	}
	t.Fatalf("no NetworkReady condition in %v", r)
	return nil
}

func testStatus(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.StatusResponse]{{
		name: "ready runtime and network, every handler listed",
		call: statusCall(false), want: twice(codes.OK), calls: none,
		check: func(t *testing.T, _ *fixture, r *runtimeapi.StatusResponse) {
			for _, c := range r.GetStatus().GetConditions() {
				if !c.GetStatus() {
					t.Errorf("condition %s not ready: %v", c.GetType(), c)
				}
			}
			var names []string
			for _, h := range r.GetRuntimeHandlers() {
				names = append(names, h.GetName())
			}
			if strings.Join(names, ",") != ",peapod,runc" {
				t.Errorf("runtime handlers %q, want \"\", peapod, runc", names)
			}
			if !r.GetFeatures().GetSupplementalGroupsPolicy() || r.GetInfo() != nil {
				t.Errorf("features %v, info %v", r.GetFeatures(), r.GetInfo())
			}
			for _, h := range r.GetRuntimeHandlers() {
				if h.GetFeatures().GetUserNamespaces() {
					t.Errorf("handler %q advertises user namespaces the node's probe did not find", h.GetName())
				}
			}
		},
	}, {
		name:  "user namespaces probed at start: advertised for every handler",
		setup: func(f *fixture) { f.pods.userns = true },
		call:  statusCall(false), want: twice(codes.OK), calls: none,
		check: func(t *testing.T, _ *fixture, r *runtimeapi.StatusResponse) {
			for _, h := range r.GetRuntimeHandlers() {
				if !h.GetFeatures().GetUserNamespaces() {
					t.Errorf("handler %q does not advertise user namespaces", h.GetName())
				}
			}
		},
	}, {
		name:  "no network wired: NetworkReady false",
		setup: func(f *fixture) { f.opts.Network = nil },
		call:  statusCall(false), want: twice(codes.OK),
		check: func(t *testing.T, _ *fixture, r *runtimeapi.StatusResponse) {
			if c := netReady(t, r); c.GetStatus() || c.GetReason() != "NetworkPluginNotReady" {
				t.Errorf("NetworkReady = %v", c)
			}
		},
	}, {
		name:  "network not ready: its error is the message",
		setup: func(f *fixture) { f.opts.Network = fakeNetwork{err: errors.New("no CNI config in /etc/cni/net.d")} },
		call:  statusCall(false), want: twice(codes.OK),
		check: func(t *testing.T, _ *fixture, r *runtimeapi.StatusResponse) {
			if c := netReady(t, r); c.GetStatus() || c.GetMessage() != "no CNI config in /etc/cni/net.d" {
				t.Errorf("NetworkReady = %v", c)
			}
		},
	}, {
		name:  "verbose: the config and the stored pod CIDR",
		setup: func(f *fixture) { f.pods.podCIDR = "10.88.0.0/16" },
		call:  statusCall(true), want: twice(codes.OK), calls: []string{"Sandboxes.PodCIDR"},
		check: func(t *testing.T, _ *fixture, r *runtimeapi.StatusResponse) {
			if r.GetInfo()["podCIDR"] != "10.88.0.0/16" || !strings.HasPrefix(r.GetInfo()["config"], "{") {
				t.Errorf("info = %v", r.GetInfo())
			}
		},
	}, {
		name:  "verbose: an unreadable pod CIDR is left out, not an error",
		setup: func(f *fixture) { f.rec.fail("Sandboxes.PodCIDR", errors.New("disk gone")) },
		call:  statusCall(true), want: twice(codes.OK),
		check: func(t *testing.T, _ *fixture, r *runtimeapi.StatusResponse) {
			if _, ok := r.GetInfo()["podCIDR"]; ok || r.GetInfo()["config"] == "" {
				t.Errorf("info = %v", r.GetInfo())
			}
		},
	}})
}

func testRuntimeConfig(t *testing.T) {
	call := func(ctx context.Context, f *fixture) (*runtimeapi.RuntimeConfigResponse, error) {
		return f.rt.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
	}
	driver := func(want runtimeapi.CgroupDriver) func(*testing.T, *fixture, *runtimeapi.RuntimeConfigResponse) {
		return func(t *testing.T, _ *fixture, r *runtimeapi.RuntimeConfigResponse) {
			if got := r.GetLinux().GetCgroupDriver(); got != want {
				t.Errorf("cgroup driver %v, want %v", got, want)
			}
		}
	}
	runCases(t, []rpcCase[*runtimeapi.RuntimeConfigResponse]{{
		name: "cgroupfs", call: call, want: twice(codes.OK), calls: none,
		setup: func(f *fixture) { f.opts.Config.CgroupDriver = config.DriverCgroupfs },
		check: driver(runtimeapi.CgroupDriver_CGROUPFS),
	}, {
		name: "systemd", call: call, want: twice(codes.OK),
		setup: func(f *fixture) { f.opts.Config.CgroupDriver = config.DriverSystemd },
		check: driver(runtimeapi.CgroupDriver_SYSTEMD),
	}})
}

func updateRuntimeConfig(cidr string) func(context.Context, *fixture) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	return func(ctx context.Context, f *fixture) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
		return f.rt.UpdateRuntimeConfig(ctx, &runtimeapi.UpdateRuntimeConfigRequest{
			RuntimeConfig: &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: cidr}}})
	}
}

func testUpdateRuntimeConfig(t *testing.T) {
	stored := func(want string) func(*testing.T, *fixture, *runtimeapi.UpdateRuntimeConfigResponse) {
		return func(t *testing.T, f *fixture, _ *runtimeapi.UpdateRuntimeConfigResponse) {
			if f.pods.podCIDR != want {
				t.Errorf("stored pod CIDR %q, want %q", f.pods.podCIDR, want)
			}
		}
	}
	runCases(t, []rpcCase[*runtimeapi.UpdateRuntimeConfigResponse]{{
		name: "a dual-stack CIDR is stored", call: updateRuntimeConfig("10.88.0.0/16,fd00:10::/64"),
		want: twice(codes.OK), calls: []string{"Sandboxes.SetPodCIDR 10.88.0.0/16,fd00:10::/64"},
		check: stored("10.88.0.0/16,fd00:10::/64"),
	}, {
		name:  "no CIDR changes nothing",
		setup: func(f *fixture) { f.pods.podCIDR = "10.1.0.0/16" },
		call:  updateRuntimeConfig(""), want: twice(codes.OK), calls: none, check: stored("10.1.0.0/16"),
	}, {
		name: "not a CIDR", call: updateRuntimeConfig("10.88.0.0"),
		want: twice(codes.InvalidArgument), calls: none, check: stored(""),
	}, {
		name: "one bad CIDR of two", call: updateRuntimeConfig("10.88.0.0/16,fd00::/129"),
		want: twice(codes.InvalidArgument), calls: none, check: stored(""),
	}, {
		name: "the store fails",
		setup: func(f *fixture) {
			f.rec.fail("Sandboxes.SetPodCIDR", fmt.Errorf("store pod CIDR: %w", errdefs.ErrUnavailable))
		},
		call: updateRuntimeConfig("10.88.0.0/16"), want: twice(codes.Unavailable),
	}})
}

func checkpoint(location string, timeout int64) func(context.Context, *fixture, string) (*runtimeapi.CheckpointContainerResponse, error) {
	return func(ctx context.Context, f *fixture, id string) (*runtimeapi.CheckpointContainerResponse, error) {
		return f.rt.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: location, Timeout: timeout})
	}
}

func testCheckpointContainer(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.CheckpointContainerResponse]{{
		name: "a running container; twice is fine", setup: (*fixture).addPodWithContainers,
		call: containerCall(checkpoint("/tmp/x.tar", 30), "ctr1"), want: twice(codes.OK),
		calls: []string{"Containers.Checkpoint ctr1 /tmp/x.tar"},
	}, {
		name: "a container not running", setup: (*fixture).addPodWithContainers,
		call: containerCall(checkpoint("/tmp/x.tar", 0), "ctr9"), want: twice(codes.FailedPrecondition),
	}, {
		name: "an unknown container", call: containerCall(checkpoint("/tmp/x.tar", 0), "nosuchctr"), want: twice(codes.NotFound),
	}, {
		name: "no location", setup: (*fixture).addPodWithContainers,
		call: containerCall(checkpoint("", 0), "ctr1"), want: twice(codes.InvalidArgument), calls: none,
	}, {
		name: "a negative timeout", setup: (*fixture).addPodWithContainers,
		call: containerCall(checkpoint("/tmp/x.tar", -1), "ctr1"), want: twice(codes.InvalidArgument), calls: none,
	}, {
		name: "no container id", call: containerCall(checkpoint("/tmp/x.tar", 0), ""), want: twice(codes.InvalidArgument), calls: none,
	}})
}

func testCheckpointPod(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.CheckpointPodResponse]{{
		name: "not implemented",
		call: func(ctx context.Context, f *fixture) (*runtimeapi.CheckpointPodResponse, error) {
			return f.rt.CheckpointPod(ctx, &runtimeapi.CheckpointPodRequest{PodSandboxId: "pod1"})
		},
		want: twice(codes.Unimplemented), calls: none,
	}})
}

func testRestorePod(t *testing.T) {
	runCases(t, []rpcCase[*runtimeapi.RestorePodResponse]{{
		name: "not implemented",
		call: func(ctx context.Context, f *fixture) (*runtimeapi.RestorePodResponse, error) {
			return f.rt.RestorePod(ctx, &runtimeapi.RestorePodRequest{})
		},
		want: twice(codes.Unimplemented), calls: none,
	}})
}
