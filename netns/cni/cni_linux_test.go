package cni_test

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/utils"
	"go.uber.org/zap/zaptest"

	"github.com/peapod-runtime/peapod/internal/testutil"
	"github.com/peapod-runtime/peapod/netns"
	"github.com/peapod-runtime/peapod/netns/cni"
)

// buildPlugins builds the plugins into the repository's bin/cni with hack/build-cni.sh (which
// returns at once when they are up to date) and returns that directory.
var buildPlugins = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	dir := filepath.Join(root, "bin", "cni")
	cmd := exec.Command(filepath.Join(root, "hack", "build-cni.sh"), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("hack/build-cni.sh: %w\n%s", err, out)
	}
	return dir, nil
})

func randHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func requireKernel(t testing.TB) string {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "iptables")
	testutil.RequireBinary(t, "iptables-save")
	testutil.RequireBinary(t, "ip")
	dir, err := buildPlugins()
	if err != nil {
		t.Fatalf("build cni plugins: %v", err)
	}
	return dir
}

// testNet is a network of the test's own: a unique bridge, network name and /24.
type testNet struct {
	cfg    cni.Config
	net    *cni.Network
	subnet *net.IPNet
}

func newTestNet(t testing.TB, confDir string) *testNet {
	t.Helper()
	bin := requireKernel(t)
	suffix := randHex(t, 3)
	var octet [1]byte
	_, _ = rand.Read(octet[:])
	tn := &testNet{cfg: cni.Config{
		ConfDir:     confDir,
		BinDirs:     []string{bin},
		CacheDir:    t.TempDir(),
		IPAMDataDir: t.TempDir(),
		NetworkName: "pptest-" + suffix,
		Bridge:      "pptest" + suffix,
		Subnet:      fmt.Sprintf("10.199.%d.0/24", octet[0]),
	}}
	_, tn.subnet, _ = net.ParseCIDR(tn.cfg.Subnet)
	tn.net = tn.newNetwork(t)
	t.Cleanup(func() {
		if err := tn.net.RemoveMasquerade(); err != nil {
			t.Errorf("remove masquerade rule: %v", err)
		}
		if out, err := exec.Command("ip", "link", "del", tn.cfg.Bridge).CombinedOutput(); err != nil &&
			!strings.Contains(string(out), "Cannot find device") {
			t.Errorf("delete bridge %s: %v: %s", tn.cfg.Bridge, err, out)
		}
	})
	return tn
}

// newNetwork is a second Network on the same config and cache: the daemon after a restart.
func (tn *testNet) newNetwork(t testing.TB) *cni.Network {
	t.Helper()
	n, err := cni.New(tn.cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newPod pins a fresh network namespace and returns the pod id and the pin path.
func newPod(t testing.TB) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ns")
	paths, err := netns.NewPinned(t.Context(), dir, "", netns.Net)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	return "pptest" + randHex(t, 16), paths[netns.Net]
}

func bridgePorts(t testing.TB, bridge string) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show", "master", bridge).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "does not exist") || strings.Contains(string(out), "Cannot find device") {
			return nil
		}
		t.Fatalf("ip link show master %s: %v: %s", bridge, err, out)
	}
	var ports []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			ports = append(ports, l)
		}
	}
	return ports
}

// checkReleased fails t if anything of the pod is left: a port on the bridge, a host-local
// lease, a libcni cache entry, or an iptables rule or chain of the pod.
func checkReleased(t testing.TB, cfg cni.Config, podID string) {
	t.Helper()
	// peapod0 is shared with any peapod running pods meanwhile (other test packages start
	// daemons): there, the caller checks its own pod's veth instead.
	for i := 0; cfg.Bridge != cni.DefaultBridge && len(bridgePorts(t, cfg.Bridge)) > 0; i++ {
		// A veth whose netns just died goes with the netns, a moment later.
		if i == 100 {
			t.Errorf("veths left on %s: %v", cfg.Bridge, bridgePorts(t, cfg.Bridge))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	leases, _ := os.ReadDir(filepath.Join(cfg.IPAMDataDir, cfg.NetworkName))
	for _, e := range leases {
		if net.ParseIP(e.Name()) != nil {
			t.Errorf("host-local lease left: %s", e.Name())
		}
	}
	results, _ := os.ReadDir(filepath.Join(cfg.CacheDir, "results"))
	for _, e := range results {
		if strings.Contains(e.Name(), podID) {
			t.Errorf("libcni cache entry left: %s", e.Name())
		}
	}
	out, err := exec.Command("iptables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v: %s", err, out)
	}
	needles := []string{
		podID,
		utils.FormatChainName(cfg.NetworkName, podID),
		utils.MustFormatChainNameWithPrefix(cfg.NetworkName, podID, "DN-"),
		utils.MustFormatChainNameWithPrefix(cfg.NetworkName, podID, "SN-"),
	}
	for _, l := range strings.Split(string(out), "\n") {
		for _, n := range needles {
			if strings.Contains(l, n) {
				t.Errorf("iptables rule of pod left: %s", l)
				break
			}
		}
	}
}

func listenIn(t testing.TB, nsPath, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := netns.Do(nsPath, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, nsPath, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	// Answer each connection with the address it came from.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = fmt.Fprintln(c, c.RemoteAddr().(*net.TCPAddr).IP)
			_ = c.Close()
		}
	}()
	return ln
}

// ask connects to addr (from nsPath's namespace, or the host's when it is empty) and returns
// the address the listener saw the connection come from.
func ask(nsPath, addr string) (string, error) {
	var line string
	dial := func() error {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		line, err = bufio.NewReader(c).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		line = strings.TrimSpace(line)
		return nil
	}
	if nsPath == "" {
		return line, dial()
	}
	return line, netns.Do(nsPath, dial)
}

func TestPodsReachEachOther(t *testing.T) {
	tn := newTestNet(t, "")
	ctx := t.Context()
	idA, nsA := newPod(t)
	idB, nsB := newPod(t)

	resA, err := tn.net.Setup(ctx, idA, nsA, cni.SetupOptions{PodName: "a", PodNamespace: "test", PodUID: "uid-a"})
	if err != nil {
		t.Fatalf("Setup a: %v", err)
	}
	resB, err := tn.net.Setup(ctx, idB, nsB, cni.SetupOptions{PodName: "b", PodNamespace: "test", PodUID: "uid-b"})
	if err != nil {
		t.Fatalf("Setup b: %v", err)
	}
	ipA, ipB := resA.IPs[0], resB.IPs[0]
	if ipA.Equal(ipB) || !tn.subnet.Contains(ipA) || !tn.subnet.Contains(ipB) || resA.Interface != "eth0" ||
		resA.Network != tn.cfg.NetworkName {
		t.Fatalf("results %+v and %+v: want two addresses in %s on eth0", resA, resB, tn.subnet)
	}

	var loUp bool
	err = netns.Do(nsA, func() error {
		lo, err := net.InterfaceByName("lo")
		loUp = err == nil && lo.Flags&net.FlagUp != 0
		return err
	})
	if err != nil || !loUp {
		t.Errorf("lo in pod a is not up (%v)", err)
	}
	listenIn(t, nsA, "127.0.0.1:7000")
	if _, err := ask(nsA, "127.0.0.1:7000"); err != nil {
		t.Errorf("pod a to its own 127.0.0.1: %v", err)
	}

	listenIn(t, nsB, net.JoinHostPort(ipB.String(), "7001"))
	from, err := ask(nsA, net.JoinHostPort(ipB.String(), "7001"))
	if err != nil {
		t.Fatalf("pod a to pod b: %v", err)
	}
	if from != ipA.String() {
		t.Errorf("pod b saw the connection from %s, want pod a's %s (no masquerade inside the network)", from, ipA)
	}

	routeLocalnet, err := os.ReadFile(filepath.Join("/proc/sys/net/ipv4/conf", tn.cfg.Bridge, "route_localnet"))
	if err != nil || strings.TrimSpace(string(routeLocalnet)) != "1" {
		t.Errorf("route_localnet on %s = %q, %v; want 1", tn.cfg.Bridge, routeLocalnet, err)
	}

	for _, id := range []string{idA, idB} {
		for i := range 2 {
			if err := tn.net.Teardown(ctx, id, map[string]string{idA: nsA, idB: nsB}[id], cni.SetupOptions{}); err != nil {
				t.Fatalf("Teardown #%d of %s: %v", i+1, id, err)
			}
		}
	}
	checkReleased(t, tn.cfg, idA)
	checkReleased(t, tn.cfg, idB)
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestHostPortFromLocalhost(t *testing.T) {
	tn := newTestNet(t, "")
	ctx := t.Context()
	id, ns := newPod(t)
	hostPort := freePort(t)
	opts := cni.SetupOptions{PodName: "web", PodNamespace: "test", PortMappings: []cni.PortMapping{
		{HostPort: int32(hostPort), ContainerPort: 8080, Protocol: "TCP"},
	}}
	res, err := tn.net.Setup(ctx, id, ns, opts)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	listenIn(t, ns, ":8080")
	from, err := ask("", fmt.Sprintf("127.0.0.1:%d", hostPort))
	if err != nil {
		t.Fatalf("127.0.0.1:%d on the node to the pod's 8080: %v", hostPort, err)
	}
	if ip := net.ParseIP(from); ip == nil || ip.IsLoopback() || !tn.subnet.Contains(ip) {
		t.Errorf("pod saw the connection from %q, want the bridge's address in %s (snat)", from, tn.subnet)
	}
	t.Logf("pod %s reached from 127.0.0.1:%d, seen as from %s", res.IPs[0], hostPort, from)

	// A daemon restart between Setup and Teardown: a new Network, and a caller that no longer
	// knows the port mappings. libcni's cache supplies them.
	restarted := tn.newNetwork(t)
	for i := range 2 {
		if err := restarted.Teardown(ctx, id, ns, cni.SetupOptions{}); err != nil {
			t.Fatalf("Teardown #%d: %v", i+1, err)
		}
	}
	checkReleased(t, tn.cfg, id)
	if _, err := ask("", fmt.Sprintf("127.0.0.1:%d", hostPort)); err == nil {
		t.Errorf("hostPort %d still reaches the pod after Teardown", hostPort)
	}
}

func TestTeardownAfterNetnsIsGone(t *testing.T) {
	tn := newTestNet(t, "")
	ctx := t.Context()
	id, ns := newPod(t)
	opts := cni.SetupOptions{PortMappings: []cni.PortMapping{{HostPort: int32(freePort(t)), ContainerPort: 80}}}
	if _, err := tn.net.Setup(ctx, id, ns, opts); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if err := netns.RemoveAll(filepath.Dir(ns)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := tn.net.Teardown(ctx, id, ns, cni.SetupOptions{}); err != nil {
			t.Fatalf("Teardown #%d: %v", i+1, err)
		}
	}
	checkReleased(t, tn.cfg, id)

	// And with an empty path from the start.
	id2, ns2 := newPod(t)
	if _, err := tn.net.Setup(ctx, id2, ns2, opts); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if err := netns.RemoveAll(filepath.Dir(ns2)); err != nil {
		t.Fatal(err)
	}
	if err := tn.net.Teardown(ctx, id2, "", cni.SetupOptions{}); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	checkReleased(t, tn.cfg, id2)
}

func TestTeardownOfUnknownPod(t *testing.T) {
	tn := newTestNet(t, "")
	id, ns := newPod(t)
	for _, path := range []string{ns, ""} {
		if err := tn.net.Teardown(t.Context(), id, path, cni.SetupOptions{}); err != nil {
			t.Errorf("Teardown(%q) of a pod never set up: %v", path, err)
		}
	}
}

func TestSetupRollsBackHalfFailedAdd(t *testing.T) {
	confDir := t.TempDir()
	tn := newTestNet(t, confDir)
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[
		{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,
		 "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
		{"type":"nosuchplugin"}]}`, tn.cfg.NetworkName, tn.cfg.Bridge, tn.cfg.Subnet, tn.cfg.IPAMDataDir)
	if err := os.WriteFile(filepath.Join(confDir, "10-test.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tn.net.Status(); err == nil || !strings.Contains(err.Error(), "nosuchplugin") {
		t.Errorf("Status = %v, want an error naming nosuchplugin", err)
	}
	id, ns := newPod(t)
	if _, err := tn.net.Setup(t.Context(), id, ns, cni.SetupOptions{}); err == nil {
		t.Fatal("Setup with a missing plugin succeeded")
	}
	checkReleased(t, tn.cfg, id)

	// The config directory is re-read: fixing it makes the network ready without a restart.
	conf = strings.Replace(conf, `,
		{"type":"nosuchplugin"}`, "", 1)
	if err := os.WriteFile(filepath.Join(confDir, "10-test.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tn.net.Status(); err != nil {
		t.Errorf("Status after fixing the config: %v", err)
	}
}

// TestBuiltinNetwork runs one pod on the built-in network exactly as a daemon with no CNI config
// would (peapod0, 10.89.0.0/16), and removes peapod0 afterwards if it created it.
func TestBuiltinNetwork(t *testing.T) {
	bin := requireKernel(t)
	_, existed := net.InterfaceByName(cni.DefaultBridge)
	// Everything default except where leases are kept, so the test leaves nothing in
	// /run/peapod. Another peapod may be using peapod0 right now with leases in the default
	// place: start this test's host-local far from the start of the range, where a daemon's
	// first pods go, so the two never hand out the same address.
	cfg := cni.Config{BinDirs: []string{bin}, CacheDir: t.TempDir(), IPAMDataDir: t.TempDir()}
	leases := filepath.Join(cfg.IPAMDataDir, cni.DefaultNetworkName)
	if err := os.MkdirAll(leases, 0o700); err != nil {
		t.Fatal(err)
	}
	var rb [2]byte
	_, _ = rand.Read(rb[:])
	last := fmt.Sprintf("10.89.%d.%d", 200+int(rb[0])%50, 10+int(rb[1])%200)
	if err := os.WriteFile(filepath.Join(leases, "last_reserved_ip.0"), []byte(last), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := cni.New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Status(); err != nil {
		t.Fatalf("Status: %v", err)
	}
	t.Cleanup(func() {
		if existed == nil || len(bridgePorts(t, cni.DefaultBridge)) > 0 {
			return
		}
		// peapod0 was this test's: so is the built-in network's masquerade rule.
		if err := n.RemoveMasquerade(); err != nil {
			t.Errorf("remove masquerade rule: %v", err)
		}
		if out, err := exec.Command("ip", "link", "del", cni.DefaultBridge).CombinedOutput(); err != nil {
			t.Errorf("delete %s: %v: %s", cni.DefaultBridge, err, out)
		}
	})
	hostRouteLocalnet, _ := os.ReadFile("/proc/sys/net/ipv4/conf/all/route_localnet")

	id, ns := newPod(t)
	hostPort := freePort(t)
	res, err := n.Setup(t.Context(), id, ns, cni.SetupOptions{PortMappings: []cni.PortMapping{{HostPort: int32(hostPort), ContainerPort: 80}}})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	_, subnet, _ := net.ParseCIDR(cni.DefaultSubnet)
	if res.Network != "peapod" || len(res.IPs) != 1 || !subnet.Contains(res.IPs[0]) {
		t.Errorf("Setup = %+v, want one address in %s on network peapod", res, subnet)
	}
	if out, _ := exec.Command("iptables", "-t", "nat", "-S", "POSTROUTING").Output(); !strings.Contains(string(out), "-s 10.89.0.0/16 ! -d 10.89.0.0/16") {
		t.Errorf("no masquerade rule for the built-in subnet:\n%s", out)
	}
	if ports := bridgePorts(t, cni.DefaultBridge); len(ports) == 0 {
		t.Errorf("no port on %s", cni.DefaultBridge)
	}
	rl, _ := os.ReadFile("/proc/sys/net/ipv4/conf/" + cni.DefaultBridge + "/route_localnet")
	if strings.TrimSpace(string(rl)) != "1" {
		t.Errorf("route_localnet on %s = %q, want 1", cni.DefaultBridge, rl)
	}
	if now, _ := os.ReadFile("/proc/sys/net/ipv4/conf/all/route_localnet"); string(now) != string(hostRouteLocalnet) {
		t.Errorf("conf/all/route_localnet changed from %q to %q", hostRouteLocalnet, now)
	}
	listenIn(t, ns, ":80")
	if _, err := ask("", fmt.Sprintf("127.0.0.1:%d", hostPort)); err != nil {
		t.Errorf("hostPort from 127.0.0.1: %v", err)
	}
	// The pod's eth0 is "eth0@if<N>": N is its veth's index on the host.
	out, err := exec.Command("nsenter", "--net="+ns, "ip", "-o", "link", "show", "eth0").CombinedOutput()
	hostVeth := ""
	if i := strings.Index(string(out), "@if"); err == nil && i > 0 {
		hostVeth = strings.Fields(string(out)[i+3:])[0]
		hostVeth = strings.TrimSuffix(hostVeth, ":")
	} else {
		t.Errorf("find the pod's host veth: %v: %s", err, out)
	}

	if err := n.Teardown(t.Context(), id, ns, cni.SetupOptions{}); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	for i := 0; hostVeth != ""; i++ {
		links, _ := exec.Command("ip", "-o", "link", "show").Output()
		if !strings.Contains("\n"+string(links), "\n"+hostVeth+": ") {
			break
		}
		if i == 100 {
			t.Errorf("the pod's veth (index %s) is left on the host", hostVeth)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cfg.NetworkName, cfg.Bridge = cni.DefaultNetworkName, cni.DefaultBridge
	checkReleased(t, cfg, id)
}

// TestPortmapOnlyForHostPorts: the built-in network runs portmap for a pod with a hostPort
// (ADD and DEL), and for a pod without one neither on Setup nor on Teardown, whose DEL replays
// the list the pod was set up with.
func TestPortmapOnlyForHostPorts(t *testing.T) {
	tn := newTestNet(t, "")
	// A portmap ahead of the real one in the plugin path logs each call, then runs the real one.
	spy := t.TempDir()
	calls := filepath.Join(spy, "calls")
	script := fmt.Sprintf("#!/bin/sh\necho \"$CNI_COMMAND\" >>%s\nexec %s\n", calls, filepath.Join(tn.cfg.BinDirs[0], "portmap"))
	if err := os.WriteFile(filepath.Join(spy, "portmap"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	tn.cfg.BinDirs = append([]string{spy}, tn.cfg.BinDirs...)
	n := tn.newNetwork(t)
	for _, tc := range []struct {
		name  string
		ports []cni.PortMapping
		want  string
	}{
		{"no hostPort", nil, ""},
		{"hostPort", []cni.PortMapping{{HostPort: int32(freePort(t)), ContainerPort: 80}}, "ADD\nDEL\n"},
	} {
		id, ns := newPod(t)
		opts := cni.SetupOptions{PortMappings: tc.ports}
		if _, err := n.Setup(t.Context(), id, ns, opts); err != nil {
			t.Fatalf("%s: Setup: %v", tc.name, err)
		}
		if err := n.Teardown(t.Context(), id, ns, opts); err != nil {
			t.Fatalf("%s: Teardown: %v", tc.name, err)
		}
		got, err := os.ReadFile(calls)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if string(got) != tc.want {
			t.Errorf("%s: portmap calls %q, want %q", tc.name, got, tc.want)
		}
		_ = os.Remove(calls)
		checkReleased(t, tn.cfg, id)
	}
}

// BenchmarkSetupTeardown measures one pod's Setup plus Teardown on a test bridge, with and
// without a hostPort, and reports the median and 90th percentile (run with -benchtime 20x).
func BenchmarkSetupTeardown(b *testing.B) {
	for _, tc := range []struct {
		name  string
		ports int
	}{{"plain", 0}, {"hostport", 1}} {
		b.Run(tc.name, func(b *testing.B) {
			tn := newTestNet(b, "")
			ctx := b.Context()
			var took, setup []time.Duration
			for b.Loop() {
				b.StopTimer()
				id, ns := newPod(b)
				var opts cni.SetupOptions
				if tc.ports > 0 {
					opts.PortMappings = []cni.PortMapping{{HostPort: int32(freePort(b)), ContainerPort: 80}}
				}
				b.StartTimer()
				start := time.Now()
				if _, err := tn.net.Setup(ctx, id, ns, opts); err != nil {
					b.Fatal(err)
				}
				setup = append(setup, time.Since(start))
				if err := tn.net.Teardown(ctx, id, ns, opts); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			ms := func(d []time.Duration, q int) float64 {
				slices.Sort(d)
				return float64(d[len(d)*q/100].Microseconds()) / 1000
			}
			b.ReportMetric(ms(took, 50), "p50-ms")
			b.ReportMetric(ms(took, 90), "p90-ms")
			b.ReportMetric(ms(setup, 50), "setup-p50-ms")
		})
	}
}
