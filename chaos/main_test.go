package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

var (
	flagKills  = flag.Int("chaos.kills", 5, "daemon kills of TestDaemonKills (and shim/holder rounds: kills/10, at least 2)")
	flagCycles = flag.Int("chaos.cycles", 30, "create/start/exec/stop/remove cycles of TestSoak")
	flagSeed   = flag.Int64("chaos.seed", 0, "random seed (0: from the clock; printed)")
)

func TestMain(m *testing.M) { framework.Main(m) }

// seed is the run's random seed, logged so that a failure can be replayed.
func seed(t *testing.T) uint64 {
	t.Helper()
	s := *flagSeed
	if s == 0 {
		s = time.Now().UnixNano()
	}
	t.Logf("random seed %d (-chaos.seed=%d replays it)", s, s)
	return uint64(s)
}

// node is a peapod of the test's own with its CRI clients.
type node struct {
	d *framework.Daemon
	c *framework.Client
	// logDir holds the pods' log directories.
	logDir string
}

// The suite's pods get a network of their own (not peapod's built-in one, which other
// daemons on the node may use at the same time): their veths hang on chaosBridge, their
// leases are kept under the daemon's directory, and the leak checks look at those only.
const (
	chaosBridge = "ppchaos0"
	chaosSubnet = "10.213.0.0/16"
)

// runToken is in every pod UID of this run, hence in every pod cgroup's name.
var runToken = "chaos" + strconv.Itoa(os.Getpid())

// startNode starts a daemon of t's own on the suite's network and pulls busybox into it.
// Every pod still there when t ends is stopped and removed (before the daemon stops), and
// the bridge is removed after it.
func startNode(t *testing.T) *node {
	t.Helper()
	t.Cleanup(func() {
		if _, err := net.InterfaceByName(chaosBridge); err == nil {
			if out, err := exec.Command("ip", "link", "del", chaosBridge).CombinedOutput(); err != nil {
				t.Errorf("remove bridge %s: %v: %s", chaosBridge, err, out)
			}
		}
	})
	d := framework.NewTestDaemon(t, framework.WithLogLevel("info"))
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "chaos", "plugins": [{"type": "bridge", "bridge": %q,
		"isGateway": true, "ipMasq": false, "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "dataDir": %q}}]}`,
		chaosBridge, chaosSubnet, filepath.Join(d.Dir(), "ipam"))
	if err := os.WriteFile(filepath.Join(d.CNIConfDir(), "10-chaos.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatalf("start peapod: %v", err)
	}
	n := &node{d: d, c: framework.MustConnect(t, d.Endpoint()), logDir: t.TempDir()}
	if _, err := n.c.Image.PullImage(framework.Context(t), &runtimeapi.ImageSpec{Image: framework.ImageBusybox}, nil, nil); err != nil {
		t.Fatalf("PullImage: %v", err)
	}
	t.Cleanup(func() {
		if d.Running() {
			n.removeAllPods(t, false)
		}
	})
	return n
}

// ctx is a quiet context for one call, bounded well below the test's deadline.
func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(framework.Quiet(context.Background()), 60*time.Second)
}

// removeAllPods stops and removes every pod of the daemon; strict fails t on an error.
func (n *node) removeAllPods(t *testing.T, strict bool) {
	t.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	pods, err := n.c.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Errorf("ListPodSandbox for teardown: %v", err)
		return
	}
	for _, p := range pods {
		err := n.c.Runtime.StopPodSandbox(ctx, p.Id)
		if err == nil {
			err = n.c.Runtime.RemovePodSandbox(ctx, p.Id)
		}
		if err != nil && strict {
			t.Errorf("remove pod %s: %v", p.Id, err)
		}
	}
}

// podConfig is a pod with its own log directory; shared makes its containers share one
// PID namespace (NamespaceMode POD).
func (n *node) podConfig(name string, sharedPID bool) *runtimeapi.PodSandboxConfig {
	mode := runtimeapi.NamespaceMode_CONTAINER
	if sharedPID {
		mode = runtimeapi.NamespaceMode_POD
	}
	uid := fmt.Sprintf("%s-%s-%d", runToken, name, time.Now().UnixNano())
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "chaos", Uid: uid},
		Hostname:     name,
		LogDirectory: filepath.Join(n.logDir, uid),
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: mode},
		}},
	}
}

// shellContainer runs script with busybox sh, logging to <name>.log in the pod's log dir.
func shellContainer(name, script string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: framework.ImageBusybox},
		Command:  []string{"sh", "-c", script},
		LogPath:  name + ".log",
		Linux:    &runtimeapi.LinuxContainerConfig{},
	}
}

// counterScript prints 0, 1, 2, ... one line every 50 ms, for ever.
const counterScript = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done"

// ctrInfo is what peapod's verbose ContainerStatus tells about a container.
type ctrInfo struct {
	Pid        int    `json:"pid"`
	CgroupPath string `json:"cgroup_path"`
}

func (n *node) status(ctx context.Context, id string) (*runtimeapi.ContainerStatus, ctrInfo, error) {
	resp, err := n.c.Runtime.ContainerStatus(ctx, id, true)
	if err != nil {
		return nil, ctrInfo{}, err
	}
	var info ctrInfo
	if raw := resp.GetInfo()["info"]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			return nil, ctrInfo{}, fmt.Errorf("container %s info %q: %w", id, raw, err)
		}
	}
	return resp.GetStatus(), info, nil
}

// runContainer creates and starts a container.
func (n *node) runContainer(ctx context.Context, podID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) (string, error) {
	id, err := n.c.Runtime.CreateContainer(ctx, podID, cfg, pod)
	if err != nil {
		return "", fmt.Errorf("create %s: %w", cfg.Metadata.Name, err)
	}
	if err := n.c.Runtime.StartContainer(ctx, id); err != nil {
		return id, fmt.Errorf("start %s: %w", cfg.Metadata.Name, err)
	}
	return id, nil
}

// waitExited polls until the container has exited.
func (n *node) waitExited(ctx context.Context, id string, timeout time.Duration) (*runtimeapi.ContainerStatus, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, _, err := n.status(ctx, id)
		if err != nil {
			return nil, err
		}
		if st.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("container %s still %v after %v", id, st.GetState(), timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkRunning holds a RUNNING container against the kernel: its pid is alive (not a
// zombie) and in the container's cgroup.
func checkRunning(info ctrInfo) error {
	if info.Pid <= 0 {
		return errors.New("RUNNING with no pid")
	}
	st, err := framework.ProcessStatus(info.Pid)
	if err != nil {
		return fmt.Errorf("RUNNING but pid %d is gone: %w", info.Pid, err)
	}
	if strings.HasPrefix(st["State"], "Z") {
		return fmt.Errorf("RUNNING but pid %d is a zombie", info.Pid)
	}
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(info.Pid) + "/cgroup")
	if err != nil {
		return fmt.Errorf("cgroup of pid %d: %w", info.Pid, err)
	}
	if info.CgroupPath == "" {
		return errors.New("RUNNING with no cgroup path")
	}
	for line := range strings.Lines(string(raw)) {
		if strings.HasSuffix(strings.TrimSpace(line), ":"+info.CgroupPath) {
			return nil
		}
	}
	return fmt.Errorf("pid %d is not in the container's cgroup %s:\n%s", info.Pid, info.CgroupPath, raw)
}

// checkCounterLog reads a CRI log file that a counterScript container wrote and checks that
// it holds 0, 1, 2, ... exactly once each, in order, each a full (F) stdout line in the CRI
// format. It returns the number of lines.
func checkCounterLog(path string) (int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	want := 0
	for line := range strings.Lines(string(raw)) {
		if !strings.HasSuffix(line, "\n") {
			return want, fmt.Errorf("%s: last line has no newline: %q", path, line)
		}
		parts := strings.SplitN(strings.TrimSuffix(line, "\n"), " ", 4)
		if len(parts) != 4 {
			return want, fmt.Errorf("%s: malformed line %q", path, line)
		}
		if _, err := time.Parse(time.RFC3339Nano, parts[0]); err != nil {
			return want, fmt.Errorf("%s: line %q: %w", path, line, err)
		}
		if parts[1] != "stdout" || parts[2] != "F" {
			return want, fmt.Errorf("%s: line %q: want a full stdout line", path, line)
		}
		got, err := strconv.Atoi(parts[3])
		if err != nil {
			return want, fmt.Errorf("%s: line %q: not a number", path, line)
		}
		switch {
		case got < want:
			return want, fmt.Errorf("%s: %d again after %d (a duplicate)", path, got, want-1)
		case got > want:
			return want, fmt.Errorf("%s: %d follows %d (a gap of %d lines)", path, got, want-1, got-want)
		}
		want++
	}
	return want, nil
}
