package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestPidHolderKilledSandboxRecreated: when the PID namespace holder of a pod with
// shareProcessNamespace dies, the kubelet sees the sandbox NOTREADY and replaces it, as it
// does when a pause container dies: the pod runs again, its container restarted in a new
// PID namespace, instead of failing every create in the old sandbox.
func TestPidHolderKilledSandboxRecreated(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	pod := bbPod("holderkill", "exec sleep 3607")
	pod.Spec.ShareProcessNamespace = ptrTo(true)
	createPod(t, ns, pod)
	waitPod(t, ns, "holderkill", 2*time.Minute, func(p *corev1.Pod) bool {
		c := ctrStatusOf(p, "c")
		return c != nil && c.State.Running != nil
	})
	sleeper := findProcess(t, []byte("sleep\x003607\x00"), "")
	pidNS, err := os.Readlink("/proc/" + strconv.Itoa(sleeper) + "/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	// The holder is "peapod-shim pause", PID 1 of that namespace.
	holder := findProcess(t, []byte("pause"), pidNS)
	if err := syscall.Kill(holder, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, ns, "holderkill", 90*time.Second, func(p *corev1.Pod) bool {
		c := ctrStatusOf(p, "c")
		return c != nil && c.State.Running != nil && c.RestartCount > 0
	})
	again := findProcess(t, []byte("sleep\x003607\x00"), "")
	if newNS, err := os.Readlink("/proc/" + strconv.Itoa(again) + "/ns/pid"); err != nil || newNS == pidNS {
		t.Errorf("the restarted container's PID namespace %q (%v), the dead holder's %q: want a new one", newNS, err, pidNS)
	}
	t.Logf("pod running again after its holder was killed: %s", statusString(p))
}

// findProcess returns the pid of the one process of this node whose command line contains
// cmd (NUL-separated) and, if pidNS is not empty, whose PID namespace is pidNS.
func findProcess(t *testing.T, cmd []byte, pidNS string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var found []int
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil || !bytes.Contains(raw, cmd) {
				continue
			}
			if pidNS != "" {
				if ns, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "pid")); err != nil || ns != pidNS {
					continue
				}
			}
			found = append(found, pid)
		}
		if len(found) == 1 {
			return found[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes with command line %q (pid namespace %q): %v, want one", cmd, pidNS, found)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
