package critest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// podSocketOverhead is what a pod's longest socket path adds to the state directory:
// "/pods/" + a 64-hex pod id + "/stream.sock".
const podSocketOverhead = len("/pods/") + 64 + len("/stream.sock")

// stateDirOfLength makes a directory whose path is n bytes long and removes it in cleanup.
func stateDirOfLength(t *testing.T, n int) string {
	t.Helper()
	base, err := os.MkdirTemp("/tmp", "pl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	if n < len(base)+2 {
		t.Fatalf("%s is too long already for a %d-byte state dir", base, n)
	}
	return base + "/" + strings.Repeat("s", n-len(base)-1)
}

// TestLongStateDirRefused: a state directory so long that a pod's shim socket path would
// pass the kernel's 107 bytes stops the daemon at start-up, with a non-zero exit and a
// message naming the limit and the offending path; one byte shorter works, pods and all.
func TestLongStateDirRefused(t *testing.T) {
	framework.RequirePeapod(t)
	limit := 107 - podSocketOverhead

	state := stateDirOfLength(t, limit+1)
	d := framework.NewTestDaemon(t, framework.WithState(state), framework.WithStartTimeout(15*time.Second))
	start := time.Now()
	err := d.Start(t.Context())
	var ee *framework.ExitedError
	if !errors.As(err, &ee) {
		if d.Running() {
			_ = d.Kill()
		}
		t.Fatalf("daemon with a %d-byte state dir: %v; want it to exit non-zero", len(state), err)
	}
	if ee.ExitCode == 0 {
		t.Errorf("exit status 0; want non-zero")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v to give up; want at once", time.Since(start))
	}
	for _, want := range []string{"107", state + "/pods/", "stream.sock"} {
		if !strings.Contains(ee.Output, want) {
			t.Errorf("output does not name %q:\n%s", want, ee.Output)
		}
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("the refused daemon made its state dir: %v", err)
	}

	// At the limit, every socket of a pod fits: the pod runs a container and serves an exec.
	state = stateDirOfLength(t, limit)
	d = framework.StartDaemon(t, framework.WithState(state))
	c, podID, podCfg := nodeNetPod(t, d, "state-limit")
	ctx := framework.Context(t)
	id, err := c.Runtime.CreateContainer(ctx, podID, sleeper("fits", framework.ImageBusybox, nil), podCfg)
	if err != nil {
		t.Fatalf("CreateContainer with a %d-byte state dir: %v", len(state), err)
	}
	if err := c.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	if out, _, err := c.Runtime.ExecSync(ctx, id, []string{"echo", "ok"}, 10*time.Second); err != nil || string(out) != "ok\n" {
		t.Errorf("ExecSync: %q, %v", out, err)
	}
}

// TestRemovePodWithUnreachableShim: a pod whose shim cannot be reached at all (here: it was
// killed and its socket path now fails to dial with ELOOP, as a too long path fails with
// EINVAL) is still removed, with its containers, mounts and cgroups.
func TestRemovePodWithUnreachableShim(t *testing.T) {
	framework.RequirePeapod(t)
	d := framework.StartDaemon(t)
	pod := ownPod(t, d, "unreachable-shim")
	ctx := framework.Context(t)
	id := pod.run(t, sleeper("lost", framework.ImageBusybox, nil))
	info := pod.ctrInfo(t, id)
	cgroupParent := pod.info(t).CgroupParent
	shim := shimPid(t, pod.id)
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	processGone(t, shim, 5*time.Second)
	podDir := filepath.Join(d.State(), "pods", pod.id)
	for _, name := range []string{"call.sock", "stream.sock"} {
		p := filepath.Join(podDir, name)
		_ = os.Remove(p)
		if err := os.Symlink(p, p); err != nil {
			t.Fatal(err)
		}
	}
	// How soon the daemon reports the exit is not what this test is about: on a loaded 2-core
	// VM with other test packages beside it, it took more than 5s.
	pod.waitExited(t, id, 20*time.Second)

	_ = pod.rt.StopPodSandbox(ctx, pod.id)
	if err := pod.rt.RemovePodSandbox(ctx, pod.id); err != nil {
		t.Fatalf("RemovePodSandbox of a pod whose shim cannot be reached: %v", err)
	}
	if _, err := pod.rt.PodSandboxStatus(ctx, pod.id, false); err == nil {
		t.Errorf("the pod is still listed")
	}
	// The namespace pins go with the pod's network, which may be torn down after the answer.
	var m []string
	var err error
	deadline := time.Now().Add(networkTeardownWait)
	for {
		m, err = framework.MountsUnder(d.State())
		if err != nil || len(m) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || len(m) > 0 {
		t.Errorf("mounts left under %s: %v %v", d.State(), m, err)
	}
	if m, err := framework.MountsUnder(d.Root()); err != nil || len(m) > 0 {
		t.Errorf("mounts left under %s: %v %v", d.Root(), m, err)
	}
	for _, ctrl := range []string{"memory", "pids", "cpu"} {
		for _, cg := range []string{info.CgroupPath, cgroupParent} {
			p := filepath.Join("/sys/fs/cgroup", ctrl, cg)
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("cgroup %s left: %v", p, err)
			}
		}
	}
	if _, err := os.Stat(podDir); !os.IsNotExist(err) {
		t.Errorf("pod dir %s left: %v", podDir, err)
	}
}
