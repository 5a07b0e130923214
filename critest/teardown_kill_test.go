package critest

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peapod-runtime/peapod/critest/framework"
)

// TestNetworkTeardownAfterKill: peapod answers StopPodSandbox and RemovePodSandbox before the
// pod's network is torn down (CNI DEL runs after the answer, from a journal). A daemon killed
// with SIGKILL while that DEL runs leaves the pod's veth, lease and namespace pins; the next
// daemon finishes the teardown from the journal, and nothing of the pod is left. The DEL is
// held by a bridge plugin wrapper that blocks the first DEL until the test kills it.
func TestNetworkTeardownAfterKill(t *testing.T) {
	framework.RequirePeapod(t)
	testutilRoot(t)
	repo, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	realBin := filepath.Join(repo, "bin", "cni")
	if _, err := os.Stat(filepath.Join(realBin, "bridge")); err != nil {
		t.Skipf("SKIP-REASON: no CNI plugins in %s (make build builds them): %v", realBin, err)
	}
	tmp := t.TempDir()
	wrapDir := filepath.Join(tmp, "bin")
	if err := os.Mkdir(wrapDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mark, pidFile := filepath.Join(tmp, "held"), filepath.Join(tmp, "held.pid")
	wrapper := fmt.Sprintf(`#!/bin/sh
if [ "$CNI_COMMAND" = DEL ] && [ ! -e %[1]s ]; then
	: > %[1]s
	echo $$ > %[2]s
	exec sleep 3600
fi
exec %[3]s "$@"
`, mark, pidFile, filepath.Join(realBin, "bridge"))
	if err := os.WriteFile(filepath.Join(wrapDir, "heldbridge"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	var b [3]byte
	for i := range b {
		b[i] = byte(rand.IntN(256))
	}
	bridge := "ppheld" + hex.EncodeToString(b[:])
	ipamDir := filepath.Join(tmp, "ipam")
	t.Cleanup(func() {
		if raw, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = exec.Command("ip", "link", "del", bridge).Run()
	})

	d := framework.NewTestDaemon(t, framework.WithConfig(fmt.Sprintf("[network]\nbin_dirs = [%q, %q]\n", wrapDir, realBin)))
	conflist := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "held", "plugins": [{"type": "heldbridge", "bridge": %q,
  "isGateway": true, "ipMasq": false, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.196.%d.0/24"}]], "dataDir": %q}}]}`,
		bridge, b[0], ipamDir)
	if err := os.WriteFile(filepath.Join(d.CNIConfDir(), "10-held.conflist"), []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c, err := d.Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := framework.Context(t)
	id, err := c.Runtime.RunPodSandbox(ctx, podConfig(t, "held-teardown", podLabel(t)), "")
	if err != nil {
		t.Fatal(err)
	}
	tr := tracePod(t, c.Runtime, id)
	if tr.veth == "" || tr.info.NetNS == "" {
		t.Fatalf("pod has no veth or netns pin: %+v", tr)
	}
	start := time.Now()
	if err := c.Runtime.StopPodSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := c.Runtime.RemovePodSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	t.Logf("stop and remove answered in %v with the DEL held", time.Since(start))
	// The DEL is running (held) in the background.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(pidFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pod's CNI DEL never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	journal := filepath.Join(d.State(), "teardown", id+".json")
	if _, err := os.Stat(journal); err != nil {
		t.Fatalf("no teardown journal while the DEL runs: %v", err)
	}

	if err := d.Kill(); err != nil {
		t.Fatal(err)
	}
	// The held DEL dies with its daemon, as it would have had the daemon died before it ran.
	raw, _ := os.ReadFile(pidFile)
	if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if _, err := net.InterfaceByName(tr.veth); err != nil {
		t.Fatalf("the veth is gone before the next daemon ran: %v (the test held nothing)", err)
	}

	if err := d.Start(t.Context()); err != nil {
		t.Fatalf("start after SIGKILL: %v", err)
	}
	c2, err := d.Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c2.Close() })
	waitNetworksGone(t, tr)
	if _, err := net.InterfaceByName(tr.veth); err == nil {
		t.Errorf("host veth %s still there %v after the restart", tr.veth, networkTeardownWait)
	}
	if _, err := os.Lstat(tr.info.NetNS); err == nil {
		t.Errorf("netns pin %s still there", tr.info.NetNS)
	}
	if m, err := framework.MountsUnder(d.State()); err != nil || len(m) > 0 {
		t.Errorf("mounts left under the state dir: %v %v", m, err)
	}
	leases, _ := filepath.Glob(filepath.Join(ipamDir, "*", "10.*"))
	if len(leases) > 0 {
		t.Errorf("leases left: %v", leases)
	}
	if ports, _ := filepath.Glob(filepath.Join("/sys/class/net", bridge, "brif", "*")); len(ports) > 0 {
		t.Errorf("ports left on %s: %v", bridge, ports)
	}
	if _, err := os.Stat(journal); err == nil {
		t.Error("the teardown journal is still there")
	}
	if err := c2.Runtime.RemovePodSandbox(context.Background(), id); err != nil {
		t.Errorf("RemovePodSandbox of the removed pod after the restart: %v", err)
	}
}
