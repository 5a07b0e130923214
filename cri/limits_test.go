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

// TestUserNamespaceRefused: a user namespace other than the node's is Unimplemented, for
// pods and containers alike, rather than ignored (the pod would run with the node's ids);
// NODE, or no option at all, is what every pod without hostUsers: false sends.
func TestUserNamespaceRefused(t *testing.T) {
	s := New(Options{})
	for _, tc := range []struct {
		name string
		ns   *runtimeapi.NamespaceOption
		want codes.Code
	}{
		{"no option", nil, codes.OK},
		{"no userns option", &runtimeapi.NamespaceOption{}, codes.OK},
		{"node", &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}}, codes.OK},
		{"pod", &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
			Uids: []*runtimeapi.IDMapping{{HostId: 65536, ContainerId: 0, Length: 65536}},
			Gids: []*runtimeapi.IDMapping{{HostId: 65536, ContainerId: 0, Length: 65536}}}}, codes.Unimplemented},
		{"container", &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}}, codes.Unimplemented},
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
				if got := status.Code(toStatus(err)); got != tc.want {
					t.Errorf("%s config: %v (code %v), want %v", what, err, got, tc.want)
				}
			}
		})
	}
}
