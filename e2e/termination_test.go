package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestGracefulTermination: deleting a pod sends SIGTERM and waits up to
// terminationGracePeriodSeconds. A container that handles SIGTERM exits at once (and what it
// wrote on the way out is there); one that ignores it is killed once the grace period is over.
func TestGracefulTermination(t *testing.T) {
	t.Parallel()
	t.Run("handled", func(t *testing.T) {
		t.Parallel()
		ns := newNamespace(t)
		dir := hostDir(t)
		pod := bbPod("trapper", `trap 'echo got-sigterm > /host/out; exit 0' TERM; echo up; sleep 3600 & wait`)
		pod.Spec.TerminationGracePeriodSeconds = ptrTo(int64(30))
		pod.Spec.Volumes = []corev1.Volume{hostPathVolume("host", dir)}
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/host"}}
		createPod(t, ns, pod)
		waitLogged(t, ns, "trapper", "up\n")
		took, final := deletePodAndWatch(t, ns, "trapper", time.Minute)
		t.Logf("pod with a SIGTERM handler gone %v after its deletion", took.Round(10*time.Millisecond))
		if took > 10*time.Second {
			t.Errorf("took %v to delete a pod whose container exits on SIGTERM (grace period 30s)", took)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "out")); err != nil || string(b) != "got-sigterm\n" {
			t.Errorf("SIGTERM handler's output: %q, %v", b, err)
		}
		if final == nil {
			t.Fatal("no terminated status reported before the pod was removed")
		}
		if term := ctrStatusOf(final, "c").State.Terminated; term.ExitCode != 0 || term.Reason != "Completed" {
			t.Errorf("want exit 0 Completed; got %s", statusString(final))
		}
	})
	t.Run("ignored", func(t *testing.T) {
		t.Parallel()
		ns := newNamespace(t)
		const grace = 5 * time.Second
		pod := bbPod("ignorer", `trap '' TERM; echo up; while true; do sleep 1; done`)
		pod.Spec.TerminationGracePeriodSeconds = ptrTo(int64(grace / time.Second))
		createPod(t, ns, pod)
		waitLogged(t, ns, "ignorer", "up\n")
		took, final := deletePodAndWatch(t, ns, "ignorer", time.Minute)
		t.Logf("pod ignoring SIGTERM (grace period %v) gone %v after its deletion", grace, took.Round(10*time.Millisecond))
		if took < grace-500*time.Millisecond || took > grace+5*time.Second {
			t.Errorf("pod ignoring SIGTERM was removed %v after its deletion, want about its grace period %v", took, grace)
		}
		if final == nil {
			t.Fatal("no terminated status reported before the pod was removed")
		}
		term := ctrStatusOf(final, "c").State.Terminated
		if term.ExitCode != 137 || term.Reason != "Error" {
			t.Errorf("want exit 137 (SIGKILL) Error; got %s", statusString(final))
		}
		if ran := term.FinishedAt.Sub(term.StartedAt.Time); ran < grace {
			t.Errorf("container ran only %v in all", ran)
		}
	})
}

// TestPreStopHookCutOff: a preStop hook that hangs is cut off when the grace period ends; the
// container is then killed and the pod goes without waiting for the hook.
func TestPreStopHookCutOff(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	dir := hostDir(t)
	const grace = 4 * time.Second
	pod := bbPod("hangstop", `trap 'echo term >> /host/log; exit 0' TERM; echo up; sleep 3600 & wait`)
	pod.Spec.TerminationGracePeriodSeconds = ptrTo(int64(grace / time.Second))
	pod.Spec.Volumes = []corev1.Volume{hostPathVolume("host", dir)}
	c := &pod.Spec.Containers[0]
	c.VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/host"}}
	c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
		Command: []string{"sh", "-c", "echo prestop-begin >> /host/log; sleep 60; echo prestop-end >> /host/log"},
	}}}
	createPod(t, ns, pod)
	waitLogged(t, ns, "hangstop", "up\n")
	took, _ := deletePodAndWatch(t, ns, "hangstop", time.Minute)
	t.Logf("pod with a hanging preStop hook (grace period %v) gone %v after its deletion", grace, took.Round(10*time.Millisecond))
	if took < grace-500*time.Millisecond || took > grace+8*time.Second {
		t.Errorf("pod with a hanging preStop hook removed %v after its deletion, want about its grace period %v", took, grace)
	}
	b, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	// The kubelet gives the stop signal a minimum of 2 s after the hook has used up the grace
	// period, so the TERM handler may or may not have run; the hook must not have finished.
	if got := string(b); !strings.HasPrefix(got, "prestop-begin\n") || strings.Contains(got, "prestop-end") {
		t.Errorf("host log = %q: want the hook started and never finished", got)
	}
}

// TestActiveDeadline: a pod past its activeDeadlineSeconds is failed (DeadlineExceeded) and its
// containers are stopped.
func TestActiveDeadline(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	pod := bbPod("deadline", "trap 'exit 0' TERM; sleep 3600 & wait")
	pod.Spec.ActiveDeadlineSeconds = ptrTo(int64(3))
	createPod(t, ns, pod)
	p := waitPod(t, ns, "deadline", time.Minute, func(p *corev1.Pod) bool {
		s := ctrStatusOf(p, "c")
		return p.Status.Phase == corev1.PodFailed && s != nil && s.State.Terminated != nil
	})
	if p.Status.Reason != "DeadlineExceeded" {
		t.Errorf("reason of a pod past its deadline = %q, want DeadlineExceeded", p.Status.Reason)
	}
	term := ctrStatusOf(p, "c").State.Terminated
	if ran := term.FinishedAt.Sub(p.Status.StartTime.Time); ran < 3*time.Second || ran > 20*time.Second {
		t.Errorf("container stopped %v after the pod started, want soon after its 3 s deadline", ran)
	}
}

// waitLogged waits until container c of the pod has logged exactly want.
func waitLogged(t *testing.T, ns, pod, want string) {
	t.Helper()
	waitPod(t, ns, pod, 2*time.Minute, func(p *corev1.Pod) bool {
		s := ctrStatusOf(p, "c")
		return s != nil && s.State.Running != nil
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := podLogs(t, ns, pod, "c", false)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs of %s = %q, want %q", pod, got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
