package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Where hack/cluster.sh keeps its tools and peapod's socket.
const (
	clusterTool     = "/run/peapod-cluster/bin/clustertool"
	clusterEndpoint = "unix:///run/peapod-cluster/peapod.sock"
)

// gcImage is a test image no pod of this suite uses, with an image ID of its own (the
// busybox images under other names share one config, so one ID, with testImage).
const gcImage = "gcr.io/k8s-staging-cri-tools/test-image-tags:1"

// eagerImageGC makes the kubelet collect every unused image within seconds of its start:
// an image filesystem less than 99% free is "under pressure" for the eviction manager, whose
// node-level reclaim (every 10 s) runs the image garbage collector's DeleteUnusedImages, and
// an image detected a second ago is old enough (0 would mean the default, 2 minutes). The
// periodic collection runs only every 5 minutes, and its first run, at the kubelet's start,
// finds the filesystem stats not ready yet. The pressure would also evict pods: the test runs
// only when none but its own run on the node.
const eagerImageGC = `imageMinimumGCAge: 1s
evictionPressureTransitionPeriod: 0s
evictionHard:
  imagefs.available: 99%`

// TestImageGarbageCollection: the kubelet's image garbage collector, finding the image
// filesystem (peapod's ImageFsInfo) short of space, deletes an image no container uses
// through peapod's RemoveImage, and the image is gone from the node.
//
// It restarts the kubelet twice (with an eager GC policy, then as it was), so it does not run
// in parallel: Go runs the top-level tests that do not call t.Parallel one after the other,
// before the parallel ones.
func TestImageGarbageCollection(t *testing.T) {
	needCluster(t)
	if _, err := os.Stat(clusterTool); err != nil || kubeconfigPath != defaultAdminKubeconfig {
		t.Skipf("restarts the kubelet of hack/cluster.sh's cluster, which is not the one in use (%s): %v", kubeconfigPath, err)
	}
	tool := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(clusterTool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("clustertool %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	pods, err := clusterClient.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + nodeName})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodPending {
			t.Skipf("pod %s/%s runs on the node: the disk pressure this test makes the kubelet see would evict it", p.Namespace, p.Name)
		}
	}
	tool("pull", "-endpoint", clusterEndpoint, gcImage)
	if !slices.Contains(strings.Fields(tool("images", "-endpoint", clusterEndpoint)), gcImage) {
		t.Fatalf("%s not listed by the runtime after its pull", gcImage)
	}

	restartKubelet(t, eagerImageGC)
	t.Cleanup(func() { restartKubelet(t, "") })

	err = wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 90*time.Second, true, func(context.Context) (bool, error) {
		return !slices.Contains(strings.Fields(tool("images", "-endpoint", clusterEndpoint)), gcImage), nil
	})
	if err != nil {
		t.Fatalf("%s still on the node 90s after the kubelet started with an eager image GC policy (kubelet log: /var/log/peapod-cluster/kubelet.log)", gcImage)
	}
	// The restarted kubelet's counter starts at 0.
	if n := gcMetric(t); n < 1 {
		t.Errorf("kubelet_image_garbage_collected_total = %v: the image went, but not through the kubelet's GC", n)
	}
}

// restartKubelet restarts the cluster's kubelet with extra configuration lines.
func restartKubelet(t *testing.T, extra string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot, "hack", "cluster.sh"), "restart-kubelet")
	cmd.Env = append(os.Environ(), "PEAPOD_CLUSTER_KUBELET_EXTRA="+extra)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/cluster.sh restart-kubelet: %v: %s", err, out)
	}
	if extra != "" {
		return
	}
	// Back to normal: the disk-pressure taint the eager kubelet's pressure put on the node
	// must be gone before other tests schedule pods.
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := clusterClient.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return !slices.ContainsFunc(n.Spec.Taints, func(t corev1.Taint) bool { return t.Key == corev1.TaintNodeDiskPressure }), nil
	})
	if err != nil {
		t.Fatalf("node %s still has the %s taint 1m after the kubelet's restart", nodeName, corev1.TaintNodeDiskPressure)
	}
}

// gcMetric sums the kubelet's kubelet_image_garbage_collected_total over its reasons; a
// kubelet that collected nothing since it started may not export the series at all (0).
func gcMetric(t *testing.T) float64 {
	t.Helper()
	raw, err := clusterClient.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", nodeName, "proxy", "metrics").DoRaw(context.Background())
	if err != nil {
		t.Fatalf("kubelet metrics: %v", err)
	}
	sum := 0.0
	s := bufio.NewScanner(strings.NewReader(string(raw)))
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, "kubelet_image_garbage_collected_total") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}
