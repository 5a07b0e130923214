package critest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// ownPod runs a pod on a daemon of the test's own and returns it with its clients.
func ownPod(t *testing.T, d *framework.Daemon, name string) *testPod {
	t.Helper()
	c := framework.MustConnect(t, d.Endpoint())
	p := &testPod{env: framework.Shared(t), rt: c.Runtime, img: c.Image, daemon: d}
	return newTestPodOn(t, p, name, nil)
}

// nodeNetPod runs a hostNetwork pod on daemon d, with busybox pulled, and returns the
// client it used. The pod is removed in cleanup through a new connection, since the test may
// restart d.
func nodeNetPod(t *testing.T, d *framework.Daemon, name string) (*framework.Client, string, *runtimeapi.PodSandboxConfig) {
	t.Helper()
	ctx := framework.Context(t)
	c := framework.MustConnect(t, d.Endpoint())
	if _, err := c.Image.PullImage(ctx, &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, nil, nil); err != nil {
		t.Fatalf("PullImage: %v", err)
	}
	podCfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "critest", Uid: fmt.Sprintf("%s-%d", name, time.Now().UnixNano())},
		Linux:    &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}},
	}
	podID, err := c.Runtime.RunPodSandbox(ctx, podCfg, "")
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	t.Cleanup(func() {
		ctx := framework.Quiet(context.Background())
		c, err := framework.Connect(ctx, d.Endpoint())
		if err != nil {
			t.Errorf("connect for cleanup: %v", err)
			return
		}
		defer c.Close()
		_ = c.Runtime.StopPodSandbox(ctx, podID)
		if err := c.Runtime.RemovePodSandbox(ctx, podID); err != nil {
			t.Errorf("RemovePodSandbox: %v", err)
		}
	})
	return c, podID, podCfg
}

// waitServing polls until the restarted daemon answers ContainerStatus of id.
func waitServing(t *testing.T, p *testPod, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := p.rt.ContainerStatus(framework.Context(t), id, false)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not serving after restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processGone waits until pid has exited (and is reaped, or is a zombie).
func processGone(t *testing.T, pid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := framework.ProcessStatus(pid)
		if err != nil || strings.HasPrefix(st["State"], "Z") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still %s after %v", pid, st["State"], timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestContainerRestartRecovery: after kill -9 of the daemon, containers keep running and
// logging; one that exits meanwhile is reported after the restart with its real exit code,
// finish time and last log line; the running one is still running, with every line it wrote
// while the daemon was away, and can be exec'd into, stopped and removed.
func TestContainerRestartRecovery(t *testing.T) {
	framework.RequirePeapod(t)
	d := framework.StartDaemon(t)
	pod := ownPod(t, d, "restart")
	ctx := framework.Context(t)
	runnerCfg := shell("runner", "i=0; while true; do echo $i; i=$((i+1)); sleep 0.02; done")
	exiterCfg := shell("exiter", "while [ ! -f /tmp/go ]; do sleep 0.02; done; echo bye; exit 7")
	doneCfg := shell("done", "echo early; exit 0")
	runner, exiter, done := pod.run(t, runnerCfg), pod.run(t, exiterCfg), pod.run(t, doneCfg)
	pod.waitExited(t, done, 10*time.Second)
	created, err := pod.create(t, sleeper("created", framework.ImageBusybox, nil))
	if err != nil {
		t.Fatal(err)
	}
	runnerPid, exiterPid := pod.pid(t, runner), pod.pid(t, exiter)
	waitLog(t, pod.logPath(runnerCfg), 5*time.Second, func(l []logLine) bool { return len(l) >= 5 })

	if err := d.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if err := os.WriteFile(filepathJoinProc(exiterPid, "root/tmp/go"), nil, 0o644); err != nil {
		t.Fatalf("tell the exiter to exit: %v", err)
	}
	processGone(t, exiterPid, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	if err := d.Start(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	restarted := time.Now()
	waitServing(t, pod, runner)

	st := pod.status(t, exiter)
	if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 7 || st.Reason != "Error" {
		t.Errorf("exiter after restart: %v exit %d reason %q message %q, want EXITED 7 Error", st.State, st.ExitCode, st.Reason, st.Message)
	}
	if f := time.Unix(0, st.FinishedAt); f.Before(killed) || f.After(restarted) {
		t.Errorf("exiter finished at %v, want between the kill %v and the restart %v", f, killed, restarted)
	}
	if l := readLog(t, pod.logPath(exiterCfg)); len(l) == 0 || l[len(l)-1].text != "bye" {
		t.Errorf("exiter log %+v, want its last line bye", l)
	}
	if st := pod.status(t, done); st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 0 || st.Reason != "Completed" {
		t.Errorf("done after restart: %v exit %d reason %q", st.State, st.ExitCode, st.Reason)
	}
	if st := pod.status(t, runner); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING || pod.pid(t, runner) != runnerPid {
		t.Errorf("runner after restart: %v pid %d, want RUNNING pid %d", st.State, pod.pid(t, runner), runnerPid)
	}
	var down int
	for i, l := range readLog(t, pod.logPath(runnerCfg)) {
		if l.text != strconv.Itoa(i) {
			t.Fatalf("runner log entry %d is %q", i, l.text)
		}
		if l.ts.After(killed) && l.ts.Before(restarted) {
			down++
		}
	}
	if down < 5 {
		t.Errorf("runner logged %d lines while the daemon was down, want many", down)
	}
	if st := pod.status(t, created); st.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Errorf("created container after restart: %v", st.State)
	}
	if err := pod.rt.StartContainer(ctx, created); err != nil {
		t.Errorf("start after restart of a container created before: %v", err)
	}
	if got := pod.sh(t, created, "echo started"); got != "started" {
		t.Errorf("exec in it: %q", got)
	}
	if got := pod.sh(t, runner, "echo alive"); got != "alive" {
		t.Errorf("exec after restart: %q", got)
	}
	if err := pod.rt.StopContainer(ctx, runner, 0); err != nil {
		t.Fatalf("stop after restart: %v", err)
	}
	if st := pod.status(t, runner); st.ExitCode != 137 {
		t.Errorf("runner after kill: exit %d", st.ExitCode)
	}
	for _, id := range []string{runner, exiter, done, created} {
		if err := pod.rt.RemoveContainer(ctx, id); err != nil {
			t.Errorf("remove after restart: %v", err)
		}
	}
}

// shimPid finds the pod's peapod-shim.
// stopShim SIGSTOPs the pod's shim and returns resume, which SIGCONTs it once;
// resume also runs at cleanup, so a failed test never leaves the shim stopped.
func stopShim(t *testing.T, podID string) (resume func()) {
	t.Helper()
	shim := shimPid(t, podID)
	if err := syscall.Kill(shim, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	resume = func() {
		once.Do(func() {
			if err := syscall.Kill(shim, syscall.SIGCONT); err != nil {
				t.Errorf("SIGCONT shim %d: %v", shim, err)
			}
		})
	}
	t.Cleanup(resume)
	return resume
}

func shimPid(t *testing.T, podID string) int {
	t.Helper()
	shim, _, err := framework.PeapodShim(podID)
	if err != nil {
		t.Fatal(err)
	}
	return shim
}

// TestContainerShimKilled: when a pod's shim dies, its containers are reported EXITED with
// reason Error and a message saying the monitor was lost, their processes and cgroups go
// with RemoveContainer, and the pod can start new containers and be removed.
func TestContainerShimKilled(t *testing.T) {
	framework.RequirePeapod(t)
	pod := newTestPod(t, "shim-killed", nil)
	ctx := framework.Context(t)
	id := pod.run(t, sleeper("orphan", framework.ImageBusybox, nil))
	info := pod.ctrInfo(t, id)
	shim := shimPid(t, pod.id)
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	processGone(t, shim, 5*time.Second)

	st := pod.waitExited(t, id, 5*time.Second)
	if st.Reason != "Error" || !strings.Contains(st.Message, "monitor") || st.FinishedAt == 0 {
		t.Errorf("after the shim died: exit %d reason %q message %q finished %d, want Error and a lost monitor", st.ExitCode, st.Reason, st.Message, st.FinishedAt)
	}
	// Reported exited, it must not run on unsupervised beside the kubelet's next attempt.
	processGone(t, info.Pid, 3*time.Second)
	if err := pod.rt.RemoveContainer(ctx, id); err != nil {
		t.Fatalf("RemoveContainer after the shim died: %v", err)
	}
	if pod.daemon != nil {
		for _, ctrl := range []string{"memory", "pids"} {
			p := filepath.Join("/sys/fs/cgroup", ctrl, info.CgroupPath)
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("cgroup %s after remove: %v", p, err)
			}
		}
		if _, err := os.Stat(info.Dir); !os.IsNotExist(err) {
			t.Errorf("container dir after remove: %v", err)
		}
	}
	// The kubelet makes the next attempt in the same pod.
	next := pod.run(t, sleeper("orphan-next", framework.ImageBusybox, nil))
	if got := pod.sh(t, next, "echo ok"); got != "ok" {
		t.Errorf("exec in the pod's next container: %q", got)
	}
	if st := pod.status(t, next); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("next container %v", st.State)
	}
}
