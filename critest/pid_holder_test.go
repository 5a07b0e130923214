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
// pod has no PID namespace any more: it is reported NOTREADY (so that a kubelet makes a new
// one, as it does when a pause container dies), and a new container is refused with
// FailedPrecondition saying why (not started into a namespace that is gone). The pod is
// stopped and removed with nothing left behind, its shim included.
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
	waitPodState(t, pod, runtimeapi.PodSandboxState_SANDBOX_NOTREADY, 5*time.Second)
	_, err := pod.create(t, sleeper("next", framework.ImageBusybox, nil))
	wantCode(t, "CreateContainer in a pod whose PID namespace is gone", err, codes.FailedPrecondition, "PID namespace")
	removePodClean(t, pod, tr)
	processGone(t, shim, 5*time.Second)
}

// TestPidHolderKilledNotReady: a pod whose PID namespace holder is killed is reported
// NOTREADY whenever the holder dies: while the pod has no container running (nothing else
// then tells of it), and while the daemon is down (the next daemon finds it at start). Both
// pods are then stopped and removed with nothing left behind.
func TestPidHolderKilledNotReady(t *testing.T) {
	framework.RequirePeapod(t)
	d := framework.StartDaemon(t)
	c := framework.MustConnect(t, d.Endpoint())
	shared := func(cfg *runtimeapi.PodSandboxConfig) {
		cfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_POD},
		}
	}
	idle := newTestPodOn(t, &testPod{env: framework.Shared(t), rt: c.Runtime, img: c.Image, daemon: d}, "holder-idle", shared)
	away := newTestPodOn(t, &testPod{env: framework.Shared(t), rt: c.Runtime, img: c.Image, daemon: d}, "holder-away", shared)
	var traces []podTrace
	holders := map[*testPod]int{}
	for _, pod := range []*testPod{idle, away} {
		traces = append(traces, tracePod(t, pod.rt, pod.id))
		id := pod.run(t, sleeper("sleeper", framework.ImageBusybox, nil))
		holders[pod] = holderPid(t, shimPid(t, pod.id))
		if err := pod.rt.StopContainer(framework.Context(t), id, 0); err != nil {
			t.Fatal(err)
		}
	}

	// No container running: the holder's exit alone makes the pod NOTREADY.
	if err := syscall.Kill(holders[idle], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitPodState(t, idle, runtimeapi.PodSandboxState_SANDBOX_NOTREADY, 5*time.Second)
	if st := podState(t, away); st != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("the other pod is %v, want READY", st)
	}

	// Killed while the daemon is down: NOTREADY once it is back, and it stays so.
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(holders[away], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	processGone(t, holders[away], 5*time.Second)
	if err := d.Start(framework.Context(t)); err != nil {
		t.Fatalf("restart: %v", err)
	}
	waitPodState(t, away, runtimeapi.PodSandboxState_SANDBOX_NOTREADY, 10*time.Second)
	resp, err := c.Runtime.ListPodSandbox(framework.Context(t), &runtimeapi.PodSandboxFilter{
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range resp {
		if sb.GetId() == idle.id || sb.GetId() == away.id {
			t.Errorf("ListPodSandbox of READY pods lists %s, whose holder is dead", sb.GetId())
		}
	}

	for i, pod := range []*testPod{idle, away} {
		shim := shimPid(t, pod.id)
		removePodClean(t, pod, traces[i])
		processGone(t, shim, 5*time.Second)
	}
}

// podState is the pod's state as PodSandboxStatus reports it.
func podState(t *testing.T, pod *testPod) runtimeapi.PodSandboxState {
	t.Helper()
	resp, err := pod.rt.PodSandboxStatus(framework.Context(t), pod.id, false)
	if err != nil {
		t.Fatalf("PodSandboxStatus: %v", err)
	}
	return resp.GetStatus().GetState()
}

// waitPodState waits until PodSandboxStatus reports the pod in state want.
func waitPodState(t *testing.T, pod *testPod, want runtimeapi.PodSandboxState, timeout time.Duration) {
	t.Helper()
	began := time.Now()
	deadline := began.Add(timeout)
	for {
		got := podState(t, pod)
		if got == want {
			t.Logf("pod %.12s %v after %v", pod.id, want, time.Since(began).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s is %v %v after its holder was killed, want %v", pod.id, got, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
