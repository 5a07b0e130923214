package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
)

// needCluster skips t when TestMain has no cluster (see skipReason).
func needCluster(t testing.TB) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// newNamespace creates a namespace of its own for t (named after the test), waits until
// pods can be created in it (its default service account exists), and deletes it at cleanup,
// waiting until it is gone. Its pods are deleted with a 1 s grace period first, so that
// cleanup does not wait out a container that ignores SIGTERM.
func newNamespace(t *testing.T) string {
	t.Helper()
	needCluster(t)
	ctx := context.Background()
	prefix := strings.ToLower(t.Name())
	prefix = strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		return '-'
	}, prefix)
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	ns, err := clusterClient.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: strings.Trim(prefix, "-") + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	name := ns.Name
	t.Cleanup(func() { deleteNamespace(t, name) })
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := clusterClient.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("namespace %s: no default service account after 1m", name)
	}
	return name
}

func deleteNamespace(t *testing.T, name string) {
	ctx := context.Background()
	grace := int64(1)
	if err := clusterClient.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &grace}, metav1.ListOptions{}); err != nil {
		t.Errorf("delete the pods of namespace %s: %v", name, err)
	}
	if err := clusterClient.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete namespace %s: %v", name, err)
		return
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := clusterClient.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		pods, _ := clusterClient.CoreV1().Pods(name).List(ctx, metav1.ListOptions{})
		var left []string
		if pods != nil {
			for _, p := range pods.Items {
				left = append(left, p.Name+" ("+string(p.Status.Phase)+")")
			}
		}
		t.Errorf("namespace %s not gone after 3m; pods left: %v", name, left)
	}
}

// createPod creates pod in namespace ns and returns it as the API stored it.
func createPod(t *testing.T, ns string, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	needCluster(t)
	pod.Namespace = ns
	out, err := clusterClient.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, pod.Name, err)
	}
	return out
}

// waitPod polls the pod until cond holds and returns it; after timeout it fails t with the
// pod's status and events.
func waitPod(t *testing.T, ns, name string, timeout time.Duration, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	needCluster(t)
	ctx := context.Background()
	var last *corev1.Pod
	var lastErr error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := clusterClient.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			lastErr = err
			return false, nil
		}
		last = p
		return cond(p), nil
	})
	if err != nil {
		if last == nil {
			t.Fatalf("pod %s/%s: condition not met after %s: %v", ns, name, timeout, lastErr)
		}
		t.Fatalf("pod %s/%s: condition not met after %s\n%s", ns, name, timeout, describePod(last))
	}
	return last
}

// waitPodReady waits (2 minutes at most) for the pod's Ready condition; a pod that ends
// (Succeeded or Failed) fails t at once.
func waitPodReady(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var ended *corev1.Pod
	p := waitPod(t, ns, name, 2*time.Minute, func(p *corev1.Pod) bool {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			ended = p
			return true
		}
		return podReady(p)
	})
	if ended != nil {
		t.Fatalf("pod %s/%s ended (%s) instead of becoming Ready\n%s", ns, name, ended.Status.Phase, describePod(ended))
	}
	return p
}

// podReady reports whether the pod's Ready condition is true.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// describePod is the pod's phase, conditions, container states and events, for failures.
func describePod(p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s, node %q, ip %q, reason %q, message %q\n", p.Status.Phase, p.Spec.NodeName, p.Status.PodIP, p.Status.Reason, p.Status.Message)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, "  condition %s=%s %s %s\n", c.Type, c.Status, c.Reason, c.Message)
	}
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, c := range list {
			fmt.Fprintf(&b, "  container %s: ready=%v restarts=%d state=%+v last=%+v\n", c.Name, c.Ready, c.RestartCount, c.State, c.LastTerminationState)
		}
	}
	evs, err := clusterClient.CoreV1().Events(p.Namespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.name", p.Name).String(),
	})
	if err == nil {
		for _, e := range evs.Items {
			fmt.Fprintf(&b, "  event %s %s: %s\n", e.Type, e.Reason, e.Message)
		}
	}
	return b.String()
}

// kubectl runs kubectl with the admin kubeconfig and returns its stdout; the error carries
// stderr.
func kubectl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, kubectlPath, append([]string{"--kubeconfig", kubeconfigPath}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// execInPod runs cmd in a container of a pod through the apiserver and the kubelet (as
// kubectl exec does: WebSocket, falling back to SPDY) and returns its output.
func execInPod(t *testing.T, ns, pod, container string, cmd ...string) (stdout, stderr string, err error) {
	t.Helper()
	needCluster(t)
	req := clusterClient.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container,
			Command:   cmd,
			Stdout:    true,
			Stderr:    true,
		}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(clusterConfig, "GET", req.URL().String())
	if err != nil {
		return "", "", fmt.Errorf("websocket executor: %w", err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(clusterConfig, "POST", req.URL())
	if err != nil {
		return "", "", fmt.Errorf("spdy executor: %w", err)
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, httpstream.IsUpgradeFailure)
	if err != nil {
		return "", "", fmt.Errorf("executor: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var o, e bytes.Buffer
	err = exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &o, Stderr: &e})
	if err != nil {
		err = fmt.Errorf("exec %v in %s/%s[%s]: %w", cmd, ns, pod, container, err)
	}
	return o.String(), e.String(), err
}
