package critest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// testLabelKey labels every pod the sandbox tests create with a value unique to the test, so
// ListPodSandbox can find exactly a test's pods and cleanup can remove all of them.
const testLabelKey = "critest.peapod.io/test"

// builtinSubnet is peapod's built-in pod network.
var builtinSubnet = func() *net.IPNet {
	_, n, _ := net.ParseCIDR("10.89.0.0/16")
	return n
}()

// newUID returns a random pod uid shaped like a kubelet's (a UUID).
func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// randomSuffix is a short random hex string for unique names.
func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// podLabel is a label value unique to one run of t.
func podLabel(t testing.TB) string {
	v := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			return r
		}
		return '_'
	}, t.Name())
	if len(v) > 50 {
		v = v[len(v)-50:]
	}
	return strings.Trim(v, "-._") + "-" + randomSuffix()
}

// podConfig is a minimal kubelet-like pod config labelled with label.
func podConfig(t testing.TB, name, label string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "critest-sandbox", Uid: newUID()},
		Hostname:     name,
		LogDirectory: t.TempDir(),
		Labels:       map[string]string{testLabelKey: label},
		Linux:        &runtimeapi.LinuxPodSandboxConfig{},
	}
}

// removeLabelled stops and removes every pod labelled label (in t.Cleanup: whatever a test
// created, even pods a buggy runtime did not return an id for).
func removeLabelled(t testing.TB, rt internalapi.RuntimeService, label string) {
	t.Helper()
	t.Cleanup(func() {
		ctx := framework.Quiet(context.Background())
		pods, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{testLabelKey: label}})
		if err != nil {
			t.Errorf("cleanup: ListPodSandbox: %v", err)
			return
		}
		for _, p := range pods {
			_ = rt.StopPodSandbox(ctx, p.Id)
			if err := rt.RemovePodSandbox(ctx, p.Id); err != nil {
				t.Errorf("cleanup: RemovePodSandbox %s: %v", p.Id, err)
			}
		}
	})
}

// runPod runs cfg with handler, failing t on error; the pod is removed in cleanup.
func runPod(t testing.TB, rt internalapi.RuntimeService, cfg *runtimeapi.PodSandboxConfig, handler string) string {
	t.Helper()
	id, err := rt.RunPodSandbox(framework.Context(t), cfg, handler)
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v", cfg.GetMetadata().GetName(), err)
	}
	t.Cleanup(func() {
		ctx := framework.Quiet(context.Background())
		_ = rt.StopPodSandbox(ctx, id)
		if err := rt.RemovePodSandbox(ctx, id); err != nil {
			t.Errorf("cleanup: RemovePodSandbox %s: %v", id, err)
		}
	})
	return id
}

// podInfo is what a runtime's verbose PodSandboxStatus tells about a pod's kernel objects:
// peapod's pod record, or (with -endpoint containerd) what can be derived from containerd's
// pause-container info.
type podInfo struct {
	// Peapod is set when the info came from peapod's pod record.
	Peapod bool
	// NetNS, UTS and IPC are paths nsenter can enter; empty means the node's namespace.
	NetNS, UTS, IPC string
	// IPs are the pod's addresses (peapod only; else the status IP).
	IPs []string
	// CgroupParent is the pod cgroup (peapod), or the pause container's cgroupsPath.
	CgroupParent string
	// QoS is peapod's tier name.
	QoS string
	// Dir, ResolvPath, HostnamePath, HostsPath and ShmPath are peapod's pod files.
	Dir, ResolvPath, HostnamePath, HostsPath, ShmPath string
	// Raw is the verbose info as the runtime sent it.
	Raw string
}

// peapodPodRecord is the JSON of peapod's verbose info["info"].
type peapodPodRecord struct {
	ID     string `json:"id"`
	Config struct {
		Namespaces struct {
			Network int `json:"network"`
			PID     int `json:"pid"`
			IPC     int `json:"ipc"`
		} `json:"namespaces"`
		CgroupParent string `json:"cgroup_parent"`
	} `json:"config"`
	State        string    `json:"state"`
	CreatedAt    time.Time `json:"created_at"`
	IPs          []string  `json:"ips"`
	NetNSPath    string    `json:"netns_path"`
	IPCPath      string    `json:"ipc_path"`
	UTSPath      string    `json:"uts_path"`
	CgroupParent string    `json:"cgroup_parent"`
	QoS          string    `json:"qos"`
	Dir          string    `json:"dir"`
	ShmPath      string    `json:"shm_path"`
	HostnamePath string    `json:"hostname_path"`
	ResolvPath   string    `json:"resolv_path"`
	HostsPath    string    `json:"hosts_path"`
}

// containerdSandboxInfo is the part of containerd's verbose sandbox info used here.
type containerdSandboxInfo struct {
	Pid         int `json:"pid"`
	RuntimeSpec struct {
		Linux struct {
			CgroupsPath string `json:"cgroupsPath"`
			Namespaces  []struct {
				Type string `json:"type"`
				Path string `json:"path"`
			} `json:"namespaces"`
		} `json:"linux"`
	} `json:"runtimeSpec"`
}

// inspectPod reads the pod's verbose status and returns what it says about kernel objects.
func inspectPod(t testing.TB, rt internalapi.RuntimeService, id string) (podInfo, *runtimeapi.PodSandboxStatus) {
	t.Helper()
	resp, err := rt.PodSandboxStatus(framework.Context(t), id, true)
	if err != nil {
		t.Fatalf("PodSandboxStatus %s: %v", id, err)
	}
	raw := resp.GetInfo()["info"]
	info := podInfo{Raw: raw}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &keys); err != nil {
		t.Fatalf("verbose PodSandboxStatus info[\"info\"] is not JSON: %v\n%s", err, raw)
	}
	if _, ok := keys["qos"]; ok {
		var rec peapodPodRecord
		if err := json.Unmarshal([]byte(raw), &rec); err != nil {
			t.Fatalf("peapod pod record: %v\n%s", err, raw)
		}
		info = podInfo{Peapod: true, NetNS: rec.NetNSPath, UTS: rec.UTSPath, IPC: rec.IPCPath, IPs: rec.IPs,
			CgroupParent: rec.CgroupParent, QoS: rec.QoS, Dir: rec.Dir, ResolvPath: rec.ResolvPath,
			HostnamePath: rec.HostnamePath, HostsPath: rec.HostsPath, ShmPath: rec.ShmPath, Raw: raw}
		return info, resp.GetStatus()
	}
	var cd containerdSandboxInfo
	if err := json.Unmarshal([]byte(raw), &cd); err != nil || cd.Pid <= 0 {
		t.Fatalf("verbose info is neither peapod's pod record nor containerd's sandbox info (%v):\n%s", err, raw)
	}
	info.CgroupParent = cd.RuntimeSpec.Linux.CgroupsPath
	for _, ns := range cd.RuntimeSpec.Linux.Namespaces {
		switch ns.Type {
		case "network":
			info.NetNS = ns.Path
			if info.NetNS == "" {
				info.NetNS = fmt.Sprintf("/proc/%d/ns/net", cd.Pid)
			}
		case "uts":
			info.UTS = fmt.Sprintf("/proc/%d/ns/uts", cd.Pid)
		case "ipc":
			info.IPC = fmt.Sprintf("/proc/%d/ns/ipc", cd.Pid)
		}
	}
	if ip := resp.GetStatus().GetNetwork().GetIp(); ip != "" {
		info.IPs = append(info.IPs, ip)
	}
	return info, resp.GetStatus()
}

// cmdOutput runs a host command with a timeout and returns its combined output.
func cmdOutput(t testing.TB, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// inNetNS runs a command in the network namespace pinned at ns.
func inNetNS(t testing.TB, ns string, args ...string) (string, error) {
	t.Helper()
	return cmdOutput(t, 15*time.Second, "nsenter", append([]string{"--net=" + ns, "--"}, args...)...)
}

// vethPeer finds the host side of the pod's eth0: its ifindex from "eth0@ifN" inside the
// pod's netns, and the host interface of that index.
func vethPeer(t testing.TB, netns string) (string, int) {
	t.Helper()
	out, err := inNetNS(t, netns, "ip", "-o", "link", "show", "eth0")
	if err != nil {
		t.Fatalf("pod eth0: %v", err)
	}
	m := regexp.MustCompile(`eth0@if(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("pod eth0 has no peer: %q", out)
	}
	idx, _ := strconv.Atoi(m[1])
	ifc, err := net.InterfaceByIndex(idx)
	if err != nil {
		t.Fatalf("host side of the pod's eth0 (ifindex %d): %v", idx, err)
	}
	return ifc.Name, idx
}

// podTrace records a ready pod's kernel objects, to check after removal that all are gone.
type podTrace struct {
	id   string
	info podInfo
	veth string // host side of eth0, "" for a hostNetwork pod
	// lease is the IPAM lease file that held the pod's address while it ran ("" if none was
	// seen); rules says firewall rules mentioned the pod while it ran (its hostPorts).
	lease string
	rules bool
}

// tracePod records what a ready pod owns, so that checkPodsGone checks for leftovers of
// what was seen to exist.
func tracePod(t testing.TB, rt internalapi.RuntimeService, id string) podTrace {
	t.Helper()
	info, _ := inspectPod(t, rt, id)
	tr := podTrace{id: id, info: info}
	if info.NetNS != "" {
		tr.veth, _ = vethPeer(t, info.NetNS)
	}
	for p, content := range ipamLeases(t) {
		if strings.Contains(content, id) {
			tr.lease = p
		}
	}
	tr.rules = strings.Contains(firewallRules(t), id)
	return tr
}

// ipamDirs are where host-local IPAM keeps its leases: peapod's built-in network and the CNI
// default (containerd with a conflist).
var ipamDirs = []string{"/run/peapod/cni/networks", "/var/lib/cni/networks"}

// ipamLeases maps each host-local lease file (named by IP, holding the container id) to its
// content.
func ipamLeases(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, root := range ipamDirs {
		nets, err := os.ReadDir(root)
		if err != nil {
			continue
		}
		for _, n := range nets {
			if !n.IsDir() {
				continue
			}
			files, err := os.ReadDir(filepath.Join(root, n.Name()))
			if err != nil {
				continue
			}
			for _, f := range files {
				if net.ParseIP(f.Name()) == nil {
					continue
				}
				p := filepath.Join(root, n.Name(), f.Name())
				if b, err := os.ReadFile(p); err == nil {
					out[p] = string(b)
				}
			}
		}
	}
	return out
}

// firewallRules is iptables-save plus nft's ruleset (either may be missing).
func firewallRules(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	tools := 0
	for _, c := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"nft", "list", "ruleset"}} {
		if _, err := exec.LookPath(c[0]); err != nil {
			continue
		}
		tools++
		out, err := cmdOutput(t, 30*time.Second, c[0], c[1:]...)
		if err != nil {
			t.Fatalf("read the firewall rules: %v", err)
		}
		b.WriteString(out)
	}
	if tools == 0 {
		t.Fatal("none of iptables-save, ip6tables-save and nft is installed: no leftover firewall rule could be seen (hack/install-deps.sh installs iptables)")
	}
	return b.String()
}

// cgroupDirs lists where a cgroup path exists on this host (each v1 controller, or v2).
func cgroupDirs(cg string) []string {
	if cg == "" {
		return nil
	}
	var out []string
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", cg)); err == nil {
			out = append(out, filepath.Join("/sys/fs/cgroup", cg))
		}
		return out
	}
	for _, ctrl := range []string{"cpu", "cpuacct", "memory", "pids", "blkio", "cpuset", "devices", "freezer", "hugetlb", "net_cls", "perf_event", "systemd"} {
		p := filepath.Join("/sys/fs/cgroup", ctrl, cg)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// networkTeardownWait bounds how long after StopPodSandbox or RemovePodSandbox answered a
// pod's network may still be going away: a runtime may tear it down after the answer (peapod
// does, from a journal), as long as it does not leak.
const networkTeardownWait = 10 * time.Second

// waitNetworksGone waits until the host veth, namespace pins (and their dir) and IPAM lease of
// every trace are gone, or networkTeardownWait passed (the checks that follow then report what is left).
func waitNetworksGone(t testing.TB, traces ...podTrace) {
	t.Helper()
	deadline := time.Now().Add(networkTeardownWait)
	for time.Now().Before(deadline) {
		left := false
		leases := ipamLeases(t)
		for _, tr := range traces {
			if tr.veth != "" {
				if _, err := net.InterfaceByName(tr.veth); err == nil {
					left = true
				}
			}
			for _, p := range []string{tr.info.NetNS, tr.info.UTS, tr.info.IPC} {
				if p == "" || strings.HasPrefix(p, "/proc/") {
					continue
				}
				if _, err := os.Lstat(p); err == nil {
					left = true
				}
				if dir := filepath.Dir(p); filepath.Base(filepath.Dir(dir)) == "ns" {
					// peapod's pins dir, <state>/ns/<pod>, goes last.
					if _, err := os.Lstat(dir); err == nil {
						left = true
					}
				}
			}
			for _, content := range leases {
				if strings.Contains(content, tr.id) {
					left = true
				}
			}
		}
		if !left {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkPodsGone verifies that removed pods left nothing behind: the runtime forgot them, and
// (when the runtime told where) no namespace pin file or mount, no pod dir, no host veth, no
// IPAM lease, no cgroup and no firewall rule mentioning the pod id remain.
func checkPodsGone(t testing.TB, env *framework.Env, traces ...podTrace) {
	t.Helper()
	ctx := framework.Context(t)
	waitNetworksGone(t, traces...)
	leases := ipamLeases(t)
	rules := firewallRules(t)
	var mounts []string
	if env.Daemon != nil {
		var err error
		if mounts, err = framework.MountsUnder(env.Daemon.State()); err != nil {
			t.Fatal(err)
		}
	}
	for _, tr := range traces {
		if _, err := env.Runtime.PodSandboxStatus(ctx, tr.id, false); status.Code(err) != codes.NotFound {
			t.Errorf("pod %s: PodSandboxStatus after remove: %v, want NotFound", tr.id, err)
		}
		if pods, err := env.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{Id: tr.id}); err != nil || len(pods) != 0 {
			t.Errorf("pod %s: ListPodSandbox after remove: %d pods, %v", tr.id, len(pods), err)
		}
		for _, p := range []string{tr.info.NetNS, tr.info.UTS, tr.info.IPC} {
			if p == "" || strings.HasPrefix(p, "/proc/") {
				continue
			}
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("pod %s: namespace pin %s still exists (%v)", tr.id, p, err)
			}
			if m, err := framework.MountsUnder(p); err != nil || len(m) > 0 {
				t.Errorf("pod %s: still mounted at %s: %v %v", tr.id, p, m, err)
			}
		}
		if env.Daemon != nil {
			for _, m := range mounts {
				if strings.Contains(m, tr.id) {
					t.Errorf("pod %s: mount %s left under the daemon's state dir", tr.id, m)
				}
			}
			nsDir := filepath.Join(env.Daemon.State(), "ns", tr.id)
			if _, err := os.Lstat(nsDir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("pod %s: %s still exists (%v)", tr.id, nsDir, err)
			}
		}
		for _, p := range []string{tr.info.Dir, tr.info.ShmPath} {
			if p == "" || p == "/dev/shm" {
				continue
			}
			if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("pod %s: %s still exists (%v)", tr.id, p, err)
			}
		}
		if tr.veth != "" {
			if _, err := net.InterfaceByName(tr.veth); err == nil {
				t.Errorf("pod %s: host veth %s still exists", tr.id, tr.veth)
			}
		}
		if tr.veth != "" && tr.lease == "" {
			t.Errorf("pod %s: no IPAM lease in %v held its address while it ran, so a lease left behind would not be seen either", tr.id, ipamDirs)
		}
		for p, content := range leases {
			if strings.Contains(content, tr.id) {
				t.Errorf("pod %s: IPAM lease %s still held by it", tr.id, p)
			}
		}
		if tr.info.Peapod {
			if dirs := cgroupDirs(tr.info.CgroupParent); len(dirs) > 0 {
				t.Errorf("pod %s: cgroup left: %v", tr.id, dirs)
			}
		}
		if strings.Contains(rules, tr.id) {
			var lines []string
			for l := range strings.Lines(rules) {
				if strings.Contains(l, tr.id) {
					lines = append(lines, strings.TrimSpace(l))
				}
			}
			t.Errorf("pod %s: firewall rules still mention it:\n%s", tr.id, strings.Join(lines, "\n"))
		}
	}
}

// daemonPID is the runtime's pid if known (the suite's peapod or -endpoint-pid), else 0.
func daemonPID(env *framework.Env) int {
	if env.Daemon != nil {
		return env.Daemon.PID()
	}
	return 0
}

// readTrim reads a file and trims surrounding space.
func readTrim(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return strings.TrimSpace(string(b))
}
