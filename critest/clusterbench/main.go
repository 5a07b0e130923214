// Command clusterbench measures pod start-up through a real one-node cluster (hack/cluster.sh,
// make bench-cluster), the path a kubelet user sees:
//
//   - static pod: a two-container manifest written into the kubelet's manifest directory ->
//     both containers Running, as the runtime reports them over the CRI (the kubelet's file
//     source, pod worker and every CRI call, without the apiserver);
//   - kubectl apply: `kubectl apply` of a two-container pod -> its Ready condition, watched
//     through the apiserver (the scheduler, the kubelet's watch, the pod start and the status
//     update);
//   - Deployment: a Deployment of 30 replicas created -> 30 pods Ready.
//
// It prints p50/p95 and min/max per scenario as a table.
//
//	go run ./critest/clusterbench [-kubeconfig F] [-kubectl BIN] [-manifests DIR] [-endpoint unix:///...] [-n 10] [-replicas 30]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

const image = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

type bench struct {
	client    kubernetes.Interface
	runtime   internalapi.RuntimeService
	kubectl   string
	kubecfg   string
	manifests string
	ns        string
	node      string
}

func main() {
	kubecfg := flag.String("kubeconfig", "/var/lib/peapod-cluster/admin.kubeconfig", "the cluster's admin kubeconfig")
	kubectl := flag.String("kubectl", "", "kubectl binary (default: the one hack/k8s-build.sh built)")
	manifests := flag.String("manifests", "/var/lib/peapod-cluster/manifests", "the kubelet's static pod directory")
	endpoint := flag.String("endpoint", "unix:///run/peapod-cluster/peapod.sock", "the node's CRI endpoint")
	n := flag.Int("n", 10, "runs of the static pod and kubectl apply scenarios")
	replicas := flag.Int("replicas", 30, "replicas of the Deployment")
	flag.Parse()
	if err := run(*kubecfg, *kubectl, *manifests, *endpoint, *n, *replicas); err != nil {
		fmt.Fprintln(os.Stderr, "clusterbench:", err)
		os.Exit(1)
	}
}

func run(kubecfg, kubectl, manifests, endpoint string, n, replicas int) error {
	ctx := framework.Quiet(context.Background())
	cfg, err := clientcmd.BuildConfigFromFlags("", kubecfg)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if kubectl == "" {
		out, err := exec.Command("hack/k8s-build.sh", "--bindir").Output()
		if err != nil {
			return fmt.Errorf("find kubectl (hack/k8s-build.sh --bindir, from the repository's top): %w", err)
		}
		kubectl = filepath.Join(strings.TrimSpace(string(out)), "kubectl")
	}
	rs, err := framework.ConnectRuntime(ctx, endpoint)
	if err != nil {
		return err
	}
	defer rs.Close(ctx) //nolint:errcheck
	b := &bench{client: client, runtime: rs, kubectl: kubectl, kubecfg: kubecfg, manifests: manifests}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		return fmt.Errorf("want a cluster of one node: %d nodes, %v", len(nodes.Items), err)
	}
	b.node = nodes.Items[0].Name
	ns, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create namespace: %w", err)
	}
	b.ns = ns.Name
	defer b.cleanup()
	if err := b.waitServiceAccount(ctx); err != nil {
		return err
	}
	// The image once, untimed: every scenario measures start-up, not the pull.
	if _, err := b.applyPod(ctx, "warmup"); err != nil {
		return fmt.Errorf("warm-up pod: %w", err)
	}

	type row struct {
		name string
		runs []time.Duration
	}
	var rows []row
	static, err := repeat(n, func(i int) (time.Duration, error) { return b.staticPod(ctx, fmt.Sprintf("static%d", i)) })
	if err != nil {
		return fmt.Errorf("static pod: %w", err)
	}
	rows = append(rows, row{"static pod manifest -> 2 containers Running", static})
	apply, err := repeat(n, func(i int) (time.Duration, error) { return b.applyPod(ctx, fmt.Sprintf("apply%d", i)) })
	if err != nil {
		return fmt.Errorf("kubectl apply: %w", err)
	}
	rows = append(rows, row{"kubectl apply 2-container pod -> Ready", apply})
	deploy, err := b.deployment(ctx, replicas)
	if err != nil {
		return fmt.Errorf("deployment: %w", err)
	}
	rows = append(rows, row{fmt.Sprintf("Deployment of %d replicas -> all Ready", replicas), []time.Duration{deploy}})

	fmt.Printf("%-46s %5s %8s %8s %8s %8s\n", "scenario (through a kubelet "+"v1.36)", "runs", "p50", "p95", "min", "max")
	for _, r := range rows {
		s := slices.Clone(r.runs)
		slices.Sort(s)
		fmt.Printf("%-46s %5d %8s %8s %8s %8s\n", r.name, len(s), sec(pct(s, 50)), sec(pct(s, 95)), sec(s[0]), sec(s[len(s)-1]))
	}
	return nil
}

func repeat(n int, f func(i int) (time.Duration, error)) ([]time.Duration, error) {
	var out []time.Duration
	for i := range n {
		d, err := f(i)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))]
}

func sec(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

func (b *bench) waitServiceAccount(ctx context.Context) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := b.client.CoreV1().ServiceAccounts(b.ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

func twoContainers() string {
	return fmt.Sprintf(`  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: %s
    command: ["sleep", "3600"]
  - name: b
    image: %s
    command: ["sleep", "3600"]
`, image, image)
}

// staticPod writes a manifest and waits until the runtime runs both its containers; then
// removes it and waits until the kubelet has stopped the pod.
func (b *bench) staticPod(ctx context.Context, name string) (time.Duration, error) {
	manifest := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s", name, b.ns, twoContainers())
	file := filepath.Join(b.manifests, b.ns+"-"+name+".yaml")
	// Written aside (the kubelet skips dot files) and renamed into place: the clock starts
	// when the whole manifest appears.
	tmp := filepath.Join(b.manifests, "."+b.ns+"-"+name+".yaml.tmp")
	if err := os.WriteFile(tmp, []byte(manifest), 0o644); err != nil {
		return 0, err
	}
	filter := &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		// The kubelet names a static pod <name>-<node>.
		LabelSelector: map[string]string{"io.kubernetes.pod.name": name + "-" + b.node, "io.kubernetes.pod.namespace": b.ns},
	}
	start := time.Now()
	if err := os.Rename(tmp, file); err != nil {
		return 0, err
	}
	var took time.Duration
	err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		cs, err := b.runtime.ListContainers(ctx, filter)
		if err != nil {
			return false, err
		}
		took = time.Since(start)
		return len(cs) == 2, nil
	})
	_ = os.Remove(file)
	if err != nil {
		return 0, fmt.Errorf("static pod %s: %w", name, err)
	}
	// Gone again before the next run: no running container of it left.
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		cs, err := b.runtime.ListContainers(ctx, filter)
		return err == nil && len(cs) == 0, nil
	})
	return took, err
}

// applyPod runs kubectl apply for a two-container pod and waits for it to be Ready (the
// clock runs from kubectl's start), then deletes it.
func (b *bench) applyPod(ctx context.Context, name string) (time.Duration, error) {
	manifest := fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n%s", name, b.ns, twoContainers())
	cmd := exec.CommandContext(ctx, b.kubectl, "--kubeconfig", b.kubecfg, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("kubectl apply: %w: %s", err, out)
	}
	var took time.Duration
	err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := b.client.CoreV1().Pods(b.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		took = time.Since(start)
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return 0, fmt.Errorf("pod %s not Ready: %w", name, err)
	}
	return took, b.deletePod(ctx, name)
}

func (b *bench) deletePod(ctx context.Context, name string) error {
	if err := b.client.CoreV1().Pods(b.ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := b.client.CoreV1().Pods(b.ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

// deployment creates a Deployment and waits until all its replicas are Ready.
func (b *bench) deployment(ctx context.Context, replicas int) (time.Duration, error) {
	r := int32(replicas)
	grace := int64(1)
	labels := map[string]string{"app": "bench"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &r,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					Containers:                    []corev1.Container{{Name: "c", Image: image, Command: []string{"sleep", "3600"}}},
				},
			},
		},
	}
	start := time.Now()
	if _, err := b.client.AppsV1().Deployments(b.ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return 0, err
	}
	var took time.Duration
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := b.client.CoreV1().Pods(b.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=bench"})
		if err != nil {
			return false, nil
		}
		took = time.Since(start)
		ready := 0
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == replicas, nil
	})
	if err != nil {
		return 0, fmt.Errorf("%d replicas not Ready after 5m: %w", replicas, err)
	}
	return took, nil
}

// cleanup deletes the namespace (pods with a 1 s grace) and waits until it is gone.
func (b *bench) cleanup() {
	ctx := context.Background()
	grace := int64(1)
	_ = b.client.AppsV1().Deployments(b.ns).Delete(ctx, "bench", metav1.DeleteOptions{})
	_ = b.client.CoreV1().Pods(b.ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &grace}, metav1.ListOptions{})
	if err := b.client.CoreV1().Namespaces().Delete(ctx, b.ns, metav1.DeleteOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, "clusterbench: delete namespace:", err)
		return
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := b.client.CoreV1().Namespaces().Get(ctx, b.ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "clusterbench:", errors.Join(errors.New("namespace "+b.ns+" not gone"), err))
	}
}
