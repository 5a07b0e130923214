package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// staticPodDir is the kubelet's manifest directory (hack/cluster.sh).
const staticPodDir = "/var/lib/peapod-cluster/manifests"

// staticPodManifest is a two-container static pod in namespace ns.
func staticPodManifest(name, ns string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: %s
    command: ["sh", "-c", "echo static > /tmp/mark && exec sleep 3600"]
  - name: b
    image: %s
    command: ["sleep", "3600"]
`, name, ns, testImage, testImage)
}

// TestStaticPod: a manifest dropped into the kubelet's manifest directory runs on peapod
// without the apiserver's help, and its mirror pod shows up through the API, Running, with
// exec through the apiserver working; removing the manifest removes the pod.
func TestStaticPod(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	name := "static-" + ns[len(ns)-5:]
	file := filepath.Join(staticPodDir, ns+".yaml")
	// Written aside (the kubelet skips dot files) and renamed into place, so that the kubelet
	// never reads half a file.
	tmp := filepath.Join(staticPodDir, "."+ns+".yaml.tmp")
	if err := os.WriteFile(tmp, []byte(staticPodManifest(name, ns)), 0o644); err != nil {
		t.Fatalf("write manifest: %v", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	mirror := name + "-" + nodeName
	t.Cleanup(func() {
		_ = os.Remove(file)
		// The kubelet stops the pod and deletes its mirror.
		err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := clusterClient.CoreV1().Pods(ns).Get(ctx, mirror, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			t.Errorf("mirror pod %s still there 2m after its manifest was removed", mirror)
		}
	})
	p := waitPod(t, ns, mirror, 2*time.Minute, func(p *corev1.Pod) bool {
		running := 0
		for _, c := range p.Status.ContainerStatuses {
			if c.State.Running != nil {
				running++
			}
		}
		return running == 2
	})
	if _, ok := p.Annotations["kubernetes.io/config.mirror"]; !ok {
		t.Errorf("pod %s has no kubernetes.io/config.mirror annotation: not a mirror pod (annotations %v)", mirror, p.Annotations)
	}
	if src := p.Annotations["kubernetes.io/config.source"]; src != "file" {
		t.Errorf("config.source %q, want file", src)
	}
	if got := strings.TrimSpace(mustExec(t, ns, mirror, "a", "cat", "/tmp/mark")); got != "static" {
		t.Errorf("/tmp/mark in the static pod = %q", got)
	}
}
