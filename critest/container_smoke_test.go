package critest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestContainerSmoke walks one container through its whole life: pull, pod, create, start,
// exec, log, stop, remove.
func TestContainerSmoke(t *testing.T) {
	env := framework.Shared(t)
	ctx := framework.Context(t)
	img := env.Image(t)
	ref, err := img.PullImage(ctx, &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, nil, nil)
	if err != nil {
		t.Fatalf("PullImage: %v", err)
	}
	logDir := t.TempDir()
	podCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "smoke", Namespace: "critest", Uid: "smoke-uid-" + time.Now().Format("150405.000")},
		Hostname:     "smoke",
		LogDirectory: logDir,
	}
	podID, err := env.Runtime.RunPodSandbox(ctx, podCfg, "")
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	t.Cleanup(func() {
		ctx := framework.Quiet(context.Background())
		_ = env.Runtime.StopPodSandbox(ctx, podID)
		if err := env.Runtime.RemovePodSandbox(ctx, podID); err != nil {
			t.Errorf("RemovePodSandbox: %v", err)
		}
	})
	ctrCfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "main"},
		Image:    &runtimeapi.ImageSpec{Image: framework.ImageBusybox},
		Command:  []string{"sh", "-c", "echo hello; echo oops >&2; trap 'exit 0' TERM; while true; do sleep 0.1; done"},
		LogPath:  "main/0.log",
	}
	id, err := env.Runtime.CreateContainer(ctx, podID, ctrCfg, podCfg)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	st, err := env.Runtime.ContainerStatus(ctx, id, false)
	if err != nil || st.Status.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Fatalf("status after create: %v %v", st, err)
	}
	if (!framework.External() && st.Status.ImageRef != ref) || st.Status.ImageId != ref {
		t.Errorf("image ref %q id %q, want %q", st.Status.ImageRef, st.Status.ImageId, ref)
	}
	if err := env.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	stdout, _, err := env.Runtime.ExecSync(ctx, id, []string{"sh", "-c", "echo out; hostname; exit 3"}, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "3") {
		t.Errorf("ExecSync exit 3: err = %v", err)
	}
	if string(stdout) != "out\nsmoke\n" {
		t.Errorf("ExecSync stdout = %q", stdout)
	}
	deadline := time.Now().Add(5 * time.Second)
	var logText string
	for time.Now().Before(deadline) {
		raw, _ := os.ReadFile(logDir + "/main/0.log")
		logText = string(raw)
		if strings.Contains(logText, "oops") && strings.Contains(logText, "hello") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logText, " stdout F hello\n") || !strings.Contains(logText, " stderr F oops\n") {
		t.Errorf("log file:\n%s", logText)
	}
	if err := env.Runtime.StopContainer(ctx, id, 10); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	st, err = env.Runtime.ContainerStatus(ctx, id, false)
	if err != nil || st.Status.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.Status.ExitCode != 0 || st.Status.Reason != "Completed" {
		t.Fatalf("status after stop: %+v %v", st.GetStatus(), err)
	}
	if err := env.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	if err := env.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("second RemoveContainer: %v", err)
	}
}
