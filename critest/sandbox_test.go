package critest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestSandboxValidation: a config without metadata name, namespace or uid is InvalidArgument
// naming the missing field, an unknown runtime handler is refused, and a refused request
// leaves no pod behind.
func TestSandboxValidation(t *testing.T) {
	env := framework.Shared(t)
	ctx := framework.Context(t)
	for _, tc := range []struct {
		name    string
		change  func(*runtimeapi.PodSandboxConfig)
		handler string
		code    codes.Code // OK: any error
		names   []string
	}{
		{"no metadata", func(c *runtimeapi.PodSandboxConfig) { c.Metadata = nil }, "", codes.InvalidArgument, []string{"metadata"}},
		{"no name", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "" }, "", codes.InvalidArgument, []string{"name"}},
		{"no namespace", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Namespace = "" }, "", codes.InvalidArgument, []string{"namespace"}},
		{"no uid", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Uid = "" }, "", codes.InvalidArgument, []string{"uid"}},
		{"run_as_group without run_as_user", func(c *runtimeapi.PodSandboxConfig) {
			c.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{RunAsGroup: &runtimeapi.Int64Value{Value: 2000}}}
		}, "", codes.InvalidArgument, []string{"run_as_group"}},
		{"negative run_as_user", func(c *runtimeapi.PodSandboxConfig) {
			c.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{RunAsUser: &runtimeapi.Int64Value{Value: -1}}}
		}, "", codes.InvalidArgument, []string{"run_as_user"}},
		{"unknown runtime handler", nil, "no-such-handler-" + randomSuffix(), codes.OK, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			label := podLabel(t)
			removeLabelled(t, env.Runtime, label)
			cfg := podConfig(t, "invalid", label)
			if tc.change != nil {
				tc.change(cfg)
			}
			id, err := env.Runtime.RunPodSandbox(ctx, cfg, tc.handler)
			if err == nil {
				t.Fatalf("RunPodSandbox succeeded (pod %s), want an error", id)
			}
			if tc.code != codes.OK {
				wantCode(t, "RunPodSandbox", err, tc.code, tc.names...)
			}
			if tc.handler != "" && !strings.Contains(err.Error(), tc.handler) {
				t.Errorf("error %q does not name the handler %q", err, tc.handler)
			}
			pods, err := env.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{testLabelKey: label}})
			if err != nil || len(pods) != 0 {
				t.Errorf("refused RunPodSandbox left %d pods (%v)", len(pods), err)
			}
		})
	}
}

// TestSandboxNameReservation: the same config again (a kubelet retry) gets the same pod; the
// same metadata with another config while the first pod exists is AlreadyExists naming it; a
// new attempt is a new pod; once removed, the name is free again.
func TestSandboxNameReservation(t *testing.T) {
	env := framework.Shared(t)
	ctx := framework.Context(t)
	label := podLabel(t)
	removeLabelled(t, env.Runtime, label)
	cfg := podConfig(t, "reserved", label)
	first := runPod(t, env.Runtime, cfg, "")

	again, err := env.Runtime.RunPodSandbox(ctx, cfg, "")
	if err != nil || again != first {
		t.Errorf("same config again: pod %q, %v; want the first pod %s", again, err, first)
	}
	other := podConfig(t, "reserved", label)
	other.Metadata = cfg.Metadata
	other.Hostname = "another-hostname"
	_, err = env.Runtime.RunPodSandbox(ctx, other, "")
	wantCode(t, "same metadata, another config", err, codes.AlreadyExists, first)

	next := podConfig(t, "reserved", label)
	next.Metadata = &runtimeapi.PodSandboxMetadata{Name: cfg.Metadata.Name, Namespace: cfg.Metadata.Namespace, Uid: cfg.Metadata.Uid, Attempt: 1}
	if id, err := env.Runtime.RunPodSandbox(ctx, next, ""); err != nil || id == first {
		t.Errorf("attempt 1: pod %q, %v; want a new pod", id, err)
	} else {
		_ = env.Runtime.StopPodSandbox(ctx, id)
		if err := env.Runtime.RemovePodSandbox(ctx, id); err != nil {
			t.Error(err)
		}
	}

	if err := env.Runtime.StopPodSandbox(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := env.Runtime.RemovePodSandbox(ctx, first); err != nil {
		t.Fatal(err)
	}
	if id, err := env.Runtime.RunPodSandbox(ctx, other, ""); err != nil || id == first {
		t.Errorf("the other config once the first pod is removed: pod %q, %v; want a new pod", id, err)
	}
	pods, err := env.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{testLabelKey: label}})
	if err != nil || len(pods) != 1 {
		t.Errorf("ListPodSandbox: %d pods (%v), want 1", len(pods), err)
	}
}

// TestSandboxNetwork: two pods get their own network namespaces and distinct addresses (in
// peapod's built-in 10.89.0.0/16), reach each other, have lo up with 127.0.0.1, carry the
// configured hostname in their UTS namespace and the DNS config in their resolv.conf.
func TestSandboxNetwork(t *testing.T) {
	testutilRoot(t)
	env := framework.Shared(t)
	label := podLabel(t)
	removeLabelled(t, env.Runtime, label)
	dns := &runtimeapi.DNSConfig{
		Servers:  []string{"10.96.0.10", "10.96.0.11"},
		Searches: []string{"critest.svc.cluster.local", "svc.cluster.local"},
		Options:  []string{"ndots:5", "timeout:2"},
	}
	var ids [2]string
	var infos [2]podInfo
	for i := range ids {
		cfg := podConfig(t, fmt.Sprintf("net-%d-%s", i, randomSuffix()), label)
		cfg.DnsConfig = dns
		ids[i] = runPod(t, env.Runtime, cfg, "")
		info, st := inspectPod(t, env.Runtime, ids[i])
		infos[i] = info
		if info.NetNS == "" || info.UTS == "" {
			t.Fatalf("pod %d: no network or UTS namespace in the verbose info:\n%s", i, info.Raw)
		}
		ip := net.ParseIP(st.GetNetwork().GetIp())
		if ip == nil || ip.To4() == nil {
			t.Fatalf("pod %d: status IP %q is not an IPv4 address", i, st.GetNetwork().GetIp())
		}
		if info.Peapod {
			if !builtinSubnet.Contains(ip) {
				t.Errorf("pod %d: IP %s is not in peapod's built-in %s", i, ip, builtinSubnet)
			}
			if len(info.IPs) == 0 || info.IPs[0] != ip.String() {
				t.Errorf("pod %d: status IP %s, verbose ips %v", i, ip, info.IPs)
			}
		}

		t.Run(fmt.Sprintf("pod %d lo", i), func(t *testing.T) {
			link, err := inNetNS(t, info.NetNS, "ip", "-o", "link", "show", "lo")
			if err != nil {
				t.Fatal(err)
			}
			if flags := link[strings.Index(link, "<"):strings.Index(link, ">")]; !strings.Contains(flags, "UP") {
				t.Errorf("lo is not up: %q", link)
			}
			addr, err := inNetNS(t, info.NetNS, "ip", "-o", "-4", "addr", "show", "dev", "lo")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(addr, "inet 127.0.0.1/8") {
				t.Errorf("lo has no 127.0.0.1/8: %q", addr)
			}
		})
		t.Run(fmt.Sprintf("pod %d hostname", i), func(t *testing.T) {
			out, err := cmdOutput(t, 10*time.Second, "nsenter", "--uts="+info.UTS, "--", "cat", "/proc/sys/kernel/hostname")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out); got != cfg.Hostname {
				t.Errorf("hostname in the pod's UTS namespace %q, want %q", got, cfg.Hostname)
			}
			if info.HostnamePath != "" {
				if got := readTrim(t, info.HostnamePath); got != cfg.Hostname {
					t.Errorf("%s holds %q, want %q", info.HostnamePath, got, cfg.Hostname)
				}
			}
		})
		t.Run(fmt.Sprintf("pod %d resolv.conf", i), func(t *testing.T) {
			if info.ResolvPath == "" {
				t.Skip("SKIP-REASON: the runtime's verbose info does not say where the pod's resolv.conf is")
			}
			got := strings.Split(readTrim(t, info.ResolvPath), "\n")
			want := []string{
				"nameserver 10.96.0.10",
				"nameserver 10.96.0.11",
				"search critest.svc.cluster.local svc.cluster.local",
				"options ndots:5 timeout:2",
			}
			for _, w := range want {
				if !slices.Contains(got, w) {
					t.Errorf("resolv.conf lacks %q:\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}
	if infos[0].NetNS == infos[1].NetNS || pinnedNS(t, "net", infos[0].NetNS) == pinnedNS(t, "net", infos[1].NetNS) {
		t.Errorf("both pods share network namespace %s", infos[0].NetNS)
	}
	if self := nsLink(t, os.Getpid(), "net"); pinnedNS(t, "net", infos[0].NetNS) == self {
		t.Errorf("the pod's network namespace is the node's (%s)", self)
	}
	st0, _ := env.Runtime.PodSandboxStatus(framework.Context(t), ids[0], false)
	st1, _ := env.Runtime.PodSandboxStatus(framework.Context(t), ids[1], false)
	ip0, ip1 := st0.GetStatus().GetNetwork().GetIp(), st1.GetStatus().GetNetwork().GetIp()
	if ip0 == ip1 {
		t.Fatalf("both pods have IP %s", ip0)
	}
	t.Run("pods reach each other", func(t *testing.T) {
		for _, c := range []struct{ from, to string }{{infos[0].NetNS, ip1}, {infos[1].NetNS, ip0}} {
			var err error
			for range 3 {
				if _, err = inNetNS(t, c.from, "busybox", "ping", "-c1", "-W1", c.to); err == nil {
					break
				}
			}
			if err != nil {
				t.Errorf("ping %s from %s: %v", c.to, c.from, err)
			}
		}
	})
}

// testutilRoot skips unless root: the tests that look at the kernel need it (nsenter, /proc).
func testutilRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP-REASON: needs root to enter pod namespaces and read their kernel state")
	}
}

// TestSandboxHostNamespaces: a pod with network, PID and IPC in the node's namespaces gets no
// pinned namespace of its own and no IP (no CNI), and its container sees the node's network,
// IPC, UTS and PID namespaces; hostNetwork alone keeps a private IPC namespace.
func TestSandboxHostNamespaces(t *testing.T) {
	testutilRoot(t)
	self := os.Getpid()
	node := runtimeapi.NamespaceMode_NODE
	t.Run("network, pid and ipc", func(t *testing.T) {
		pod := newTestPod(t, "host-ns", func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: node, Pid: node, Ipc: node},
			}
		})
		info, st := inspectPod(t, pod.rt, pod.id)
		if info.NetNS != "" || info.IPC != "" {
			t.Errorf("node namespaces: pod has its own network %q or IPC %q namespace", info.NetNS, info.IPC)
		}
		if info.Peapod && info.UTS != "" {
			t.Errorf("a hostNetwork pod keeps the node's UTS namespace, got a pin %q", info.UTS)
		}
		if ip := st.GetNetwork().GetIp(); ip != "" || len(info.IPs) > 0 {
			t.Errorf("hostNetwork pod reports IP %q (verbose %v), want none", ip, info.IPs)
		}
		opts := st.GetLinux().GetNamespaces().GetOptions()
		if opts.GetNetwork() != node || opts.GetPid() != node || opts.GetIpc() != node {
			t.Errorf("status namespace options %v, want NODE for network, pid and ipc", opts)
		}
		for p, content := range ipamLeases(t) {
			if strings.Contains(content, pod.id) {
				t.Errorf("hostNetwork pod holds IPAM lease %s", p)
			}
		}
		id := pod.run(t, sleeper("c", framework.ImageBusybox, &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: node, Pid: node, Ipc: node},
		}))
		pid := pod.pid(t, id)
		for _, ns := range []string{"net", "ipc", "uts", "pid"} {
			if got, want := nsLink(t, pid, ns), nsLink(t, self, ns); got != want {
				t.Errorf("container %s namespace %s, want the node's %s", ns, got, want)
			}
		}
	})
	t.Run("network only", func(t *testing.T) {
		pod := newTestPod(t, "host-net", func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: node, Pid: runtimeapi.NamespaceMode_CONTAINER},
			}
		})
		info, _ := inspectPod(t, pod.rt, pod.id)
		if info.NetNS != "" {
			t.Errorf("hostNetwork pod has its own network namespace %q", info.NetNS)
		}
		if info.IPC == "" {
			t.Fatalf("pod IPC namespace missing from the verbose info:\n%s", info.Raw)
		}
		if got := pinnedNS(t, "ipc", info.IPC); got == nsLink(t, self, "ipc") {
			t.Errorf("pod IPC namespace is the node's (%s)", got)
		}
	})
}

// TestSandboxSysctls: namespaced sysctls apply inside the pod's namespaces and not on the
// node; a node-wide sysctl, and a net.* (ipc) one for a pod in the node's network (IPC)
// namespace, are InvalidArgument naming the sysctl, and leave no pod behind.
func TestSandboxSysctls(t *testing.T) {
	testutilRoot(t)
	env := framework.Shared(t)
	ctx := framework.Context(t)
	label := podLabel(t)
	removeLabelled(t, env.Runtime, label)
	const (
		portStart = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
		rmid      = "/proc/sys/kernel/shm_rmid_forced"
	)
	hostPort, hostRmid := readTrim(t, portStart), readTrim(t, rmid)

	t.Run("applied inside", func(t *testing.T) {
		cfg := podConfig(t, "sysctl", label)
		cfg.Linux.Sysctls = map[string]string{
			"net.ipv4.ip_unprivileged_port_start": "0",
			"kernel.shm_rmid_forced":              "1",
			"net/ipv4/ping_group_range":           "0 2147483647",
		}
		id := runPod(t, env.Runtime, cfg, "")
		info, _ := inspectPod(t, env.Runtime, id)
		if info.NetNS == "" || info.IPC == "" {
			t.Fatalf("no network or IPC namespace in the verbose info:\n%s", info.Raw)
		}
		for _, c := range []struct{ flag, file, want string }{
			{"--net=" + info.NetNS, portStart, "0"},
			{"--ipc=" + info.IPC, rmid, "1"},
			{"--net=" + info.NetNS, "/proc/sys/net/ipv4/ping_group_range", "0\t2147483647"},
		} {
			out, err := cmdOutput(t, 10*time.Second, "nsenter", c.flag, "--", "cat", c.file)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out); got != c.want {
				t.Errorf("%s inside the pod: %q, want %q", c.file, got, c.want)
			}
		}
		if got := readTrim(t, portStart); got != hostPort {
			t.Errorf("node's %s changed: %s, was %s", portStart, got, hostPort)
		}
		if got := readTrim(t, rmid); got != hostRmid {
			t.Errorf("node's %s changed: %s, was %s", rmid, got, hostRmid)
		}
	})

	node := runtimeapi.NamespaceMode_NODE
	for _, tc := range []struct {
		name   string
		sysctl string
		ns     *runtimeapi.NamespaceOption
	}{
		{"node-wide sysctl", "vm.swappiness", nil},
		{"net sysctl with hostNetwork", "net.ipv4.ip_unprivileged_port_start", &runtimeapi.NamespaceOption{Network: node}},
		{"ipc sysctl with hostIPC", "kernel.shm_rmid_forced", &runtimeapi.NamespaceOption{Ipc: node}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused := podLabel(t)
			removeLabelled(t, env.Runtime, refused)
			cfg := podConfig(t, "sysctl-refused", refused)
			cfg.Linux.Sysctls = map[string]string{tc.sysctl: "1"}
			if tc.ns != nil {
				cfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: tc.ns}
			}
			id, err := env.Runtime.RunPodSandbox(ctx, cfg, "")
			if err == nil {
				t.Fatalf("RunPodSandbox succeeded (pod %s)", id)
			}
			wantCode(t, "RunPodSandbox", err, codes.InvalidArgument, tc.sysctl)
			pods, err := env.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{testLabelKey: refused}})
			if err != nil || len(pods) != 0 {
				t.Errorf("refused pod left %d pods behind (%v)", len(pods), err)
			}
		})
	}
}

// TestSandboxHostPort: a hostPort mapping forwards 127.0.0.1:<hostPort> on the node to a
// listener in the pod's network namespace; after removal no firewall rule names the pod.
func TestSandboxHostPort(t *testing.T) {
	testutilRoot(t)
	env := framework.Shared(t)
	label := podLabel(t)
	removeLabelled(t, env.Runtime, label)
	hostPort := int32(30000 + rand.IntN(10000))
	cfg := podConfig(t, "hostport", label)
	cfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080, HostPort: hostPort}}
	id := runPod(t, env.Runtime, cfg, "")
	tr := tracePod(t, env.Runtime, id)
	if !tr.rules {
		t.Errorf("no firewall rule mentions hostPort pod %s while it runs: a rule left behind would not be seen either", id)
	}

	var out bytes.Buffer
	nc := exec.Command("nsenter", "--net="+tr.info.NetNS, "--", "busybox", "nc", "-l", "-p", "8080")
	nc.Stdout, nc.Stderr = &out, &out
	if err := nc.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- nc.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(nc.Process.Pid, syscall.SIGKILL)
		<-done
	})

	msg := "hello through hostPort " + randomSuffix()
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(hostPort))
	deadline := time.Now().Add(15 * time.Second)
	var lastErr error
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_, err = c.Write([]byte(msg + "\n"))
			_ = c.Close()
			if err == nil {
				break
			}
		}
		lastErr = err
		if time.Now().After(deadline) {
			t.Fatalf("connect to %s: %v", addr, lastErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case <-done:
		done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatalf("the listener in the pod did not finish; output so far %q", out.String())
	}
	if !strings.Contains(out.String(), msg) {
		t.Errorf("the listener in the pod received %q, want %q", out.String(), msg)
	}

	ctx := framework.Context(t)
	if !strings.Contains(firewallRules(t), id) && tr.info.Peapod {
		t.Logf("note: no firewall rule names pod %s while it has a hostPort", id)
	}
	if err := env.Runtime.StopPodSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := env.Runtime.RemovePodSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	checkPodsGone(t, env, tr)
	if c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond); err == nil {
		_ = c.Close()
		t.Errorf("%s still accepts connections after the pod was removed", addr)
	}
}

// TestSandboxCgroups: a kubelet's CgroupParent is the pod cgroup exactly; without one, the pod
// goes into peapod's QoS tiers by its declared resources (the tier's settings and the pod's
// limits applied), and removal deletes the pod cgroup.
func TestSandboxCgroups(t *testing.T) {
	testutilRoot(t)
	env := framework.Shared(t)
	ctx := framework.Context(t)
	label := podLabel(t)
	removeLabelled(t, env.Runtime, label)
	v2 := false
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		v2 = true
	}
	cgDir := func(cg string) string {
		if v2 {
			return filepath.Join("/sys/fs/cgroup", cg)
		}
		return filepath.Join("/sys/fs/cgroup/cpu", cg)
	}

	t.Run("kubelet parent", func(t *testing.T) {
		cfg := podConfig(t, "cg-kubelet", label)
		// Under a cgroup root of the test's own (a kubelet's --cgroup-root): a live kubelet on
		// this node (the e2e package's cluster, running beside this one) removes the pod
		// cgroups it does not know from its /kubepods; in CI on this VM this pod's vanished
		// between its start and the test's look, which is most likely how.
		root := "/critest-" + cfg.Metadata.Uid[:8]
		parent := root + "/kubepods/burstable/pod" + cfg.Metadata.Uid
		cfg.Linux.CgroupParent = parent
		// Remove the tree this test creates, where nothing else uses it; the cleanup runs
		// after the pod's own.
		var created []string
		hierarchies, _ := filepath.Glob("/sys/fs/cgroup/*")
		for _, d := range []string{root, root + "/kubepods", root + "/kubepods/burstable"} {
			for _, h := range hierarchies {
				p := filepath.Join(h, d)
				if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
					created = append(created, p)
				}
			}
		}
		t.Cleanup(func() {
			for _, h := range hierarchies {
				_ = syscall.Rmdir(filepath.Join(h, parent))
			}
			slices.SortFunc(created, func(a, b string) int { return len(b) - len(a) })
			for _, p := range created {
				_ = syscall.Rmdir(p) // fails harmlessly when something else is inside
			}
		})
		id := runPod(t, env.Runtime, cfg, "")
		info, _ := inspectPod(t, env.Runtime, id)
		if _, err := os.Stat(cgDir(parent)); err != nil {
			t.Errorf("pod cgroup %s: %v", cgDir(parent), err)
		}
		if info.Peapod && info.CgroupParent != parent {
			t.Errorf("pod cgroup %q, want the kubelet's %q exactly", info.CgroupParent, parent)
		}
		if err := env.Runtime.StopPodSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := env.Runtime.RemovePodSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
		if info.Peapod {
			if dirs := cgroupDirs(parent); len(dirs) > 0 {
				t.Errorf("pod cgroup left after remove: %v", dirs)
			}
		}
	})

	t.Run("tiers", func(t *testing.T) {
		framework.RequirePeapod(t)
		for _, tc := range []struct {
			name   string
			res    *runtimeapi.LinuxContainerResources
			qos    string
			tier   string
			files  map[string]string // v1 files of the pod cgroup
			shares string            // the tier's cpu.shares
		}{
			{name: "besteffort", qos: "besteffort", tier: "/peapod/besteffort/pod", shares: "2"},
			{name: "burstable", res: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 200 * mib, CpuShares: 102},
				qos: "burstable", tier: "/peapod/burstable/pod",
				files: map[string]string{"memory/memory.limit_in_bytes": "209715200"}},
			{name: "guaranteed", res: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 70000, CpuShares: 716, MemoryLimitInBytes: 209715200},
				qos: "guaranteed", tier: "/peapod/pod",
				files: map[string]string{"cpu/cpu.shares": "716", "cpu/cpu.cfs_quota_us": "70000", "cpu/cpu.cfs_period_us": "100000",
					"memory/memory.limit_in_bytes": "209715200"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cfg := podConfig(t, "cg-"+tc.name, label)
				cfg.Linux.Resources = tc.res
				id := runPod(t, env.Runtime, cfg, "")
				tr := tracePod(t, env.Runtime, id)
				want := tc.tier + cfg.Metadata.Uid
				if tr.info.CgroupParent != want || !strings.EqualFold(tr.info.QoS, tc.qos) {
					t.Errorf("pod cgroup %q tier %q, want %q %q", tr.info.CgroupParent, tr.info.QoS, want, tc.qos)
				}
				if _, err := os.Stat(cgDir(want)); err != nil {
					t.Errorf("pod cgroup: %v", err)
				}
				if !v2 {
					for f, v := range tc.files {
						ctrl, file := filepath.Split(f)
						if got := readTrim(t, filepath.Join("/sys/fs/cgroup", ctrl, want, file)); got != v {
							t.Errorf("pod cgroup %s = %s, want %s", f, got, v)
						}
					}
					if tc.shares != "" {
						if got := readTrim(t, filepath.Join("/sys/fs/cgroup/cpu", filepath.Dir(want), "cpu.shares")); got != tc.shares {
							t.Errorf("tier %s cpu.shares = %s, want %s", filepath.Dir(want), got, tc.shares)
						}
					}
				}
				if err := env.Runtime.StopPodSandbox(ctx, id); err != nil {
					t.Fatal(err)
				}
				if err := env.Runtime.RemovePodSandbox(ctx, id); err != nil {
					t.Fatal(err)
				}
				checkPodsGone(t, env, tr)
			})
		}
	})
}

// TestSandboxStatus: PodSandboxStatus reports the pod's id, metadata, state, creation time,
// IP, namespace options, labels, annotations and runtime handler, and verbose info; after
// StopPodSandbox the pod is NOTREADY and still reported.
func TestSandboxStatus(t *testing.T) {
	env := framework.Shared(t)
	ctx := framework.Context(t)
	label := podLabel(t)
	removeLabelled(t, env.Runtime, label)
	for _, handler := range []string{"", "runc"} {
		t.Run("handler "+fmt.Sprintf("%q", handler), func(t *testing.T) {
			cfg := podConfig(t, "status", label)
			cfg.Labels["app"] = "status"
			cfg.Annotations = map[string]string{"critest.peapod.io/note": "annotated " + randomSuffix()}
			cfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
				Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD,
			}}
			before := time.Now()
			id := runPod(t, env.Runtime, cfg, handler)
			after := time.Now()

			resp, err := env.Runtime.PodSandboxStatus(ctx, id, true)
			if err != nil {
				t.Fatal(err)
			}
			st := resp.GetStatus()
			if st.GetId() != id {
				t.Errorf("id %q, want %q", st.GetId(), id)
			}
			if m := st.GetMetadata(); m.GetName() != cfg.Metadata.Name || m.GetNamespace() != cfg.Metadata.Namespace || m.GetUid() != cfg.Metadata.Uid || m.GetAttempt() != 0 {
				t.Errorf("metadata %v, want %v", m, cfg.Metadata)
			}
			if st.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY {
				t.Errorf("state %v, want READY", st.GetState())
			}
			if c := time.Unix(0, st.GetCreatedAt()); c.Before(before.Add(-time.Second)) || c.After(after.Add(time.Second)) {
				t.Errorf("created_at %v, not between %v and %v", c, before, after)
			}
			if ip := net.ParseIP(st.GetNetwork().GetIp()); ip == nil {
				t.Errorf("network ip %q", st.GetNetwork().GetIp())
			}
			if o := st.GetLinux().GetNamespaces().GetOptions(); o.GetNetwork() != runtimeapi.NamespaceMode_POD ||
				o.GetPid() != runtimeapi.NamespaceMode_CONTAINER || o.GetIpc() != runtimeapi.NamespaceMode_POD {
				t.Errorf("namespace options %v", o)
			}
			if !maps.Equal(st.GetLabels(), cfg.Labels) || !maps.Equal(st.GetAnnotations(), cfg.Annotations) {
				t.Errorf("labels %v annotations %v, want %v %v", st.GetLabels(), st.GetAnnotations(), cfg.Labels, cfg.Annotations)
			}
			if st.GetRuntimeHandler() != handler {
				t.Errorf("runtime handler %q, want %q", st.GetRuntimeHandler(), handler)
			}
			if len(resp.GetInfo()) == 0 || resp.GetInfo()["info"] == "" {
				t.Errorf("verbose info empty: %v", resp.GetInfo())
			}
			info, _ := inspectPod(t, env.Runtime, id)
			if info.Peapod && !strings.Contains(info.Raw, `"state":"ready"`) {
				t.Errorf("verbose pod record does not say ready: %s", info.Raw)
			}
			if quiet, err := env.Runtime.PodSandboxStatus(ctx, id, false); err != nil || len(quiet.GetInfo()) != 0 {
				t.Errorf("non-verbose status: info %v, %v; want none", quiet.GetInfo(), err)
			}

			if err := env.Runtime.StopPodSandbox(ctx, id); err != nil {
				t.Fatal(err)
			}
			resp, err = env.Runtime.PodSandboxStatus(ctx, id, true)
			if err != nil {
				t.Fatalf("status of a stopped pod: %v", err)
			}
			if resp.GetStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
				t.Errorf("state after stop %v, want NOTREADY", resp.GetStatus().GetState())
			}
			if resp.GetStatus().GetCreatedAt() != st.GetCreatedAt() {
				t.Errorf("created_at changed on stop: %d, then %d", st.GetCreatedAt(), resp.GetStatus().GetCreatedAt())
			}
		})
	}
}

// TestSandboxList: ListPodSandbox filters by exact id, unique id prefix, state and label
// selector (all combined with AND), and reports each pod's metadata, state, labels,
// annotations and creation time.
func TestSandboxList(t *testing.T) {
	env := framework.Shared(t)
	ctx := framework.Context(t)
	label := podLabel(t)
	removeLabelled(t, env.Runtime, label)
	mk := func(name, app string) (string, *runtimeapi.PodSandboxConfig) {
		cfg := podConfig(t, name, label)
		cfg.Labels["app"] = app
		cfg.Annotations = map[string]string{"critest.peapod.io/pod": name}
		return runPod(t, env.Runtime, cfg, ""), cfg
	}
	a, cfgA := mk("list-a", "a")
	b, _ := mk("list-b", "b")
	c, _ := mk("list-c", "a")
	if err := env.Runtime.StopPodSandbox(ctx, c); err != nil {
		t.Fatal(err)
	}
	ready := &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}
	notReady := &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}
	sel := func(kv ...string) map[string]string {
		m := map[string]string{testLabelKey: label}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		filter *runtimeapi.PodSandboxFilter
		want   []string
	}{
		{"label", &runtimeapi.PodSandboxFilter{LabelSelector: sel()}, []string{a, b, c}},
		{"id", &runtimeapi.PodSandboxFilter{Id: a}, []string{a}},
		{"id prefix", &runtimeapi.PodSandboxFilter{Id: a[:12]}, []string{a}},
		{"unknown id", &runtimeapi.PodSandboxFilter{Id: "0123456789abcdef0123456789abcdef-none"}, nil},
		{"ready", &runtimeapi.PodSandboxFilter{State: ready, LabelSelector: sel()}, []string{a, b}},
		{"notready", &runtimeapi.PodSandboxFilter{State: notReady, LabelSelector: sel()}, []string{c}},
		{"two labels", &runtimeapi.PodSandboxFilter{LabelSelector: sel("app", "a")}, []string{a, c}},
		{"labels and state", &runtimeapi.PodSandboxFilter{State: ready, LabelSelector: sel("app", "a")}, []string{a}},
		{"id and other state", &runtimeapi.PodSandboxFilter{Id: a, State: notReady}, nil},
		{"unmatched label", &runtimeapi.PodSandboxFilter{LabelSelector: sel("app", "none")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pods, err := env.Runtime.ListPodSandbox(ctx, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range pods {
				got = append(got, p.Id)
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("filter %v: %v, want %v", tc.filter, got, want)
			}
		})
	}
	pods, err := env.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{Id: a})
	if err != nil || len(pods) != 1 {
		t.Fatalf("list pod a: %v %v", pods, err)
	}
	p := pods[0]
	if p.GetMetadata().GetName() != cfgA.Metadata.Name || p.GetMetadata().GetUid() != cfgA.Metadata.Uid ||
		p.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY || p.GetCreatedAt() == 0 ||
		!maps.Equal(p.GetLabels(), cfgA.Labels) || !maps.Equal(p.GetAnnotations(), cfgA.Annotations) {
		t.Errorf("listed pod %v, want metadata %v labels %v annotations %v, READY, a creation time", p, cfgA.Metadata, cfgA.Labels, cfgA.Annotations)
	}
}

// TestSandboxStopRemove: StopPodSandbox and RemovePodSandbox succeed twice, and for an unknown
// id; RemovePodSandbox of a ready pod stops it first; after removal the runtime has
// forgotten the pod and nothing of it is left in the kernel: namespace pins and mounts, the
// host veth, the IPAM lease, the cgroup, firewall rules.
func TestSandboxStopRemove(t *testing.T) {
	testutilRoot(t)
	env := framework.Shared(t)
	ctx := framework.Context(t)
	label := podLabel(t)
	removeLabelled(t, env.Runtime, label)
	for _, tc := range []struct {
		name   string
		ns     *runtimeapi.NamespaceOption
		ports  bool
		noStop bool
	}{
		{name: "cni"},
		{name: "cni with hostPort", ports: true},
		{name: "hostNetwork", ns: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}},
		{name: "remove without stop", noStop: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := podConfig(t, "stop-remove", label)
			if tc.ns != nil {
				cfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: tc.ns}
			}
			if tc.ports {
				cfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: int32(40000 + rand.IntN(10000))}}
			}
			id := runPod(t, env.Runtime, cfg, "")
			tr := tracePod(t, env.Runtime, id)
			if tc.ports && !tr.rules {
				t.Errorf("no firewall rule mentions hostPort pod %s while it runs: a rule left behind would not be seen either", id)
			}
			if !tc.noStop {
				for i := range 2 {
					if err := env.Runtime.StopPodSandbox(ctx, id); err != nil {
						t.Fatalf("StopPodSandbox #%d: %v", i+1, err)
					}
				}
				if tr.veth != "" {
					waitNetworksGone(t, podTrace{id: tr.id, veth: tr.veth})
					if _, err := net.InterfaceByName(tr.veth); err == nil {
						t.Errorf("host veth %s still exists %v after stop", tr.veth, networkTeardownWait)
					}
				}
			}
			for i := range 2 {
				if err := env.Runtime.RemovePodSandbox(ctx, id); err != nil {
					t.Fatalf("RemovePodSandbox #%d: %v", i+1, err)
				}
			}
			if err := env.Runtime.StopPodSandbox(ctx, id); err != nil {
				t.Errorf("StopPodSandbox after remove: %v", err)
			}
			checkPodsGone(t, env, tr)
		})
	}
	t.Run("unknown id", func(t *testing.T) {
		const unknown = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff0000"
		if err := env.Runtime.StopPodSandbox(ctx, unknown); err != nil {
			t.Errorf("StopPodSandbox of an unknown pod: %v", err)
		}
		if err := env.Runtime.RemovePodSandbox(ctx, unknown); err != nil {
			t.Errorf("RemovePodSandbox of an unknown pod: %v", err)
		}
		_, err := env.Runtime.PodSandboxStatus(ctx, unknown, false)
		wantCode(t, "PodSandboxStatus of an unknown pod", err, codes.NotFound)
	})
}

// TestSandboxConcurrentNoLeak: 50 pods created at once, then stopped and removed at once,
// all get distinct addresses and leave nothing behind; the daemon's RSS and open files come
// back near where they were.
func TestSandboxConcurrentNoLeak(t *testing.T) {
	testutilRoot(t)
	if testing.Short() {
		t.Skip("SKIP-REASON: -short: 50 concurrent pods")
	}
	const n = 50
	env := framework.Shared(t)
	ctx := framework.Context(t)
	label := podLabel(t)
	removeLabelled(t, env.Runtime, label)

	// Warm up (first CNI run, tier cgroups, caches), so the baseline is a steady state.
	for range 3 {
		id := runPod(t, env.Runtime, podConfig(t, "warmup", label), "")
		_ = env.Runtime.StopPodSandbox(ctx, id)
		if err := env.Runtime.RemovePodSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	pid := daemonPID(env)
	var rssBefore int64
	var fdsBefore int
	if pid > 0 {
		rssBefore, _ = framework.ProcessRSS(pid)
		fds, _ := framework.ProcessFDs(pid)
		fdsBefore = len(fds)
	}

	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			ids[i], errs[i] = env.Runtime.RunPodSandbox(ctx, podConfig(t, fmt.Sprintf("many-%02d", i), label), "")
		})
	}
	wg.Wait()
	t.Logf("%d pods created concurrently in %v", n, time.Since(start).Round(time.Millisecond))
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	traces := make([]podTrace, n)
	ips := map[string]string{}
	for i, id := range ids {
		traces[i] = tracePod(t, env.Runtime, id)
		_, st := inspectPod(t, env.Runtime, id)
		ip := st.GetNetwork().GetIp()
		if other, dup := ips[ip]; dup || ip == "" {
			t.Errorf("pod %s: IP %q (also %q)", id, ip, other)
		}
		ips[ip] = id
	}

	start = time.Now()
	for i := range n {
		wg.Go(func() {
			if err := env.Runtime.StopPodSandbox(ctx, ids[i]); err != nil {
				errs[i] = fmt.Errorf("stop %s: %w", ids[i], err)
				return
			}
			if err := env.Runtime.RemovePodSandbox(ctx, ids[i]); err != nil {
				errs[i] = fmt.Errorf("remove %s: %w", ids[i], err)
			}
		})
	}
	wg.Wait()
	t.Logf("%d pods stopped and removed concurrently in %v", n, time.Since(start).Round(time.Millisecond))
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	checkPodsGone(t, env, traces...)

	if pid > 0 {
		rss, err := framework.ProcessRSS(pid)
		if err != nil {
			t.Fatal(err)
		}
		fds, _ := framework.ProcessFDs(pid)
		t.Logf("daemon RSS %.1f MiB before, %.1f MiB after; %d open files before, %d after",
			float64(rssBefore)/mib, float64(rss)/mib, fdsBefore, len(fds))
		if rss > rssBefore+64*mib || rss > 256*mib {
			t.Errorf("daemon RSS grew from %.1f MiB to %.1f MiB over %d pods", float64(rssBefore)/mib, float64(rss)/mib, n)
		}
		if len(fds) > fdsBefore+8 {
			t.Errorf("daemon open files grew from %d to %d over %d pods: %v", fdsBefore, len(fds), n, fds)
		}
	}
}

// TestSandboxRetryAfterTimeout: a kubelet whose RunPodSandbox times out retries with the same
// config; the retry returns the pod (not "name is reserved"), and there is exactly one.
func TestSandboxRetryAfterTimeout(t *testing.T) {
	env := framework.Shared(t)
	for _, d := range []time.Duration{time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond} {
		t.Run(d.String(), func(t *testing.T) {
			label := podLabel(t)
			removeLabelled(t, env.Runtime, label)
			cfg := podConfig(t, "retry", label)
			short, cancel := context.WithTimeout(framework.Context(t), d)
			first, firstErr := env.Runtime.RunPodSandbox(short, cfg, "")
			cancel()
			if firstErr != nil {
				if c := status.Code(firstErr); c != codes.DeadlineExceeded && c != codes.Canceled {
					t.Logf("timed-out RunPodSandbox: %v (code %v)", firstErr, c)
				}
			}
			id, err := env.Runtime.RunPodSandbox(framework.Context(t), cfg, "")
			if err != nil {
				t.Fatalf("retry after a %v timeout: %v", d, err)
			}
			if firstErr == nil && first != id {
				t.Errorf("retry returned pod %s, the first call %s", id, first)
			}
			pods, err := env.Runtime.ListPodSandbox(framework.Context(t), &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{testLabelKey: label}})
			if err != nil {
				t.Fatal(err)
			}
			if len(pods) != 1 || pods[0].Id != id || pods[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
				t.Errorf("after the retry: %v, want exactly pod %s, READY", pods, id)
			}
		})
	}
}
