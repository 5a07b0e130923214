// Package e2e tests peapod the way kubectl users see it: through a real one-node Kubernetes
// (etcd, kube-apiserver, controller-manager, scheduler and a kubelet, built at the versions
// pinned in hack/k8s-versions.env) whose kubelet runs its pods on peapod. TestMain brings the
// cluster up with hack/cluster.sh (building the Kubernetes binaries on first use) and down at
// the end; with PEAPOD_E2E_KUBECONFIG set, or when a cluster from `make cluster` already
// runs, it uses that cluster and leaves it running.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// The cluster every test talks to; set by TestMain.
var (
	clusterClient  kubernetes.Interface
	clusterConfig  *rest.Config
	kubeconfigPath string
	kubectlPath    string
	// nodeName is the cluster's one node.
	nodeName string
	// repoRoot is the repository's top directory.
	repoRoot string
	// skipReason, when set, is why there is no cluster: every helper skips with it.
	skipReason string
)

// testImage is the busybox image pods run: served by the cluster's test registry (peapod
// mirrors registry.k8s.io to it), with sh, httpd, wget, nc, id and sleep.
var testImage = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

// defaultAdminKubeconfig is where hack/cluster.sh writes the admin kubeconfig.
const defaultAdminKubeconfig = "/var/lib/peapod-cluster/admin.kubeconfig"

// e2eParallel is how many tests run at once unless -test.parallel says otherwise: the
// tests mostly wait on the kubelet (probes, back-off, grace periods), so GOMAXPROCS, the
// default, would leave the suite at over 5 minutes on a 2-core node (2 min 15 s at 20).
const e2eParallel = "16"

func TestMain(m *testing.M) {
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", e2eParallel)
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	if os.Geteuid() != 0 {
		skipReason = "the e2e suite runs a kubelet and a container runtime: needs root"
		return m.Run()
	}
	started := false
	kubeconfigPath = os.Getenv("PEAPOD_E2E_KUBECONFIG")
	if kubeconfigPath == "" && clusterAnswers(defaultAdminKubeconfig) {
		kubeconfigPath = defaultAdminKubeconfig
		fmt.Fprintln(os.Stderr, "e2e: using the cluster that runs already (make cluster); it stays up")
	}
	if kubeconfigPath == "" {
		// One kubelet per node: another one managing /kubepods meanwhile (a node-conformance
		// run holds this lock too) kills this one's containers.
		unlock, err := lockCluster()
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		defer unlock()
		start := time.Now()
		if out, err := clusterScript("up"); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: hack/cluster.sh up: %v\n%s\n", err, out)
			if out, err := clusterScript("down"); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: hack/cluster.sh down: %v\n%s\n", err, out)
			}
			return 1
		}
		fmt.Fprintf(os.Stderr, "e2e: cluster up in %s\n", time.Since(start).Round(100*time.Millisecond))
		started = true
		kubeconfigPath = defaultAdminKubeconfig
	}
	code := func() int {
		if err := connect(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			return 1
		}
		return m.Run()
	}()
	if started {
		if out, err := clusterScript("down"); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: hack/cluster.sh down: %v\n%s\n", err, out)
			return 1
		}
	}
	return code
}

// clusterScript runs hack/cluster.sh with one argument; its daemons write to their own logs,
// so the output is the script's alone.
func clusterScript(arg string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "hack", "cluster.sh"), arg)
	cmd.Dir = repoRoot
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// clusterAnswers reports whether the kubeconfig exists and its apiserver is ready.
func clusterAnswers(path string) bool {
	if _, err := os.Stat(path); err != nil {
		return false
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return false
	}
	cfg.Timeout = 5 * time.Second
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return false
	}
	_, err = c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
	return err == nil
}

// connect fills the package's cluster variables from kubeconfigPath.
func connect() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	if err != nil {
		return fmt.Errorf("load kubeconfig %s: %w", kubeconfigPath, err)
	}
	// Tests run in parallel: client-go's default 5 qps would make them wait on each other.
	cfg.QPS, cfg.Burst = 200, 400
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("client for %s: %w", kubeconfigPath, err)
	}
	out, err := exec.Command(filepath.Join(repoRoot, "hack", "k8s-build.sh"), "--bindir").Output()
	if err != nil {
		return fmt.Errorf("hack/k8s-build.sh --bindir: %w", err)
	}
	kubectlPath = filepath.Join(strings.TrimSpace(string(out)), "kubectl")
	if _, err := os.Stat(kubectlPath); err != nil {
		return fmt.Errorf("kubectl: %w (hack/k8s-build.sh kubectl builds it)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	if len(nodes.Items) != 1 {
		return errors.New("the e2e suite wants a cluster of exactly one node")
	}
	nodeName = nodes.Items[0].Name
	clusterClient, clusterConfig = c, cfg
	return nil
}

// clusterLock is the lock every kubelet run on this node holds (hack/node-conformance.sh too).
const clusterLock = "/tmp/peapod-cluster.lock"

// lockCluster waits for clusterLock and returns its release.
func lockCluster() (func(), error) {
	f, err := os.OpenFile(clusterLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", clusterLock, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: waiting for %s (another kubelet runs on this node)\n", clusterLock)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", clusterLock, err)
		}
	}
	return func() { f.Close() }, nil
}
