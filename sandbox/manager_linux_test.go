package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap/zaptest"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/internal/testutil"
	"github.com/peapod-runtime/peapod/netns/cni"
	"github.com/peapod-runtime/peapod/store"
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func repoRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

type fixture struct {
	m *Manager
	// opts made m: a second Manager with them is the next daemon.
	opts    Options
	state   string
	bridge  string
	tierDir string
}

// newFixture builds a Manager on the real kernel with a network and cgroup tier of the
// test's own, and checks at the end that nothing of it is left.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "iptables")
	root := repoRoot(t)
	bin := filepath.Join(root, "bin", "cni")
	if out, err := exec.Command(filepath.Join(root, "hack", "build-cni.sh"), bin).CombinedOutput(); err != nil {
		t.Fatalf("build cni plugins: %v\n%s", err, out)
	}
	suffix := randHex(3)
	state := t.TempDir()
	db, err := store.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var octet [1]byte
	_, _ = rand.Read(octet[:])
	f := &fixture{state: state, bridge: "ppsb" + suffix, tierDir: "peapod-sbtest-" + suffix}
	network, err := cni.New(cni.Config{
		ConfDir: filepath.Join(state, "nonet"), BinDirs: []string{bin}, CacheDir: filepath.Join(state, "cni"),
		NetworkName: "ppsb" + suffix, Bridge: f.bridge, SkipLoopback: true, Subnet: fmt.Sprintf("10.198.%d.0/24", octet[0]),
		// Its own leases, not in the node's lease directory.
		IPAMDataDir: filepath.Join(state, "networks"),
	}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	cg, err := cgroups.NewManager("cgroupfs", zaptest.NewLogger(t), cgroups.WithTierRoot(f.tierDir))
	if err != nil {
		t.Fatal(err)
	}
	f.opts = Options{DB: db, Logger: zaptest.NewLogger(t), StateDir: state, Network: network, Cgroups: cg}
	f.m, err = New(t.Context(), f.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, sb := range f.m.List(Filter{}) {
			if err := f.m.Remove(ctx, sb.ID); err != nil {
				t.Errorf("cleanup remove %s: %v", sb.ID, err)
			}
		}
		if err := f.m.WaitTeardowns(ctx); err != nil {
			t.Error(err)
		}
		_ = exec.Command("ip", "link", "del", f.bridge).Run()
		if err := network.RemoveMasquerade(); err != nil {
			t.Errorf("remove masquerade rule: %v", err)
		}
		for _, ctrl := range []string{"cpu", "memory", "pids", "cpuset", "blkio", "devices", "freezer", "cpuacct", "hugetlb", "net_cls", "perf_event", "systemd", "unified"} {
			base := filepath.Join("/sys/fs/cgroup", ctrl, f.tierDir)
			for _, d := range []string{"burstable", "besteffort", ""} {
				_ = os.Remove(filepath.Join(base, d))
			}
		}
	})
	return f
}

func podConfig(name string) Config {
	return Config{
		Metadata: Metadata{Name: name, Namespace: "default", UID: "uid-" + name},
		Hostname: name,
		DNS:      &DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"svc.cluster.local"}, Options: []string{"ndots:5"}},
		Labels:   map[string]string{"app": name},
		Sysctls:  map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"},
		Hash:     "hash-" + name,
	}
}

func nsenter(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// leftovers lists what a removed pod may have left behind; livePods is how many pods of the
// fixture still exist (each holds one veth on the bridge).
func (f *fixture) leftovers(t *testing.T, sb Sandbox, livePods int) []string {
	if err := f.m.WaitTeardowns(t.Context()); err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, p := range []string{sb.Dir, filepath.Join(f.state, "ns", sb.ID)} {
		if _, err := os.Stat(p); err == nil {
			left = append(left, p)
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), sb.ID) {
		left = append(left, "a mount naming the pod")
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/cpu", sb.CgroupParent)); err == nil {
		left = append(left, "cgroup "+sb.CgroupParent)
	}
	ipt, _ := exec.Command("iptables-save").Output()
	if strings.Contains(string(ipt), sb.ID[:12]) {
		left = append(left, "an iptables rule naming the pod")
	}
	links, _ := exec.Command("ip", "-o", "link", "show", "master", f.bridge).Output()
	if n := len(strings.Fields(strings.TrimSpace(string(links)))); n > 0 && strings.Count(string(links), "\n") != livePods {
		left = append(left, "veths on "+f.bridge+": "+string(links))
	}
	leases, _ := filepath.Glob(filepath.Join(f.state, "cni", "networks", "*", "*"))
	for _, l := range leases {
		raw, _ := os.ReadFile(l)
		if strings.Contains(string(raw), sb.ID) {
			left = append(left, "IP lease "+l)
		}
	}
	return left
}

func TestPodLifecycleOnTheKernel(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	a, err := f.m.Run(ctx, podConfig("alpha"))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	b, err := f.m.Run(ctx, podConfig("beta"))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(a.IPs) == 0 || len(b.IPs) == 0 || a.IPs[0] == b.IPs[0] {
		t.Fatalf("IPs: %v and %v", a.IPs, b.IPs)
	}
	if a.NetNSPath == b.NetNSPath || a.NetNSPath == "" {
		t.Fatalf("netns pins %q %q", a.NetNSPath, b.NetNSPath)
	}
	if got := nsenter(t, "--uts="+a.UTSPath, "hostname"); got != "alpha" {
		t.Errorf("hostname inside = %q", got)
	}
	if got := nsenter(t, "--net="+a.NetNSPath, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"); got != "0" {
		t.Errorf("sysctl inside = %q", got)
	}
	if host, _ := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); strings.TrimSpace(string(host)) == "0" {
		t.Errorf("sysctl leaked to the host")
	}
	if out := nsenter(t, "--net="+a.NetNSPath, "ip", "-o", "addr"); !strings.Contains(out, "127.0.0.1") || !strings.Contains(out, a.IPs[0]) {
		t.Errorf("addresses inside: %s", out)
	}
	if out, err := exec.Command("nsenter", "--net="+a.NetNSPath, "busybox", "ping", "-c1", "-W2", b.IPs[0]).CombinedOutput(); err != nil {
		t.Errorf("alpha cannot reach beta at %s: %v\n%s", b.IPs[0], err, out)
	}
	resolv, _ := os.ReadFile(a.ResolvPath)
	for _, want := range []string{"nameserver 10.0.0.10", "search svc.cluster.local", "options ndots:5"} {
		if !strings.Contains(string(resolv), want) {
			t.Errorf("resolv.conf lacks %q:\n%s", want, resolv)
		}
	}
	if a.QoS != cgroups.BestEffort.String() || !strings.HasSuffix(a.CgroupParent, "/besteffort/poduid-alpha") {
		t.Errorf("cgroup %s qos %s", a.CgroupParent, a.QoS)
	}

	// Reads, filters, retries.
	if got, err := f.m.Get(a.ID[:10]); err != nil || got.ID != a.ID {
		t.Errorf("Get by prefix: %v %v", got.ID, err)
	}
	if got := f.m.List(Filter{LabelSelector: map[string]string{"app": "beta"}}); len(got) != 1 || got[0].ID != b.ID {
		t.Errorf("List by label: %v", got)
	}
	again, err := f.m.Run(ctx, podConfig("alpha"))
	if err != nil || again.ID != a.ID {
		t.Errorf("retry of the same config: %v %v", again.ID, err)
	}
	other := podConfig("alpha")
	other.Hash = "different"
	if _, err := f.m.Run(ctx, other); !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), a.ID) {
		t.Errorf("different config under a taken name: %v", err)
	}

	for i := 0; i < 2; i++ {
		if err := f.m.Stop(ctx, a.ID); err != nil {
			t.Fatalf("Stop #%d: %v", i, err)
		}
	}
	if got, _ := f.m.Get(a.ID); got.State != StateNotReady {
		t.Errorf("state after stop = %s", got.State)
	}
	if err := f.m.Remove(ctx, a.ID); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if err := f.m.Remove(ctx, a.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second Remove: %v, want NotFound (the cri layer turns it into OK)", err)
	}
	if left := f.leftovers(t, a, 1); len(left) > 0 {
		t.Errorf("left after remove: %v", left)
	}
	if _, err := f.m.Run(ctx, podConfig("alpha")); err != nil {
		t.Errorf("name not freed by remove: %v", err)
	}
}

func TestHostNamespacesAndBadInput(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	cfg := podConfig("host")
	cfg.Sysctls = nil
	cfg.Namespaces = NamespaceOptions{Network: ModeNode, IPC: ModeNode, PID: ModeNode}
	sb, err := f.m.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sb.NetNSPath != "" || sb.IPCPath != "" || len(sb.IPs) != 0 || sb.ShmPath != "/dev/shm" {
		t.Errorf("host pod got its own namespaces: %+v", sb)
	}
	bad := podConfig("bad")
	bad.Sysctls = map[string]string{"vm.swappiness": "10"}
	if _, err := f.m.Run(ctx, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("non-namespaced sysctl: %v", err)
	}
	bad.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
	bad.Namespaces.Network = ModeNode
	if _, err := f.m.Run(ctx, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("net sysctl on a hostNetwork pod: %v", err)
	}
	if len(f.m.List(Filter{})) != 1 {
		t.Errorf("a refused pod left a record")
	}
}

func TestFailedRunLeavesNothing(t *testing.T) {
	f := newFixture(t)
	cfg := podConfig("doomed")
	cfg.PortMappings = []PortMapping{{Protocol: "tcp", ContainerPort: 80, HostPort: 31999}}
	// A CPU this machine does not have: the pod cgroup cannot take it, after namespaces,
	// sysctls and /dev/shm exist.
	cfg.Resources = &cgroups.Resources{CpusetCpus: "1000"}
	if _, err := f.m.Run(t.Context(), cfg); err == nil {
		t.Fatal("Run succeeded")
	}
	if n := len(f.m.List(Filter{})); n != 0 {
		t.Fatalf("%d records after a failed run", n)
	}
	entries, _ := os.ReadDir(filepath.Join(f.state, "ns"))
	pods, _ := os.ReadDir(filepath.Join(f.state, "pods"))
	if len(entries)+len(pods) != 0 {
		t.Errorf("left behind: ns %v pods %v", entries, pods)
	}
	if _, err := f.m.Run(t.Context(), podConfig("doomed")); err != nil {
		t.Errorf("name still reserved after a failed run: %v", err)
	}
}

func TestConcurrentPods(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	ids := make(chan Sandbox, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := podConfig(fmt.Sprintf("p%d", i))
			sb, err := f.m.Run(ctx, cfg)
			if err != nil {
				errs <- err
				return
			}
			ids <- sb
		}()
	}
	wg.Wait()
	close(errs)
	close(ids)
	for err := range errs {
		t.Errorf("Run: %v", err)
	}
	var all []Sandbox
	for sb := range ids {
		all = append(all, sb)
	}
	start := time.Now()
	for _, sb := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.m.Remove(ctx, sb.ID); err != nil {
				t.Errorf("Remove: %v", err)
			}
		}()
	}
	wg.Wait()
	t.Logf("removed %d pods in %v", len(all), time.Since(start))
	for _, sb := range all {
		if left := f.leftovers(t, sb, 0); len(left) > 0 {
			t.Errorf("pod %s left %v", sb.ID, left)
		}
	}
}
