package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestRestartPolicyNever: a container is never restarted; its exit code and reason reach the
// pod's status, and the phase follows them.
func TestRestartPolicyNever(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		code   int32
		reason string
		phase  corev1.PodPhase
		// script replaces "echo bye; exit <code>".
		script   string
		memLimit string
	}{
		{name: "exit0", code: 0, reason: "Completed", phase: corev1.PodSucceeded},
		{name: "exit3", code: 3, reason: "Error", phase: corev1.PodFailed},
		// tail keeps a line that never ends in memory, past the 32 MiB limit.
		{name: "oom", code: 137, reason: "OOMKilled", phase: corev1.PodFailed, script: "echo bye; tail /dev/zero", memLimit: "32Mi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			script := tc.script
			if script == "" {
				script = "echo bye; exit " + strconv.Itoa(int(tc.code))
			}
			pod := bbPod("never", script)
			pod.Spec.RestartPolicy = corev1.RestartPolicyNever
			if tc.memLimit != "" {
				pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(tc.memLimit)}
			}
			createPod(t, ns, pod)
			p := waitPod(t, ns, "never", 2*time.Minute, func(p *corev1.Pod) bool {
				return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
			})
			s := ctrStatusOf(p, "c")
			if p.Status.Phase != tc.phase || s == nil || s.State.Terminated == nil {
				t.Fatalf("want phase %s with c terminated; got %s", tc.phase, statusString(p))
			}
			term := s.State.Terminated
			if term.ExitCode != tc.code || term.Reason != tc.reason || s.RestartCount != 0 {
				t.Fatalf("want exit %d reason %s restarts 0; got %s", tc.code, tc.reason, statusString(p))
			}
			if term.StartedAt.IsZero() || term.FinishedAt.Before(&term.StartedAt) {
				t.Errorf("terminated times: started %v finished %v", term.StartedAt, term.FinishedAt)
			}
			if got := podLogs(t, ns, "never", "c", false); got != "bye\n" {
				t.Errorf("logs of the exited container = %q, want %q", got, "bye\n")
			}
		})
	}
}

// TestRestartPolicyOnFailure: a failed container is restarted in the same pod (the emptyDir
// outlives it), a successful one is not, and the pod then succeeds.
func TestRestartPolicyOnFailure(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	pod := bbPod("onfailure", `if [ -f /data/ran ]; then echo second; exit 0; fi; touch /data/ran; echo first; exit 2`)
	pod.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	pod.Spec.Volumes = []corev1.Volume{emptyDirVolume("data")}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	createPod(t, ns, pod)
	p := waitPod(t, ns, "onfailure", 2*time.Minute, func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	s := ctrStatusOf(p, "c")
	if p.Status.Phase != corev1.PodSucceeded || s == nil || s.State.Terminated == nil {
		t.Fatalf("want Succeeded after one restart; got %s", statusString(p))
	}
	if s.RestartCount != 1 || s.State.Terminated.ExitCode != 0 || s.State.Terminated.Reason != "Completed" {
		t.Fatalf("want restarts 1, exit 0 Completed; got %s", statusString(p))
	}
	last := s.LastTerminationState.Terminated
	if last == nil || last.ExitCode != 2 || last.Reason != "Error" {
		t.Fatalf("want last state terminated exit 2 Error; got %s", statusString(p))
	}
	if got := podLogs(t, ns, "onfailure", "c", false); got != "second\n" {
		t.Errorf("logs = %q, want %q", got, "second\n")
	}
	// A succeeded pod stays succeeded: the kubelet does not start the container again.
	time.Sleep(3 * time.Second)
	p = getPod(t, ns, "onfailure")
	if s := ctrStatusOf(p, "c"); s.RestartCount != 1 || p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("after success: %s", statusString(p))
	}
}

// TestRestartPolicyAlwaysBackOff: a container that keeps failing is restarted with a growing
// back-off (CrashLoopBackOff), its restart count rises and its last state keeps the exit code.
// The kubelet shows the container as waiting in CrashLoopBackOff only when it syncs the pod
// during the back-off (v1.36 sleeps through it), so the back-off is measured from the gap
// between one attempt's end and the next one's start.
func TestRestartPolicyAlwaysBackOff(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	createPod(t, ns, bbPod("crashloop", "echo crashing; exit 1"))
	gaps := map[int32]time.Duration{} // restart count -> time between the attempts
	lastCount := int32(-1)
	p := waitPod(t, ns, "crashloop", 4*time.Minute, func(p *corev1.Pod) bool {
		s := ctrStatusOf(p, "c")
		if s == nil {
			return false
		}
		if s.RestartCount < lastCount {
			t.Errorf("restart count went down: %d after %d", s.RestartCount, lastCount)
		}
		lastCount = s.RestartCount
		var started time.Time
		switch {
		case s.State.Running != nil:
			started = s.State.Running.StartedAt.Time
		case s.State.Terminated != nil:
			started = s.State.Terminated.StartedAt.Time
		}
		if last := s.LastTerminationState.Terminated; last != nil && !started.IsZero() {
			if _, ok := gaps[s.RestartCount]; !ok {
				gaps[s.RestartCount] = started.Sub(last.FinishedAt.Time)
			}
		}
		return len(backOffGaps(gaps)) >= 2
	})
	t.Logf("time between attempts by restart count (1 s resolution): %v", gaps)
	// Default kubelet back-off: none before the first restart, then 10 s, 20 s, 40 s... Each
	// gap is the back-off plus however long the kubelet takes to sync the pod once it has run
	// out (seen: 10 s gave 15 s, then 20 s gave 21 s), so gaps are not compared with each
	// other. The poll may miss an attempt on a loaded node, so the first two restarts it saw
	// from the second on are checked: at least 10 s, then at least 20 s (a back-off that did
	// not grow would give 10 s plus the sync delay).
	if g := backOffGaps(gaps); len(g) < 2 || g[0] < 9*time.Second || g[1] < 19*time.Second {
		t.Errorf("back-off did not grow from about 10 s to about 20 s: %v", gaps)
	}
	s := ctrStatusOf(p, "c")
	last := s.LastTerminationState.Terminated
	if last == nil || last.ExitCode != 1 || last.Reason != "Error" {
		t.Fatalf("want last state terminated exit 1 Error; got %s", statusString(p))
	}
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("phase of a crash-looping restartPolicy Always pod = %s, want Running", p.Status.Phase)
	}
	evs, err := clusterClient.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: "involvedObject.name=crashloop,reason=BackOff",
	})
	if err != nil || len(evs.Items) == 0 {
		t.Errorf("no BackOff event from the kubelet (%v)", err)
	} else if !strings.Contains(evs.Items[0].Message, "Back-off restarting failed container") {
		t.Errorf("BackOff event: %q", evs.Items[0].Message)
	}
}

// TestLifecycleHooks: postStart runs in the container (the main process sees the file it
// wrote) and preStop runs before the stop signal (its write lands before the SIGTERM handler's).
func TestLifecycleHooks(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	dir := hostDir(t)
	pod := bbPod("hooks", `trap 'echo term >> /host/log; exit 0' TERM
while [ ! -f /tmp/poststart ]; do sleep 0.1; done
echo "saw $(cat /tmp/poststart)"; echo main-saw-poststart >> /host/log
sleep 3600 & wait`)
	pod.Spec.TerminationGracePeriodSeconds = ptrTo(int64(20))
	pod.Spec.Volumes = []corev1.Volume{hostPathVolume("host", dir)}
	c := &pod.Spec.Containers[0]
	c.VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/host"}}
	c.Lifecycle = &corev1.Lifecycle{
		PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo hello-from-poststart > /tmp/poststart"}}},
		PreStop:   &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo prestop >> /host/log"}}},
	}
	createPod(t, ns, pod)
	waitPod(t, ns, "hooks", 2*time.Minute, func(p *corev1.Pod) bool {
		s := ctrStatusOf(p, "c")
		return s != nil && s.State.Running != nil
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(podLogs(t, ns, "hooks", "c", false), "saw hello-from-poststart") {
		if time.Now().After(deadline) {
			t.Fatalf("the container never saw postStart's file; logs %q", podLogs(t, ns, "hooks", "c", false))
		}
		time.Sleep(250 * time.Millisecond)
	}
	took, final := deletePodAndWatch(t, ns, "hooks", time.Minute)
	b, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "main-saw-poststart\nprestop\nterm\n"; got != want {
		t.Fatalf("host log = %q, want %q (preStop before SIGTERM)", got, want)
	}
	if took > 15*time.Second {
		t.Errorf("a pod whose container exits on SIGTERM took %v to go (grace period 20s)", took)
	}
	if final != nil {
		if term := ctrStatusOf(final, "c").State.Terminated; term.ExitCode != 0 {
			t.Errorf("exit code after the TERM trap = %d, want 0", term.ExitCode)
		}
	}
}

// TestPostStartHookFailure: a failing postStart hook gets the container killed (and, with
// restartPolicy Never, not started again), and the kubelet reports FailedPostStartHook.
func TestPostStartHookFailure(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	pod := bbPod("badhook", "sleep 3600")
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	pod.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{
		PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo hook-failed >&2; exit 5"}}},
	}
	createPod(t, ns, pod)
	p := waitPod(t, ns, "badhook", 2*time.Minute, func(p *corev1.Pod) bool {
		s := ctrStatusOf(p, "c")
		return s != nil && s.State.Terminated != nil
	})
	if s := ctrStatusOf(p, "c"); s.RestartCount != 0 || s.State.Terminated.ExitCode == 0 {
		t.Errorf("want the container killed once, not restarted: %s", statusString(p))
	}
	var evs *corev1.EventList
	waitFor(t, 30*time.Second, func() bool {
		var err error
		evs, err = clusterClient.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.name=badhook,reason=FailedPostStartHook",
		})
		return err == nil && len(evs.Items) > 0
	}, func() string { return "no FailedPostStartHook event" })
	// The kubelet keeps the hook's output out of the event (it may hold secrets).
	if msg := evs.Items[0].Message; msg != "PostStartHook failed" {
		t.Errorf("FailedPostStartHook event %q", msg)
	}
}

// TestInitContainers: init containers run one after the other, each to completion, before the
// app container, and a failing one fails a restartPolicy Never pod without starting the app.
func TestInitContainers(t *testing.T) {
	t.Parallel()
	t.Run("inorder", func(t *testing.T) {
		t.Parallel()
		ns := newNamespace(t)
		pod := bbPod("init", "cat /data/order; sleep 3600")
		pod.Spec.Volumes = []corev1.Volume{emptyDirVolume("data")}
		mount := []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		pod.Spec.Containers[0].VolumeMounts = mount
		pod.Spec.InitContainers = []corev1.Container{
			bbContainer("init1", "sleep 1; echo init1 >> /data/order"),
			bbContainer("init2", "test -f /data/order && echo init2 >> /data/order"),
		}
		for i := range pod.Spec.InitContainers {
			pod.Spec.InitContainers[i].VolumeMounts = mount
		}
		createPod(t, ns, pod)
		p := waitPodReady(t, ns, "init")
		var prevEnd time.Time
		for _, name := range []string{"init1", "init2"} {
			s := ctrStatusOf(p, name)
			if s == nil || s.State.Terminated == nil || s.State.Terminated.ExitCode != 0 || s.State.Terminated.Reason != "Completed" {
				t.Fatalf("%s: want terminated 0 Completed; got %s", name, statusString(p))
			}
			if s.State.Terminated.StartedAt.Time.Before(prevEnd) {
				t.Errorf("%s started at %v, before the previous init container finished at %v", name, s.State.Terminated.StartedAt, prevEnd)
			}
			prevEnd = s.State.Terminated.FinishedAt.Time
		}
		app := ctrStatusOf(p, "c")
		if app.State.Running == nil || app.State.Running.StartedAt.Time.Before(prevEnd) {
			t.Errorf("app container started before init2 finished (%v): %s", prevEnd, statusString(p))
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := podLogs(t, ns, "init", "c", false)
			if got == "init1\ninit2\n" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("app's view of the init containers' writes = %q, want %q", got, "init1\ninit2\n")
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
	t.Run("failing", func(t *testing.T) {
		t.Parallel()
		ns := newNamespace(t)
		pod := bbPod("initfail", "echo app-ran; sleep 3600")
		pod.Spec.RestartPolicy = corev1.RestartPolicyNever
		pod.Spec.InitContainers = []corev1.Container{bbContainer("init1", "exit 4")}
		createPod(t, ns, pod)
		p := waitPod(t, ns, "initfail", 2*time.Minute, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		s := ctrStatusOf(p, "init1")
		if s == nil || s.State.Terminated == nil || s.State.Terminated.ExitCode != 4 {
			t.Fatalf("init1: want terminated with exit 4; got %s", statusString(p))
		}
		// The kubelet reports the never-started app container as waiting (PodInitializing).
		if app := ctrStatusOf(p, "c"); app == nil || app.State.Running != nil || app.RestartCount != 0 ||
			app.State.Terminated != nil && !app.State.Terminated.StartedAt.IsZero() {
			t.Errorf("app container ran after a failed init container: %s", statusString(p))
		}
	})
}

// TestSidecar: a restartable init container (restartPolicy Always) is started before the app
// container, keeps running beside it (they share localhost), and is stopped once the app
// container of a restartPolicy Never pod completes.
func TestSidecar(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	pod := bbPod("sidecar", `wget -q -O - http://127.0.0.1:8080/index.html; sleep 4; echo app-done`)
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	side := bbContainer("side", "mkdir -p /www; echo from-sidecar > /www/index.html; exec httpd -f -p 8080 -h /www")
	side.RestartPolicy = ptrTo(corev1.ContainerRestartPolicyAlways)
	// The app container is started only once the sidecar's startup probe succeeds, so the
	// app's first request must reach it.
	side.StartupProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1, FailureThreshold: 30,
	}
	pod.Spec.InitContainers = []corev1.Container{side}
	createPod(t, ns, pod)
	p := waitPod(t, ns, "sidecar", 2*time.Minute, func(p *corev1.Pod) bool {
		s, app := ctrStatusOf(p, "side"), ctrStatusOf(p, "c")
		return s != nil && app != nil && s.State.Running != nil && app.State.Running != nil
	})
	if s := ctrStatusOf(p, "side"); s.Started == nil || !*s.Started {
		t.Errorf("sidecar running beside the app but not started: %s", statusString(p))
	}
	p = waitPod(t, ns, "sidecar", time.Minute, func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	})
	if got := podLogs(t, ns, "sidecar", "c", false); got != "from-sidecar\napp-done\n" {
		t.Errorf("app logs = %q, want the sidecar's page then app-done", got)
	}
	if p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("pod phase after the app completed = %s, want Succeeded: %s", p.Status.Phase, statusString(p))
	}
	if s := ctrStatusOf(p, "side"); s.State.Terminated == nil {
		t.Errorf("sidecar not stopped after the app completed: %s", statusString(p))
	}
}

// backOffGaps are the gaps between attempts, in restart-count order, from the second restart
// on (the first restart comes without a back-off).
func backOffGaps(gaps map[int32]time.Duration) []time.Duration {
	counts := make([]int32, 0, len(gaps))
	for c := range gaps {
		if c >= 2 {
			counts = append(counts, c)
		}
	}
	slices.Sort(counts)
	out := make([]time.Duration, 0, len(counts))
	for _, c := range counts {
		out = append(out, gaps[c])
	}
	return out
}
