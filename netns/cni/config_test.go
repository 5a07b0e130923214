package cni

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	current "github.com/containernetworking/cni/pkg/types/100"
	"go.uber.org/zap/zaptest"
)

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakePlugins makes empty executables named like plugins: Status only looks for them.
func fakePlugins(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		writeFile(t, dir, n, "#!/bin/sh\n")
		if err := os.Chmod(filepath.Join(dir, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBuiltinDefaults(t *testing.T) {
	nw, err := loadNetwork(Config{CacheDir: "/run/peapod/cni"}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if !nw.builtin() || nw.list.Name != "peapod" || len(nw.list.Plugins) != 2 {
		t.Fatalf("built-in network = %+v", nw)
	}
	var bridge struct {
		Type, Bridge                   string
		IsGateway, IPMasq, HairpinMode bool
		IPAM                           struct {
			Type    string
			Ranges  [][]map[string]string
			Routes  []map[string]string
			DataDir string
		}
	}
	if err := json.Unmarshal(nw.list.Plugins[0].Bytes, &bridge); err != nil {
		t.Fatal(err)
	}
	if bridge.Type != "bridge" || bridge.Bridge != "peapod0" || !bridge.IsGateway || bridge.IPMasq || !bridge.HairpinMode {
		t.Errorf("bridge plugin = %+v", bridge)
	}
	if bridge.IPAM.Type != "host-local" || bridge.IPAM.Ranges[0][0]["subnet"] != "10.89.0.0/16" ||
		bridge.IPAM.Routes[0]["dst"] != "0.0.0.0/0" || bridge.IPAM.DataDir != DefaultIPAMDataDir {
		t.Errorf("ipam = %+v", bridge.IPAM)
	}
	var portmap struct {
		Type         string
		Capabilities map[string]bool
		SNAT         *bool
	}
	if err := json.Unmarshal(nw.list.Plugins[1].Bytes, &portmap); err != nil {
		t.Fatal(err)
	}
	if portmap.Type != "portmap" || !portmap.Capabilities["portMappings"] || portmap.SNAT == nil || !*portmap.SNAT {
		t.Errorf("portmap plugin = %+v", portmap)
	}
}

func TestLoadNetwork(t *testing.T) {
	const conflist = `{"cniVersion":"1.0.0","name":%q,"plugins":[{"type":"bridge"},{"type":"portmap"}]}`
	for _, tc := range []struct {
		name     string
		files    map[string]string
		wantName string
		wantN    int
		wantErr  error
	}{
		{name: "empty dir is built-in", wantName: "peapod", wantN: 2},
		{name: "lexical order", files: map[string]string{
			"20-b.conflist": strings.Replace(conflist, "%q", `"b"`, 1),
			"10-a.conflist": strings.Replace(conflist, "%q", `"a"`, 1),
		}, wantName: "a", wantN: 2},
		{name: "single plugin conf", files: map[string]string{
			"10-one.conf": `{"cniVersion":"0.4.0","name":"one","type":"bridge"}`,
		}, wantName: "one", wantN: 1},
		{name: "conf holding a list", files: map[string]string{
			"10-list.conf": strings.Replace(conflist, "%q", `"list"`, 1),
		}, wantName: "list", wantN: 2},
		{name: "broken first is skipped", files: map[string]string{
			"05-broken.conflist": `{"name":`,
			"10-ok.conflist":     strings.Replace(conflist, "%q", `"ok"`, 1),
		}, wantName: "ok", wantN: 2},
		{name: "other files ignored", files: map[string]string{"README": "x", "10-x.yaml": "y"}, wantName: "peapod", wantN: 2},
		{name: "all broken", files: map[string]string{
			"05-broken.conflist":    `{"name":`,
			"10-noplugins.conflist": `{"cniVersion":"1.0.0","name":"x","plugins":[]}`,
			"20-notype.conf":        `{"cniVersion":"1.0.0","name":"y"}`,
		}, wantErr: errdefs.ErrFailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, c := range tc.files {
				writeFile(t, dir, n, c)
			}
			nw, err := loadNetwork(Config{ConfDir: dir}.withDefaults())
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("loadNetwork = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if nw.list.Name != tc.wantName || len(nw.list.Plugins) != tc.wantN {
				t.Errorf("network %q with %d plugins, want %q with %d", nw.list.Name, len(nw.list.Plugins), tc.wantName, tc.wantN)
			}
		})
	}
	if _, err := loadNetwork(Config{ConfDir: filepath.Join(t.TempDir(), "missing")}.withDefaults()); err != nil {
		t.Errorf("missing conf dir: %v, want the built-in network", err)
	}
}

func TestStatus(t *testing.T) {
	all := fakePlugins(t, "bridge", "host-local", "portmap", "loopback")
	noPortmap := fakePlugins(t, "bridge", "host-local", "loopback")
	confDir := t.TempDir()
	for _, tc := range []struct {
		name    string
		conf    string
		binDirs []string
		missing []string
	}{
		{name: "built-in, all there", binDirs: []string{all}},
		{name: "built-in, found in second dir", binDirs: []string{t.TempDir(), all}},
		{name: "built-in, no portmap", binDirs: []string{noPortmap}, missing: []string{"portmap"}},
		{name: "config naming an absent plugin", binDirs: []string{all},
			conf:    `{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge","ipam":{"type":"dhcp"}},{"type":"tuning"}]}`,
			missing: []string{"dhcp", "tuning"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := ""
			if tc.conf != "" {
				dir = filepath.Join(confDir, strings.ReplaceAll(tc.name, " ", "-"))
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, dir, "10-x.conflist", tc.conf)
			}
			n, err := New(Config{ConfDir: dir, BinDirs: tc.binDirs, CacheDir: t.TempDir()}, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			err = n.Status()
			if len(tc.missing) == 0 {
				if err != nil {
					t.Fatalf("Status = %v", err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Fatalf("Status = %v, want ErrFailedPrecondition", err)
			}
			for _, m := range tc.missing {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("Status message %q does not name %s", err, m)
				}
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{BinDirs: []string{"/x"}},
		{CacheDir: "/x"},
		{CacheDir: "/x", BinDirs: []string{"/x"}, Subnet: "10.1.2.3"},
	} {
		if _, err := New(cfg, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("New(%+v) = %v, want ErrInvalidArgument", cfg, err)
		}
	}
}

func TestRuntimeConf(t *testing.T) {
	rt, err := runtimeConf("pod1", "/run/ns/net", SetupOptions{
		PodName: "web", PodNamespace: "default", PodUID: "uid-1",
		PortMappings: []PortMapping{
			{HostPort: 8080, ContainerPort: 80, Protocol: "TCP"},
			{HostPort: 0, ContainerPort: 81},
			{HostPort: 53, ContainerPort: 53, Protocol: "udp", HostIP: "127.0.0.1"},
		},
		Bandwidth: &Bandwidth{IngressRate: 1000},
	})
	if err != nil {
		t.Fatal(err)
	}
	args := map[string]string{}
	for _, a := range rt.Args {
		args[a[0]] = a[1]
	}
	if args["K8S_POD_NAME"] != "web" || args["K8S_POD_NAMESPACE"] != "default" || args["K8S_POD_UID"] != "uid-1" ||
		args["K8S_POD_INFRA_CONTAINER_ID"] != "pod1" || args["IgnoreUnknown"] != "1" {
		t.Errorf("args = %v", rt.Args)
	}
	pm := rt.CapabilityArgs["portMappings"].([]map[string]any)
	if len(pm) != 2 || pm[0]["protocol"] != "tcp" || pm[0]["hostPort"] != int32(8080) || pm[1]["hostIP"] != "127.0.0.1" {
		t.Errorf("portMappings = %v", pm)
	}
	if rt.CapabilityArgs["bandwidth"] == nil || rt.CapabilityArgs["dns"] != nil {
		t.Errorf("capability args = %v", rt.CapabilityArgs)
	}
	if rt.IfName != "eth0" || rt.NetNS != "/run/ns/net" || rt.ContainerID != "pod1" {
		t.Errorf("runtime conf = %+v", rt)
	}

	for _, bad := range []PortMapping{
		{HostPort: 1, ContainerPort: 1, Protocol: "icmp"},
		{HostPort: 70000, ContainerPort: 1},
		{HostPort: 1, ContainerPort: 0},
		{HostPort: 1, ContainerPort: 1, HostIP: "localhost"},
	} {
		if _, err := runtimeConf("p", "", SetupOptions{PortMappings: []PortMapping{bad}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("port mapping %+v: %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func TestToResult(t *testing.T) {
	idx0, idx1 := 0, 1
	res := &current.Result{
		CNIVersion: "1.0.0",
		Interfaces: []*current.Interface{
			{Name: "cni0"},
			{Name: "eth0", Sandbox: "/run/ns/net"},
		},
		IPs: []*current.IPConfig{
			{Interface: &idx0, Address: net.IPNet{IP: net.ParseIP("10.0.0.1"), Mask: net.CIDRMask(24, 32)}},
			{Interface: &idx1, Address: net.IPNet{IP: net.ParseIP("fd00::5"), Mask: net.CIDRMask(64, 128)}},
			{Interface: &idx1, Address: net.IPNet{IP: net.ParseIP("10.0.0.5").To4(), Mask: net.CIDRMask(24, 32)}},
		},
	}
	got, err := toResult("n", res, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.IPs) != 2 || got.IPs[0].String() != "10.0.0.5" || got.IPs[1].String() != "fd00::5" || got.Interface != "eth0" {
		t.Errorf("toResult = %+v", got)
	}
	if _, err := toResult("n", &current.Result{CNIVersion: "1.0.0"}, ""); err == nil {
		t.Error("a result without IPs was accepted")
	}
}

func TestTeardownWithNothingToRelease(t *testing.T) {
	confDir := t.TempDir()
	writeFile(t, confDir, "10-broken.conflist", `{"name":`)
	n, err := New(Config{ConfDir: confDir, BinDirs: []string{t.TempDir()}, CacheDir: t.TempDir()}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Teardown(t.Context(), "pod1", "", SetupOptions{}); err != nil {
		t.Errorf("Teardown with no cache and a broken config = %v, want nil", err)
	}
	if err := n.Teardown(t.Context(), "", "", SetupOptions{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Teardown without pod id = %v, want ErrInvalidArgument", err)
	}
	if _, err := n.Setup(t.Context(), "pod1", "", SetupOptions{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Setup without netns = %v, want ErrInvalidArgument", err)
	}
	if _, err := n.Setup(t.Context(), "pod1", "/run/x", SetupOptions{}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Setup with a broken config = %v, want ErrFailedPrecondition", err)
	}
}

// TestHostInterface: the node's end of the pod's veth is the one interface outside the pod
// that is not the bridge; with none, or more than one, there is none to trust.
func TestHostInterface(t *testing.T) {
	res := func(ifs ...*current.Interface) *current.Result {
		return &current.Result{CNIVersion: "1.0.0", Interfaces: ifs}
	}
	for _, tc := range []struct {
		res  *current.Result
		want string
	}{
		{res(&current.Interface{Name: "peapod0"}, &current.Interface{Name: "veth1a2b"}, &current.Interface{Name: "eth0", Sandbox: "/run/ns/net"}), "veth1a2b"},
		{res(&current.Interface{Name: "peapod0"}, &current.Interface{Name: "eth0", Sandbox: "/run/ns/net"}), ""},
		{res(&current.Interface{Name: "veth1"}, &current.Interface{Name: "veth2"}, &current.Interface{Name: "eth0", Sandbox: "/run/ns/net"}), ""},
	} {
		if got := hostInterface(tc.res, "peapod0"); got != tc.want {
			t.Errorf("hostInterface(%v) = %q, want %q", tc.res.Interfaces, got, tc.want)
		}
	}
}
