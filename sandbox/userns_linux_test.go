package sandbox

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/peapod-runtime/peapod/internal/table"
	"github.com/peapod-runtime/peapod/netns"
)

func usernsConfig(name string, hostID uint32) Config {
	c := podConfig(name)
	one := []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 65536}}
	c.UserNamespace = &netns.IDMapping{UIDs: one, GIDs: one}
	return c
}

// TestUserNamespacePodOnTheKernel: a pod with a user namespace of its own has it pinned with
// its mapping, its network, IPC and UTS namespaces belong to it (its hostname and net sysctl
// set all the same, from the node's side), and removal, or the recovery of a setup cut off
// by a daemon kill, leaves nothing.
func TestUserNamespacePodOnTheKernel(t *testing.T) {
	f := newFixture(t)
	f.m.kernel.userns = true
	ctx := t.Context()
	sb, err := f.m.Run(ctx, usernsConfig("userns", 5<<20))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if sb.UserNSPath != filepath.Join(f.state, "ns", sb.ID, "user") {
		t.Fatalf("user namespace pin %q", sb.UserNSPath)
	}
	if got := strings.Join(strings.Fields(nsenter(t, "--user="+sb.UserNSPath, "cat", "/proc/self/uid_map")), " "); got != "0 5242880 65536" {
		t.Errorf("uid_map %q", got)
	}
	// lsns-free ownership check: a process in the pod's user namespace holds CAP_SYS_ADMIN
	// over the pod's UTS namespace (it may set the hostname) only if that namespace is owned
	// by it.
	if out := nsenter(t, "--user="+sb.UserNSPath, "--uts="+sb.UTSPath, "sh", "-c", "hostname; hostname renamed && hostname"); out != "userns\nrenamed" {
		t.Errorf("hostname inside, then renamed by the pod's root: %q", out)
	}
	if out := nsenter(t, "--net="+sb.NetNSPath, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"); out != "0" {
		t.Errorf("net sysctl in the pod's network namespace: %q", out)
	}
	if err := f.m.Remove(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if left := f.leftovers(t, sb, 0); len(left) > 0 {
		t.Errorf("left after remove: %v", left)
	}

	cut := Sandbox{ID: table.NewID(), Config: usernsConfig("cut", 6<<20), State: StateReady}
	if err := f.m.kernel.setup(ctx, &cut); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.m.kernel.undo(context.Background(), &cut) })
	if !exists(cut.UserNSPath) {
		t.Fatal("setup pinned no user namespace")
	}
	f.m.kernel.recoverUnfinished(ctx, f.m.pods.Has, f.m.log)
	if left := f.leftovers(t, cut, 0); len(left) > 0 {
		t.Errorf("left after the recovery of a cut-off setup: %v", left)
	}
}

// TestUserNamespaceValidate: a pod in its own user namespace cannot use the node's other
// namespaces (InvalidArgument), and a node that failed the probe refuses it
// (FailedPrecondition), before anything is made.
func TestUserNamespaceValidate(t *testing.T) {
	k := &kernel{userns: true, network: nil}
	hostNet := usernsConfig("p", 1<<20)
	hostNet.Namespaces.Network = ModeNode
	hostPID := usernsConfig("p", 1<<20)
	hostPID.Namespaces.PID = ModeNode
	hostIPC := usernsConfig("p", 1<<20)
	hostIPC.Namespaces.IPC = ModeNode
	for name, c := range map[string]Config{"host network": hostNet, "host pid": hostPID, "host ipc": hostIPC} {
		if err := k.validate(c); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	k.userns = false
	if err := k.validate(usernsConfig("p", 1<<20)); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("unsupported node: %v, want FailedPrecondition", err)
	}
}
