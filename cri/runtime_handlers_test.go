package cri

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/config"
)

// TestConfiguredRuntimeHandlers: a name in runtime.handlers is accepted by RunPodSandbox and
// listed by Status like the built-in ones (Kubernetes' node conformance runs its PodOverhead
// pods with the RuntimeClass handler "test-handler"); other names stay InvalidArgument.
func TestConfiguredRuntimeHandlers(t *testing.T) {
	cfg := config.Default()
	cfg.Runtime.Handlers = []string{"test-handler"}
	s := New(Options{Config: cfg})
	s.SetReady()
	req := func(h string) *runtimeapi.RunPodSandboxRequest {
		return &runtimeapi.RunPodSandboxRequest{RuntimeHandler: h, Config: &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "n", Uid: "u"},
		}}
	}
	for _, h := range []string{"", "peapod", "runc", "test-handler"} {
		out, err := s.sandboxConfig(req(h))
		if err != nil {
			t.Errorf("handler %q: %v", h, err)
		} else if out.RuntimeHandler != h {
			t.Errorf("handler %q recorded as %q", h, out.RuntimeHandler)
		}
	}
	_, err := s.sandboxConfig(req("kata"))
	if st := status.Convert(toStatus(err)); st.Code() != codes.InvalidArgument {
		t.Errorf("handler kata: %v; want InvalidArgument", err)
	}
	resp, err := s.Status(context.Background(), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, h := range resp.GetRuntimeHandlers() {
		listed = append(listed, h.GetName())
	}
	if !slices.Equal(listed, []string{"", "peapod", "runc", "test-handler"}) {
		t.Errorf("Status lists handlers %q", listed)
	}
	// Without the configuration, the name is refused.
	if _, err := New(Options{Config: config.Default()}).sandboxConfig(req("test-handler")); err == nil {
		t.Error("test-handler accepted without runtime.handlers")
	}
}
