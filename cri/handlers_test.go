package cri

import (
	"context"
	"errors"
	"io"
	"slices"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// rpcCase is one row of a handler's table: a request through the Server's interceptors to
// fakes, made once per entry of want, each time answering that code. Making every request
// at least twice is the CRI's idempotency (a kubelet retries): the second answer must equal
// the first unless the case says it varies (timestamps).
type rpcCase[Resp proto.Message] struct {
	name string
	// setup prepares the fakes and options before the Server starts.
	setup func(*fixture)
	call  func(context.Context, *fixture) (Resp, error)
	// want are the codes of the successive calls: at least two.
	want []codes.Code
	// calls, when not nil, are the fakes' calls the first request makes (none: empty).
	calls []string
	// check looks at the first answer and the fakes after it.
	check  func(*testing.T, *fixture, Resp)
	varies bool
}

// twice is the same code for a call and its repeat.
func twice(c codes.Code) []codes.Code { return []codes.Code{c, c} }

// none is the fakes' call log of a request refused before it reached a collaborator.
var none = []string{}

func runCases[Resp proto.Message](t *testing.T, cases []rpcCase[Resp]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.want) < 2 {
				t.Fatalf("a case makes its request at least twice, got want %v", tc.want)
			}
			f := newFixture()
			if tc.setup != nil {
				tc.setup(f)
			}
			f.start(t, true)
			f.rec.take()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var first Resp
			for i, want := range tc.want {
				resp, err := tc.call(ctx, f)
				if got := status.Code(err); got != want {
					t.Fatalf("call %d: code %v (%v), want %v", i+1, got, err, want)
				}
				if i == 0 {
					first = resp
					if calls := f.rec.take(); tc.calls != nil && !slices.Equal(calls, tc.calls) {
						t.Errorf("calls on the fakes:\n got %q\nwant %q", calls, tc.calls)
					}
					if tc.check != nil {
						tc.check(t, f, resp)
					}
					continue
				}
				if err == nil && tc.want[0] == codes.OK && !tc.varies && !proto.Equal(resp, first) {
					t.Errorf("call %d answered %v, the first %v", i+1, resp, first)
				}
			}
		})
	}
}

// handlerTests has the table of every RPC of RuntimeService and ImageService, by method
// name; TestEveryRPCHasHandlerTests keeps it complete.
var handlerTests = map[string]func(*testing.T){
	// runtime
	"Version":             testVersion,
	"Status":              testStatus,
	"RuntimeConfig":       testRuntimeConfig,
	"UpdateRuntimeConfig": testUpdateRuntimeConfig,
	// pods
	"RunPodSandbox":             testRunPodSandbox,
	"StopPodSandbox":            testStopPodSandbox,
	"RemovePodSandbox":          testRemovePodSandbox,
	"PodSandboxStatus":          testPodSandboxStatus,
	"ListPodSandbox":            testListPodSandbox,
	"UpdatePodSandboxResources": testUpdatePodSandboxResources,
	"PortForward":               testPortForward,
	// containers
	"CreateContainer":          testCreateContainer,
	"StartContainer":           testStartContainer,
	"StopContainer":            testStopContainer,
	"RemoveContainer":          testRemoveContainer,
	"ListContainers":           testListContainers,
	"ContainerStatus":          testContainerStatus,
	"UpdateContainerResources": testUpdateContainerResources,
	"ReopenContainerLog":       testReopenContainerLog,
	"ExecSync":                 testExecSync,
	"Exec":                     testExec,
	"Attach":                   testAttach,
	"GetContainerEvents":       testGetContainerEvents,
	// stats and metrics
	"ContainerStats":        testContainerStats,
	"ListContainerStats":    testListContainerStats,
	"PodSandboxStats":       testPodSandboxStats,
	"ListPodSandboxStats":   testListPodSandboxStats,
	"ListMetricDescriptors": testListMetricDescriptors,
	"ListPodSandboxMetrics": testListPodSandboxMetrics,
	// not implemented
	"CheckpointContainer": testCheckpointContainer,
	"CheckpointPod":       testCheckpointPod,
	"RestorePod":          testRestorePod,
	// list streams
	"StreamPodSandboxes":      testStreamPodSandboxes,
	"StreamContainers":        testStreamContainers,
	"StreamContainerStats":    testStreamContainerStats,
	"StreamPodSandboxStats":   testStreamPodSandboxStats,
	"StreamPodSandboxMetrics": testStreamPodSandboxMetrics,
	// images
	"ListImages":   testListImages,
	"ImageStatus":  testImageStatus,
	"PullImage":    testPullImage,
	"RemoveImage":  testRemoveImage,
	"ImageFsInfo":  testImageFsInfo,
	"StreamImages": testStreamImages,
}

func TestHandlers(t *testing.T) {
	names := make([]string, 0, len(handlerTests))
	for name := range handlerTests {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, handlerTests[name])
	}
}

// serviceMethods are the RPCs of both CRI services, unary and streaming, by full method name.
func serviceMethods() []string {
	var out []string
	for _, d := range []grpc.ServiceDesc{runtimeapi.RuntimeService_ServiceDesc, runtimeapi.ImageService_ServiceDesc} {
		for _, m := range d.Methods {
			out = append(out, "/"+d.ServiceName+"/"+m.MethodName)
		}
		for _, s := range d.Streams {
			out = append(out, "/"+d.ServiceName+"/"+s.StreamName)
		}
	}
	return out
}

func TestEveryRPCHasHandlerTests(t *testing.T) {
	methods := serviceMethods()
	seen := map[string]bool{}
	for _, full := range methods {
		name := lastElem(full)
		seen[name] = true
		if handlerTests[name] == nil {
			t.Errorf("%s has no handler table in handlerTests", full)
		}
	}
	for name := range handlerTests {
		if !seen[name] {
			t.Errorf("handlerTests names %s, which neither CRI service has", name)
		}
	}
	if len(methods) < 40 {
		t.Errorf("only %d CRI methods found: the service descriptors changed shape", len(methods))
	}
}

func lastElem(full string) string {
	for i := len(full) - 1; i >= 0; i-- {
		if full[i] == '/' {
			return full[i+1:]
		}
	}
	return full
}

// TestEveryRPCIsUnavailableUntilReady makes each method's request before SetReady: recovery
// is not over, so the interceptor answers Unavailable before any handler runs.
func TestEveryRPCIsUnavailableUntilReady(t *testing.T) {
	f := newFixture()
	f.start(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, full := range serviceMethods() {
		st, err := f.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, full)
		if err != nil {
			t.Fatalf("%s: open: %v", full, err)
		}
		// An empty request is every request type's zero value.
		if err := st.SendMsg(&runtimeapi.VersionRequest{}); err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("%s: send: %v", full, err)
		}
		_ = st.CloseSend()
		err = st.RecvMsg(&runtimeapi.VersionResponse{})
		if got := status.Code(err); got != codes.Unavailable {
			t.Errorf("%s before SetReady: %v (%v), want Unavailable", full, got, err)
		}
	}
	if calls := f.rec.take(); len(calls) != 0 {
		t.Errorf("requests before SetReady reached the fakes: %q", calls)
	}
}
