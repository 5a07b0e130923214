package cri

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestMetadataSizeLimit: labels and annotations together are capped at 256 KiB per object,
// on pod and container configs alike, with InvalidArgument naming the limit.
func TestMetadataSizeLimit(t *testing.T) {
	big := func(n int) map[string]string { return map[string]string{"k": strings.Repeat("v", n-1)} }
	s := New(Options{})
	for _, tc := range []struct {
		name                string
		labels, annotations map[string]string
		ok                  bool
	}{
		{"none", nil, nil, true},
		{"labels at the limit", big(256 << 10), nil, true},
		{"split at the limit", big(128 << 10), big(128 << 10), true},
		{"labels one over", big(256<<10 + 1), nil, false},
		{"together one over", big(128 << 10), big(128<<10 + 1), false},
		{"1 MiB label", big(1 << 20), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, perr := s.sandboxConfig(&runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
				Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "n", Uid: "u"},
				Labels:   tc.labels, Annotations: tc.annotations,
			}})
			_, cerr := s.containerConfig(&runtimeapi.CreateContainerRequest{PodSandboxId: "pod", Config: &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
				Labels: tc.labels, Annotations: tc.annotations,
			}})
			for what, err := range map[string]error{"pod": perr, "container": cerr} {
				if tc.ok {
					if err != nil {
						t.Errorf("%s config: %v", what, err)
					}
					continue
				}
				st := status.Convert(toStatus(err))
				if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "262144") {
					t.Errorf("%s config: %v; want InvalidArgument naming the 262144-byte limit", what, err)
				}
			}
		})
	}
}

// TestReplySizeLimit: an answer larger than a CRI client takes is refused with
// ResourceExhausted naming its size and suggesting a filter, not sent to fail the client's
// transport; one that fits goes out.
func TestReplySizeLimit(t *testing.T) {
	s := New(Options{})
	s.SetReady()
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/ListContainers"}
	list := func(n int) grpc.UnaryHandler {
		return func(context.Context, any) (any, error) {
			resp := &runtimeapi.ListContainersResponse{}
			for range n {
				resp.Containers = append(resp.Containers, &runtimeapi.Container{
					Id: strings.Repeat("a", 64), Labels: map[string]string{"big": strings.Repeat("x", 256<<10)},
				})
			}
			return resp, nil
		}
	}
	resp, err := s.unaryInterceptor(t.Context(), &runtimeapi.ListContainersRequest{}, info, list(63))
	if err != nil || len(resp.(*runtimeapi.ListContainersResponse).GetContainers()) != 63 {
		t.Fatalf("63 containers of 256 KiB: %v", err)
	}
	resp, err = s.unaryInterceptor(t.Context(), &runtimeapi.ListContainersRequest{}, info, list(70))
	st := status.Convert(err)
	if resp != nil || st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "filter") ||
		!strings.Contains(st.Message(), "16777216") || !strings.Contains(st.Message(), "ListContainers") {
		t.Errorf("70 containers of 256 KiB: resp %T, %v; want ResourceExhausted naming the size and a filter", resp, err)
	}
}

// TestUserNamespaceOptions: userns_options as the CRI defines them, for pods and containers
// alike: nothing or NODE is the node's; POD takes exactly one uid and one gid mapping with
// container root mapped; CONTAINER and TARGET do not exist for user namespaces. Every refusal
// is InvalidArgument (a kubelet must not retry it) naming what is wrong.
func TestUserNamespaceOptions(t *testing.T) {
	s := New(Options{})
	one := func(c, h, n uint32) []*runtimeapi.IDMapping {
		return []*runtimeapi.IDMapping{{ContainerId: c, HostId: h, Length: n}}
	}
	pod := func(uids, gids []*runtimeapi.IDMapping) *runtimeapi.NamespaceOption {
		return &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: uids, Gids: gids}}
	}
	for _, tc := range []struct {
		name    string
		ns      *runtimeapi.NamespaceOption
		want    codes.Code
		message string
	}{
		{"no option", nil, codes.OK, ""},
		{"no userns option", &runtimeapi.NamespaceOption{}, codes.OK, ""},
		{"node", &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}}, codes.OK, ""},
		{"pod", pod(one(0, 65536, 65536), one(0, 65536, 65536)), codes.OK, ""},
		{"node with mappings", &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE, Uids: one(0, 1000, 10)}}, codes.InvalidArgument, "takes no uid or gid mappings"},
		{"pod, two uid mappings", pod(append(one(0, 1000, 100000), one(0, 2000, 100000)...), one(0, 1000, 100000)), codes.InvalidArgument, "exactly one uid mapping, got 2"},
		{"pod, no gid mapping", pod(one(0, 1000, 100000), nil), codes.InvalidArgument, "exactly one gid mapping, got 0"},
		{"pod, root unmapped", pod(one(1, 1000, 100000), one(1, 1000, 100000)), codes.InvalidArgument, "container uid 0 (root) unmapped"},
		{"pod, empty range", pod(one(0, 1000, 0), one(0, 1000, 10)), codes.InvalidArgument, "length 0"},
		{"container", &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}}, codes.InvalidArgument, "mode CONTAINER"},
		{"target", &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}}, codes.InvalidArgument, "mode TARGET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, perr := s.sandboxConfig(&runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
				Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "n", Uid: "u"},
				Linux:    &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: tc.ns}},
			}})
			_, cerr := s.containerConfig(&runtimeapi.CreateContainerRequest{PodSandboxId: "pod", Config: &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
				Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: tc.ns}},
			}})
			for what, err := range map[string]error{"pod": perr, "container": cerr} {
				st := status.Convert(toStatus(err))
				if st.Code() != tc.want || !strings.Contains(st.Message(), tc.message) {
					t.Errorf("%s config: %v (code %v), want %v with %q", what, err, st.Code(), tc.want, tc.message)
				}
			}
		})
	}
}
