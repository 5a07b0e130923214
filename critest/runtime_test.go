package critest

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	utilversion "k8s.io/apimachinery/pkg/util/version"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/critest/framework"
)

func TestVersion(t *testing.T) {
	env := framework.Shared(t)
	v, err := env.Runtime.Version(framework.Context(t), "v1")
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeApiVersion != "v1" {
		t.Errorf("RuntimeApiVersion = %q, want v1", v.RuntimeApiVersion)
	}
	if v.Version != "0.1.0" {
		t.Errorf("Version (the kubelet API version) = %q, want 0.1.0", v.Version)
	}
	// A kubelet parses RuntimeVersion as a semantic version; the node shows
	// "<name>://Unknown" when it is not one.
	if _, err := utilversion.ParseSemantic(v.RuntimeVersion); err != nil {
		t.Errorf("RuntimeVersion %q is not a semantic version: %v", v.RuntimeVersion, err)
	}
	if d := env.Daemon; d != nil && !framework.External() {
		out, err := exec.Command(d.Binary(), "--version").CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != "peapod "+v.RuntimeVersion {
			t.Errorf("peapod --version printed %q (%v), want %q", got, err, "peapod "+v.RuntimeVersion)
		}
	}
	if !framework.External() && v.RuntimeName != "peapod" {
		t.Errorf("RuntimeName = %q, want peapod", v.RuntimeName)
	}
}

func condition(st *runtimeapi.RuntimeStatus, typ string) *runtimeapi.RuntimeCondition {
	for _, c := range st.GetConditions() {
		if c.Type == typ {
			return c
		}
	}
	return nil
}

func TestStatus(t *testing.T) {
	env := framework.Shared(t)
	resp, err := env.Runtime.Status(framework.Context(t), false)
	if err != nil {
		t.Fatal(err)
	}
	rr := condition(resp.Status, runtimeapi.RuntimeReady)
	if rr == nil || !rr.Status {
		t.Errorf("RuntimeReady = %v, want true", rr)
	}
	nr := condition(resp.Status, runtimeapi.NetworkReady)
	if nr == nil {
		t.Fatalf("no NetworkReady condition in %v", resp.Status)
	}
	if !nr.Status && (nr.Reason == "" || nr.Message == "") {
		t.Errorf("NetworkReady false without reason and message: %v", nr)
	}
	if len(resp.Info) != 0 {
		t.Errorf("non-verbose Status carries info: %v", resp.Info)
	}
}

// TestStatusFeatures: Status advertises what peapod does, per runtime handler and runtime-wide.
func TestStatusFeatures(t *testing.T) {
	framework.RequirePeapod(t)
	resp, err := framework.Shared(t).Runtime.Status(framework.Context(t), false)
	if err != nil {
		t.Fatal(err)
	}
	// critest and the kubelet send recursive read-only mounts only to a handler that
	// advertises them; every handler peapod answers to is the same runtime.
	var names []string
	for _, h := range resp.GetRuntimeHandlers() {
		names = append(names, h.GetName())
		if !h.GetFeatures().GetRecursiveReadOnlyMounts() {
			t.Errorf("handler %q does not advertise recursive read-only mounts (kernel has mount_setattr)", h.GetName())
		}
	}
	if !slices.Contains(names, "") {
		t.Errorf("runtime handlers %q lack the default handler \"\"", names)
	}
	if !resp.GetFeatures().GetSupplementalGroupsPolicy() {
		t.Error("Status does not advertise the supplemental groups policy")
	}
}

func TestStatusVerboseConfig(t *testing.T) {
	framework.RequirePeapod(t)
	env := framework.Shared(t)
	resp, err := env.Runtime.Status(framework.Context(t), true)
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := resp.Info["config"]
	if !ok {
		t.Fatalf("verbose Status has no info[\"config\"]; keys: %v", keys(resp.Info))
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("info[\"config\"] is not JSON: %v\n%s", err, raw)
	}
	if cfg["root"] != env.Daemon.Root() || cfg["state"] != env.Daemon.State() || cfg["cgroup_driver"] != "cgroupfs" {
		t.Errorf("effective config does not show the daemon's root, state and cgroup driver:\n%s", raw)
	}
	reg, _ := cfg["registries"].(map[string]any)
	if _, ok := reg["registry.k8s.io"]; !ok {
		t.Errorf("effective config lacks the registry.k8s.io mirror:\n%s", raw)
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestRuntimeConfig(t *testing.T) {
	env := framework.Shared(t)
	resp, err := env.Runtime.RuntimeConfig(framework.Context(t))
	if framework.External() && status.Code(err) == codes.Unimplemented {
		t.Skipf("SKIP-REASON: %s does not implement RuntimeConfig: %v", env.Endpoint, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	got := resp.GetLinux().GetCgroupDriver()
	if framework.External() {
		if got != runtimeapi.CgroupDriver_CGROUPFS && got != runtimeapi.CgroupDriver_SYSTEMD {
			t.Errorf("cgroup driver %v", got)
		}
		return
	}
	if got != runtimeapi.CgroupDriver_CGROUPFS {
		t.Errorf("cgroup driver = %v, want CGROUPFS (the config says cgroupfs)", got)
	}
}

// TestUnimplementedRPCs: RPCs peapod does not serve answer codes.Unimplemented (never Unknown
// or a hang), so a kubelet can fall back.
func TestUnimplementedRPCs(t *testing.T) {
	env := framework.Shared(t)
	ctx := framework.Context(t)
	cases := []struct {
		name string
		call func() error
	}{
		{"CheckpointPod", func() error {
			return env.Runtime.CheckpointPod(ctx, &runtimeapi.CheckpointPodRequest{PodSandboxId: "does-not-exist", OutputPath: "/tmp/does-not-exist"})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if status.Code(err) != codes.Unimplemented {
				t.Errorf("%s: %v (code %v), want code Unimplemented", tc.name, err, status.Code(err))
			}
		})
	}
}

// TestKubeletCanConnect: the kubelet's image client validates the connection with
// ImageFsInfo; a runtime that fails it cannot host a kubelet.
func TestKubeletCanConnect(t *testing.T) {
	env := framework.Shared(t)
	c, err := framework.Connect(t.Context(), env.Endpoint)
	if framework.External() && status.Code(err) == codes.Unimplemented {
		t.Skipf("SKIP-REASON: %s does not implement ImageFsInfo, so a kubelet cannot connect to it: %v", env.Endpoint, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fs, err := c.Image.ImageFsInfo(framework.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs.GetImageFilesystems()) == 0 {
		t.Errorf("ImageFsInfo lists no image filesystem")
	}
	for _, f := range fs.GetImageFilesystems() {
		if f.GetFsId().GetMountpoint() == "" {
			t.Errorf("image filesystem without mountpoint: %v", f)
		}
	}
}
