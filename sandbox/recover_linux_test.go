package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/peapod-runtime/peapod/internal/table"
)

// TestRecoverUnfinishedSetup: a pod whose setup a daemon kill cut off before its record was
// stored (namespaces pinned, /dev/shm mounted, cgroup made, network up) is undone by the next
// daemon; a pod with a record is left alone. (Found by the chaos suite: such a pod leaked its
// netns pins, veth, lease, mounts and cgroup.)
func TestRecoverUnfinishedSetup(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	kept, err := f.m.Run(ctx, podConfig("kept"))
	if err != nil {
		t.Fatal(err)
	}
	cut := Sandbox{ID: table.NewID(), Config: podConfig("cut"), State: StateReady}
	if err := f.m.kernel.setup(ctx, &cut); err != nil {
		t.Fatal(err)
	}
	// Whatever the recovery under test leaves goes anyway (undo is safe to repeat).
	t.Cleanup(func() { f.m.kernel.undo(context.Background(), &cut) })
	if len(cut.IPs) == 0 || cut.CgroupParent == "" || cut.ShmPath == "" {
		t.Fatalf("setup made no network, cgroup or /dev/shm: %+v", cut)
	}
	cgroupDir := filepath.Join("/sys/fs/cgroup/memory", cut.CgroupParent)
	leases := func() []string {
		l, _ := filepath.Glob(filepath.Join(f.state, "networks", "*", cut.IPs[0]))
		return l
	}
	ports := func() []string {
		p, _ := filepath.Glob(filepath.Join("/sys/class/net", f.bridge, "brif", "*"))
		return p
	}
	for what, ok := range map[string]bool{
		"pins": exists(filepath.Join(f.m.kernel.nsDir, cut.ID)), "pod dir": exists(cut.Dir),
		"cgroup": exists(cgroupDir), "lease": len(leases()) == 1, "veths": len(ports()) == 2,
	} {
		if !ok {
			t.Fatalf("before recovery: no %s of the cut-off pod", what)
		}
	}

	f.m.kernel.recoverUnfinished(ctx, f.m.pods.Has, f.m.log)

	for what, left := range map[string]bool{
		"pins": exists(filepath.Join(f.m.kernel.nsDir, cut.ID)), "pod dir": exists(cut.Dir),
		"cgroup": exists(cgroupDir), "lease": len(leases()) > 0, "veth": len(ports()) != 1,
	} {
		if left {
			t.Errorf("after recovery: the cut-off pod's %s is still there", what)
		}
	}
	if _, err := f.m.Get(kept.ID); err != nil || !exists(kept.Dir) || !exists(filepath.Join(f.m.kernel.nsDir, kept.ID)) {
		t.Errorf("the stored pod was touched by the recovery: %v", err)
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestDeferredTeardownAfterDaemonStop: a pod stopped and removed whose network teardown (run
// after the answers) had not run when its daemon went away is torn down by the next daemon
// from the journal: no veth, lease, namespace pin or journal is left. The teardown is held
// back by filling the slots teardowns wait for, as a daemon killed before them would.
func TestDeferredTeardownAfterDaemonStop(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	sb, err := f.m.Run(ctx, podConfig("cut"))
	if err != nil {
		t.Fatal(err)
	}
	old := f.m
	for range maxTeardowns {
		old.teardowns.sem <- struct{}{}
	}
	// The held teardown runs once the test is over (DEL again is harmless).
	t.Cleanup(func() {
		for range maxTeardowns {
			<-old.teardowns.sem
		}
		_ = old.WaitTeardowns(context.Background())
	})
	if err := old.Stop(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := old.Get(sb.ID); got.State != StateNotReady || !got.NetworkDown {
		t.Fatalf("after Stop: %s, network down %v; want NotReady with the network reported down", got.State, got.NetworkDown)
	}
	if err := old.Remove(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(f.state, teardownDirName, sb.ID+".json")
	ports, _ := filepath.Glob(filepath.Join("/sys/class/net", f.bridge, "brif", "*"))
	if !exists(journal) || len(ports) != 1 || !exists(filepath.Join(old.kernel.nsDir, sb.ID, "net")) {
		t.Fatalf("before the next daemon: journal %v, %d veths on the bridge, pins %v; want the teardown pending",
			exists(journal), len(ports), exists(filepath.Join(old.kernel.nsDir, sb.ID)))
	}

	next, err := New(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	f.m = next
	if err := next.WaitTeardowns(ctx); err != nil {
		t.Fatal(err)
	}
	if left := f.leftovers(t, sb, 0); len(left) > 0 {
		t.Errorf("left after the next daemon's recovery: %v", left)
	}
	if exists(journal) {
		t.Error("the teardown journal is still there")
	}
}
