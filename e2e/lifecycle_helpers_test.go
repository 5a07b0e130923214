package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
)

// bbPod is a one-container pod (container "c") running script under the test image's sh, with
// a short grace period so that deleting it does not hold a test up.
func bbPod(name, script string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptrTo(int64(2)),
			Containers:                    []corev1.Container{bbContainer("c", script)},
		},
	}
}

func bbContainer(name, script string) corev1.Container {
	return corev1.Container{Name: name, Image: testImage, Command: []string{"sh", "-c", script}}
}

func ptrTo[T any](v T) *T { return &v }

// ctrStatusOf returns the status of the (app, init or ephemeral) container called name, or nil.
func ctrStatusOf(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// statusString renders the container states for failure messages.
func statusString(p *corev1.Pod) string {
	if p == nil {
		return "<no pod>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s", p.Status.Phase)
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, s := range list {
			fmt.Fprintf(&b, " [%s restarts=%d ready=%v state=%s last=%s]", s.Name, s.RestartCount, s.Ready, stateString(s.State), stateString(s.LastTerminationState))
		}
	}
	return b.String()
}

func stateString(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Waiting != nil:
		return fmt.Sprintf("waiting(%s: %s)", s.Waiting.Reason, s.Waiting.Message)
	case s.Terminated != nil:
		return fmt.Sprintf("terminated(%s, %d)", s.Terminated.Reason, s.Terminated.ExitCode)
	}
	return "-"
}

// kubectlCommand is a kubectl process against the cluster, for the commands that stream
// (logs -f, attach, exec -it, port-forward); it is killed when ctx ends.
func kubectlCommand(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, kubectlPath, append([]string{"--kubeconfig", kubeconfigPath}, args...)...)
}

// hostDir is a directory on the node (this machine) for a hostPath volume, which outlives the
// pod so that a test can read what a container wrote while it was being stopped.
func hostDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "peapod-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

func hostPathVolume(name, dir string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir}}}
}

func emptyDirVolume(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
}

// deletePodAndWatch deletes the pod and watches it until it is gone from the API. It returns
// the time from the delete call to the pod's removal and the last status seen with every
// container terminated (nil if the kubelet removed the pod without reporting one).
func deletePodAndWatch(t *testing.T, ns, name string, timeout time.Duration) (time.Duration, *corev1.Pod) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pods := clusterClient.CoreV1().Pods(ns)
	cur, err := pods.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod %s: %v", name, err)
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(), ResourceVersion: cur.ResourceVersion})
	if err != nil {
		t.Fatalf("watch pod %s: %v", name, err)
	}
	defer w.Stop()
	start := time.Now()
	if err := pods.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete pod %s: %v", name, err)
	}
	var final *corev1.Pod
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Deleted:
			return time.Since(start), final
		case watch.Modified:
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			all := len(p.Status.ContainerStatuses) > 0
			for _, s := range p.Status.ContainerStatuses {
				if s.State.Terminated == nil {
					all = false
				}
			}
			if all {
				final = p.DeepCopy()
			}
		case watch.Error:
			t.Fatalf("watch pod %s: %v", name, apierrors.FromObject(ev.Object))
		}
	}
	t.Fatalf("pod %s not removed within %v of its deletion", name, timeout)
	return 0, nil
}

// podLogs returns the logs of container c (of its previous attempt if previous).
func podLogs(t *testing.T, ns, pod, c string, previous bool) string {
	t.Helper()
	b, err := clusterClient.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: c, Previous: previous}).DoRaw(context.Background())
	if err != nil {
		t.Fatalf("logs of %s/%s/%s (previous=%v): %v", ns, pod, c, previous, err)
	}
	return string(b)
}

// getPod reads the pod as the API has it now.
func getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := clusterClient.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod %s/%s: %v", ns, name, err)
	}
	return p
}
