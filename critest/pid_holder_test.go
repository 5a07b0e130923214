package critest

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// sharedPidPod runs a pod whose containers share one PID namespace (NamespaceMode POD, held
// by the pod's shim) and two sleeping containers in it.
func sharedPidPod(t *testing.T, name string) (*testPod, []string) {
	t.Helper()
	pod := newTestPod(t, name, func(cfg *runtimeapi.PodSandboxConfig) {
		cfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD},
		}
	})
	ids := []string{pod.run(t, sleeper("a", framework.ImageBusybox, nil)), pod.run(t, sleeper("b", framework.ImageBusybox, nil))}
	return pod, ids
}

// holderPid finds the pod's PID namespace holder: the child of its shim that runs
// "peapod-shim pause".
func holderPid(t *testing.T, shim int) int {
	t.Helper()
	kids, err := framework.ChildPIDs(shim)
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range kids {
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err == nil && strings.HasSuffix(string(raw), "\x00pause\x00") {
			return pid
		}
	}
	t.Fatalf("shim %d has no pause child among %v", shim, kids)
	return 0
}

// removePodClean stops and removes the pod and checks that nothing of it is left.
func removePodClean(t *testing.T, pod *testPod, tr podTrace) {
	t.Helper()
	ctx := framework.Context(t)
	if err := pod.rt.StopPodSandbox(ctx, pod.id); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if err := pod.rt.RemovePodSandbox(ctx, pod.id); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	checkPodsGone(t, pod.env, tr)
}

// TestShimKilledTakesHolder: when a pod's shim is killed, its containers are reported EXITED
// (reason Error, exit code 255, the monitor lost), and the PID namespace holder the shim
// started goes too: nothing is left running under PID 1 that nobody watches. The pod is then
// stopped and removed with nothing left behind.
func TestShimKilledTakesHolder(t *testing.T) {
	framework.RequirePeapod(t)
	pod, ids := sharedPidPod(t, "shim-holder")
	tr := tracePod(t, pod.rt, pod.id)
	shim := shimPid(t, pod.id)
	holder := holderPid(t, shim)
	pids := []int{pod.pid(t, ids[0]), pod.pid(t, ids[1])}
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	processGone(t, shim, 5*time.Second)
	for _, id := range ids {
		st := pod.waitExited(t, id, 10*time.Second)
		if st.ExitCode != 255 || st.Reason != "Error" || !strings.Contains(st.Message, "monitor") {
			t.Errorf("container %s after its shim was killed: exit %d reason %q message %q, want 255 Error and a lost monitor", id, st.ExitCode, st.Reason, st.Message)
		}
	}
	processGone(t, holder, 5*time.Second)
	for _, pid := range pids {
		processGone(t, pid, 5*time.Second)
	}
	removePodClean(t, pod, tr)
}

// TestPidHolderKilled: when a pod's PID namespace holder is killed, the kernel kills every
// process of the namespace: the pod's containers are reported EXITED with 137 (SIGKILL). The
// pod has no PID namespace any more: a new container is refused with FailedPrecondition
// saying so (not started into a namespace that is gone). The pod is stopped and removed with
// nothing left behind, its shim included.
func TestPidHolderKilled(t *testing.T) {
	framework.RequirePeapod(t)
	pod, ids := sharedPidPod(t, "holder-killed")
	tr := tracePod(t, pod.rt, pod.id)
	shim := shimPid(t, pod.id)
	holder := holderPid(t, shim)
	if err := syscall.Kill(holder, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	processGone(t, holder, 5*time.Second)
	for _, id := range ids {
		st := pod.waitExited(t, id, 10*time.Second)
		if st.ExitCode != 137 || st.Reason != "Error" {
			t.Errorf("container %s after the holder was killed: exit %d reason %q message %q, want 137 Error", id, st.ExitCode, st.Reason, st.Message)
		}
	}
	_, err := pod.create(t, sleeper("next", framework.ImageBusybox, nil))
	wantCode(t, "CreateContainer in a pod whose PID namespace is gone", err, codes.FailedPrecondition, "PID namespace")
	removePodClean(t, pod, tr)
	processGone(t, shim, 5*time.Second)
}
