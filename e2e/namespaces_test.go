package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestShareProcessNamespace: with shareProcessNamespace, each container sees the other's
// processes, and signals reach across.
func TestShareProcessNamespace(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	pod := bbPod("sharedpid", "sleep 3601")
	pod.Spec.ShareProcessNamespace = ptrTo(true)
	pod.Spec.Containers = append(pod.Spec.Containers, bbContainer("other", "trap 'echo got-usr1; exit 0' USR1; sleep 3602 & wait"))
	createPod(t, ns, pod)
	waitPod(t, ns, "sharedpid", 2*time.Minute, func(p *corev1.Pod) bool {
		a, b := ctrStatusOf(p, "c"), ctrStatusOf(p, "other")
		return a != nil && b != nil && a.State.Running != nil && b.State.Running != nil
	})
	ps := mustExec(t, ns, "sharedpid", "c", "ps", "-o", "pid,args")
	if !strings.Contains(ps, "sleep 3601") || !strings.Contains(ps, "sleep 3602") {
		t.Fatalf("ps in c does not show both containers' processes:\n%s", ps)
	}
	// The other container's shell: the one whose child is sleep 3602.
	pid := strings.TrimSpace(mustExec(t, ns, "sharedpid", "c", "sh", "-c", `ps -o ppid,args | awk '$2 == "sleep" && $3 == "3602" {print $1}'`))
	if pid == "" {
		t.Fatalf("no shell of container other found from c:\n%s", ps)
	}
	mustExec(t, ns, "sharedpid", "c", "kill", "-USR1", pid)
	// The pod restarts the container at once (restartPolicy Always): wait for that and read
	// the previous attempt's log. (Reading the current log once the status says Terminated
	// races the restart: the kubelet may answer with the new attempt's empty log.)
	waitPod(t, ns, "sharedpid", 30*time.Second, func(p *corev1.Pod) bool {
		return ctrStatusOf(p, "other").RestartCount > 0
	})
	if logs := podLogs(t, ns, "sharedpid", "other", true); logs != "got-usr1\n" {
		t.Errorf("other container's log after c signalled it: %q", logs)
	}
}

// TestKubectlDebug: kubectl debug adds an ephemeral container to a running pod, targeting a
// container's process namespace: it runs beside the pod's containers and sees the target's
// processes.
func TestKubectlDebug(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	runningPod(t, ns, bbPod("debugme", "sleep 3603"))
	out, err := kubectl(t, "debug", "-n", ns, "debugme", "--image="+testImage, "--target=c", "-c", "dbg", "--profile=general",
		"--", "sh", "-c", "ps -o pid,args; sleep 3600")
	if err != nil {
		t.Fatalf("kubectl debug: %v: %s", err, out)
	}
	var p *corev1.Pod
	waitFor(t, time.Minute, func() bool {
		p = getPod(t, ns, "debugme")
		for _, s := range p.Status.EphemeralContainerStatuses {
			if s.Name == "dbg" && s.State.Running != nil {
				return true
			}
		}
		return false
	}, func() string { return "ephemeral container not running: " + statusString(p) })
	var logs string
	waitFor(t, 20*time.Second, func() bool {
		b, err := clusterClient.CoreV1().Pods(ns).GetLogs("debugme", &corev1.PodLogOptions{Container: "dbg"}).DoRaw(context.Background())
		logs = string(b)
		return err == nil && strings.Contains(logs, "sleep 3603")
	}, func() string { return "the debug container does not see its target's processes: " + logs })
	if got := mustExec(t, ns, "debugme", "dbg", "echo", "exec-in-ephemeral"); got != "exec-in-ephemeral\n" {
		t.Errorf("exec in the ephemeral container: %q", got)
	}
	if s := ctrStatusOf(getPod(t, ns, "debugme"), "c"); s.RestartCount != 0 || s.State.Running == nil {
		t.Errorf("target container disturbed by the debug container: %+v", s.State)
	}
}

// TestKubectlRunAttach: kubectl run -i --rm, the way users run a one-off command: kubectl
// attaches to the new container's stdin (stdinOnce), the command reads it to the end, and the
// pod is deleted when it exits.
func TestKubectlRunAttach(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := kubectlCommand(ctx, "run", "oneoff", "-n", ns, "--image="+testImage, "--restart=Never", "--rm", "-i",
		"--command", "--", "sh", "-c", "while read l; do echo got-$l; done; echo eof")
	cmd.Stdin = strings.NewReader("a\nb\n")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "got-a\ngot-b\neof\n") {
		t.Fatalf("kubectl run -i --rm: %v, %q", err, out)
	}
	waitFor(t, time.Minute, func() bool {
		_, err := clusterClient.CoreV1().Pods(ns).Get(context.Background(), "oneoff", metav1.GetOptions{})
		return err != nil
	}, func() string { return "kubectl run --rm left its pod" })
}
