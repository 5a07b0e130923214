package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// runtimeVersion is what a node running peapod reports: peapod://<semantic version>.
var runtimeVersion = regexp.MustCompile(`^peapod://\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// TestNodeStatus: the node is Ready, reports the machine's capacity, the images peapod holds
// and peapod's semantic version.
func TestNodeStatus(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	// A pod, so that the test image is on the node whatever runs before.
	createPod(t, ns, podOf("p", shContainer("c", "exec sleep 3600")))
	waitPodReady(t, ns, "p")
	var node *corev1.Node
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := clusterClient.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		node = n
		return slices.ContainsFunc(n.Status.Images, func(i corev1.ContainerImage) bool { return slices.Contains(i.Names, testImage) }), nil
	})
	if node == nil {
		t.Fatalf("get node %s: %v", nodeName, err)
	}
	if err != nil {
		t.Errorf("node %s does not list %s among its images after 1m: %v", nodeName, testImage, node.Status.Images)
	}
	ready := false
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	if !ready {
		t.Errorf("node %s not Ready: %+v", nodeName, node.Status.Conditions)
	}
	if got := node.Status.Capacity.Cpu().Value(); got != int64(runtime.NumCPU()) {
		t.Errorf("cpu capacity %d, want %d", got, runtime.NumCPU())
	}
	if got := node.Status.Capacity.Memory(); got.Cmp(resource.MustParse("100Mi")) < 0 {
		t.Errorf("memory capacity %s", got)
	}
	if got := node.Status.Capacity.Pods().Value(); got <= 0 {
		t.Errorf("pods capacity %d", got)
	}
	for _, i := range node.Status.Images {
		if i.SizeBytes <= 0 {
			t.Errorf("image %v has size %d", i.Names, i.SizeBytes)
		}
	}
	info := node.Status.NodeInfo
	if !runtimeVersion.MatchString(info.ContainerRuntimeVersion) {
		t.Errorf("containerRuntimeVersion %q, want peapod://<semantic version>", info.ContainerRuntimeVersion)
	}
	if info.KubeletVersion == "" || info.OperatingSystem != "linux" {
		t.Errorf("node info %+v", info)
	}
}

// summary is the part of the kubelet's /stats/summary (k8s.io/kubelet's stats/v1alpha1)
// this suite reads.
type summary struct {
	Node struct {
		Runtime struct {
			ImageFs *fsStats `json:"imageFs"`
		} `json:"runtime"`
	} `json:"node"`
	Pods []struct {
		PodRef struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"podRef"`
		Containers []struct {
			Name   string    `json:"name"`
			CPU    *cpuStats `json:"cpu"`
			Memory *memStats `json:"memory"`
			Rootfs *fsStats  `json:"rootfs"`
			Logs   *fsStats  `json:"logs"`
		} `json:"containers"`
		CPU    *cpuStats `json:"cpu"`
		Memory *memStats `json:"memory"`
	} `json:"pods"`
}

type cpuStats struct {
	UsageNanoCores       *uint64 `json:"usageNanoCores"`
	UsageCoreNanoSeconds *uint64 `json:"usageCoreNanoSeconds"`
}

type memStats struct {
	WorkingSetBytes *uint64 `json:"workingSetBytes"`
	UsageBytes      *uint64 `json:"usageBytes"`
}

type fsStats struct {
	CapacityBytes  *uint64 `json:"capacityBytes"`
	AvailableBytes *uint64 `json:"availableBytes"`
	UsedBytes      *uint64 `json:"usedBytes"`
}

func nonZero(p *uint64) bool { return p != nil && *p > 0 }

// getSummary reads the kubelet's summary API through the apiserver's node proxy.
func getSummary(ctx context.Context) (*summary, error) {
	raw, err := clusterClient.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", nodeName, "proxy", "stats", "summary").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("GET stats/summary: %w", err)
	}
	var s summary
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("decode stats/summary: %w", err)
	}
	return &s, nil
}

// TestSummaryAPI: the kubelet's summary API, fed by peapod's stats RPCs, shows a running
// pod's CPU and memory (non-zero, per container and per pod) and the image filesystem.
func TestSummaryAPI(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	busy := shContainer("busy", "while :; do :; done")
	// A small slice of a CPU: enough to be seen, not enough to slow the other tests.
	busy.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}
	createPod(t, ns, podOf("busy", busy, shContainer("idle", "exec sleep 3600")))
	waitPodReady(t, ns, "busy")

	var last *summary
	var problems []string
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		s, err := getSummary(ctx)
		if err != nil {
			problems = []string{err.Error()}
			return false, nil
		}
		last, problems = s, nil
		fs := s.Node.Runtime.ImageFs
		if fs == nil || !nonZero(fs.CapacityBytes) || !nonZero(fs.UsedBytes) || !nonZero(fs.AvailableBytes) {
			problems = append(problems, fmt.Sprintf("node.runtime.imageFs %+v", fs))
		}
		found := false
		for _, p := range s.Pods {
			if p.PodRef.Namespace != ns || p.PodRef.Name != "busy" {
				continue
			}
			found = true
			if p.CPU == nil || !nonZero(p.CPU.UsageNanoCores) || !nonZero(p.CPU.UsageCoreNanoSeconds) {
				problems = append(problems, fmt.Sprintf("pod cpu %+v", p.CPU))
			}
			if p.Memory == nil || !nonZero(p.Memory.WorkingSetBytes) {
				problems = append(problems, fmt.Sprintf("pod memory %+v", p.Memory))
			}
			if len(p.Containers) != 2 {
				problems = append(problems, fmt.Sprintf("%d containers", len(p.Containers)))
			}
			for _, c := range p.Containers {
				if c.Memory == nil || !nonZero(c.Memory.WorkingSetBytes) {
					problems = append(problems, fmt.Sprintf("container %s memory %+v", c.Name, c.Memory))
				}
				if c.Rootfs == nil || !nonZero(c.Rootfs.CapacityBytes) {
					problems = append(problems, fmt.Sprintf("container %s rootfs %+v", c.Name, c.Rootfs))
				}
				if c.Name == "busy" && (c.CPU == nil || !nonZero(c.CPU.UsageNanoCores)) {
					problems = append(problems, fmt.Sprintf("container busy cpu %+v", c.CPU))
				}
			}
		}
		if !found {
			problems = append(problems, "pod busy not in the summary")
		}
		return len(problems) == 0, nil
	})
	if err != nil {
		b, _ := json.MarshalIndent(last, "", "  ")
		t.Fatalf("summary API after 90s: %v\n%s", problems, b)
	}
}
