package stats

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/sandbox"
)

type fakeContainers []container.Container

func (f fakeContainers) List(container.Filter) []container.Container { return f }

type fakePods []sandbox.Sandbox

func (f fakePods) List(sandbox.Filter) []sandbox.Sandbox { return f }

// fakeCgroups adds step nanoseconds of cpu to every cgroup at each read; a container's
// read (with extras) finds procs and one device's reads.
type fakeCgroups struct {
	mu     sync.Mutex
	cpu    map[string]uint64
	step   uint64
	procs  []int
	extras []cgroups.Extra
	// usageReads counts CPUUsage calls.
	usageReads int
}

// CPUUsage is what the next Stats will say: the counter has moved by step since the last.
func (f *fakeCgroups) CPUUsage(p string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.usageReads++
	if p == "/missing" {
		return 0, errdefs.ErrNotFound
	}
	// A parent's counter holds its children's.
	sum := f.cpu[p]
	for q, v := range f.cpu {
		if strings.HasPrefix(q, p+"/") {
			sum += v
		}
	}
	return sum + f.step, nil
}

func (f *fakeCgroups) Stats(p string, extra cgroups.Extra) (cgroups.Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.extras = append(f.extras, extra)
	if p == "/missing" {
		return cgroups.Stats{}, errdefs.ErrNotFound
	}
	f.cpu[p] += f.step
	st := cgroups.Stats{CPUUsageNanos: f.cpu[p], MemoryWorkingSetBytes: 5}
	if extra&cgroups.ExtraProcs != 0 {
		st.Procs = f.procs
	}
	if extra&cgroups.ExtraIO != 0 {
		st.IO = []cgroups.DeviceIO{{Major: 7, Minor: 3, Op: "Read", Bytes: 512, IOs: 1}}
	}
	return st, nil
}

func TestCollectorRefresh(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "upper"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctrs := fakeContainers{
		{ID: "run", PodID: "pod", State: container.StateRunning, CgroupPath: "/pod/run", Dir: dir},
		{ID: "new", PodID: "pod", State: container.StateCreated, CgroupPath: "/missing"},
		{ID: "gone", PodID: "pod", State: container.StateExited, CgroupPath: "/pod/gone"},
	}
	pods := fakePods{{ID: "pod", State: sandbox.StateReady, CgroupParent: "/pod", NetNSPath: "/ns/net"}}
	var disks int
	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "42", "fd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("socket:[1]", filepath.Join(proc, "42", "fd", "3")); err != nil {
		t.Fatal(err)
	}
	cgs := &fakeCgroups{cpu: map[string]uint64{}, step: 1e9, procs: []int{42}}
	c, err := New(Options{
		Containers: ctrs, Sandboxes: pods, Cgroups: cgs,
		DiskInterval: time.Hour, ProcRoot: proc,
		Network: func(path string) ([]Interface, error) {
			return []Interface{{Name: "eth0", RxBytes: 10, TxBytes: 20}}, nil
		},
		Disk: func(string) (Disk, error) { disks++; return Disk{UsedBytes: 4096, Inodes: 1}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	c.devices.sysDev, c.devices.mounts = proc, proc // no device known: named by number
	ctx := context.Background()
	c.Refresh(ctx)
	first, ok := c.Container("run")
	if !ok || first.CPU.HasRate || first.CPU.UsageNanos != 1e9 || first.Disk == nil || first.Disk.UsedBytes != 4096 {
		t.Fatalf("first sample %+v %v", first, ok)
	}
	if p := first.Processes; p == nil || p.Count != 1 || p.FDs != 1 || p.Sockets != 1 {
		t.Errorf("first sample processes %+v, want pid 42's one socket", p)
	}
	if len(first.IO) != 1 || first.IO[0].Device != "7:3" || first.IO[0].Bytes != 512 {
		t.Errorf("first sample io %+v", first.IO)
	}
	if first.Disk.Device != "0:0" {
		t.Errorf("writable layer device %q, want the fake's 0:0 by number", first.Disk.Device)
	}
	time.Sleep(20 * time.Millisecond)
	c.Refresh(ctx)
	second, _ := c.Container("run")
	// 1 s of cpu in about 20 ms: far above one core, but it must be a rate.
	if !second.CPU.HasRate || second.CPU.NanoCores < 1e9 || second.CPU.UsageNanos != 2e9 {
		t.Errorf("second sample cpu %+v", second.CPU)
	}
	if disks != 1 {
		t.Errorf("writable layer measured %d times within DiskInterval, want once", disks)
	}
	if second.Processes != first.Processes {
		t.Error("processes scanned again within DiskInterval")
	}
	if second.IOAt != first.IOAt || len(second.IO) != 1 {
		t.Errorf("block I/O read again within DiskInterval: %v then %v", first.IOAt, second.IOAt)
	}
	// Each pass: the pod, "run" (with block I/O the first time only), "new" (with block I/O
	// until its cgroup is read once).
	io := containerExtra | cgroups.ExtraIO
	want := []cgroups.Extra{0, io, io, 0, containerExtra, io}
	if !slices.Equal(cgs.extras, want) {
		t.Errorf("cgroups read with extras %v, want %v", cgs.extras, want)
	}
	if s, ok := c.Container("new"); !ok || !s.At.IsZero() {
		t.Errorf("created container without cgroup: %+v %v", s, ok)
	}
	if _, ok := c.Container("gone"); ok {
		t.Error("exited container sampled")
	}
	p, ok := c.Pod("pod")
	if !ok || !p.CPU.HasRate || len(p.Interfaces) != 1 || p.Interfaces[0].TxBytes != 20 || p.NetworkAt.IsZero() {
		t.Errorf("pod sample %+v %v", p, ok)
	}
}

// TestCollectorQuiet: a pass over pods and containers whose cgroups used no cpu since they
// were last read in full reads one cpu counter per pod (and per container not below a quiet
// pod) and carries the rest forward, with a zero rate, until QuietRefresh; a cgroup that ran
// is read in full at once.
func TestCollectorQuiet(t *testing.T) {
	dir := t.TempDir()
	ctrs := fakeContainers{
		{ID: "a", PodID: "pod", State: container.StateRunning, CgroupPath: "/pod/a", Dir: dir},
		{ID: "b", PodID: "pod", State: container.StateRunning, CgroupPath: "/elsewhere/b", Dir: dir},
	}
	pods := fakePods{{ID: "pod", State: sandbox.StateReady, CgroupParent: "/pod", NetNSPath: "/ns/net"}}
	var disks, nets int
	cgs := &fakeCgroups{cpu: map[string]uint64{}}
	c, err := New(Options{
		Containers: ctrs, Sandboxes: pods, Cgroups: cgs,
		DiskInterval: time.Nanosecond, QuietRefresh: time.Hour, ProcRoot: t.TempDir(),
		Network: func(string) ([]Interface, error) { nets++; return []Interface{{Name: "eth0"}}, nil },
		Disk:    func(string) (Disk, error) { disks++; return Disk{UsedBytes: 1}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.Refresh(ctx)
	first, _ := c.Container("a")
	if len(cgs.extras) != 3 || disks != 2 || nets != 1 || first.At.IsZero() {
		t.Fatalf("first pass: %d full reads, %d disk walks, %d network reads; want 3, 2, 1", len(cgs.extras), disks, nets)
	}
	for range 3 {
		time.Sleep(2 * time.Millisecond)
		c.Refresh(ctx)
	}
	// Three quiet passes: the pod's counter and b's (not below the pod's cgroup) each time, and
	// the pod's interfaces (packets need no cpu in the pod).
	if len(cgs.extras) != 3 || disks != 2 || nets != 4 || cgs.usageReads != 6 {
		t.Errorf("quiet passes: %d full reads, %d disk walks, %d network reads, %d counter reads; want 3, 2, 4, 6",
			len(cgs.extras), disks, nets, cgs.usageReads)
	}
	a, _ := c.Container("a")
	p, _ := c.Pod("pod")
	if !a.At.After(first.At) || !a.CPU.HasRate || a.CPU.NanoCores != 0 || a.Disk == nil || a.Processes == nil {
		t.Errorf("quiet container sample %+v, want the first carried forward with a zero rate", a)
	}
	if !p.CPU.HasRate || p.CPU.NanoCores != 0 || len(p.Interfaces) != 1 {
		t.Errorf("quiet pod sample %+v", p)
	}

	// Something runs: everything is read in full again.
	cgs.step = 1e6
	c.Refresh(ctx)
	if len(cgs.extras) != 6 || disks != 4 || nets != 5 {
		t.Errorf("busy pass: %d full reads, %d disk walks, %d network reads; want 6, 4, 5", len(cgs.extras), disks, nets)
	}
	if a, _ := c.Container("a"); !a.CPU.HasRate || a.CPU.NanoCores == 0 {
		t.Errorf("busy container cpu %+v, want a rate", a.CPU)
	}

	// Quiet, but past QuietRefresh: read in full.
	cgs.step = 0
	c.opts.QuietRefresh = time.Nanosecond
	c.Refresh(ctx)
	if len(cgs.extras) != 9 {
		t.Errorf("after QuietRefresh: %d full reads, want 9", len(cgs.extras))
	}
}

// TestCollectorQuietAfterUnwalkedWork: a container that used cpu on a pass that did not walk
// the disks, then went quiet, is walked on the next pass that walks them: it may have
// written its layer meanwhile (seen: a container that wrote 10 MiB and slept reported 4 KiB
// for up to QuietRefresh).
func TestCollectorQuietAfterUnwalkedWork(t *testing.T) {
	dir := t.TempDir()
	ctrs := fakeContainers{{ID: "a", PodID: "pod", State: container.StateRunning, CgroupPath: "/pod/a", Dir: dir}}
	pods := fakePods{{ID: "pod", State: sandbox.StateReady, CgroupParent: "/pod"}}
	used := uint64(4096)
	cgs := &fakeCgroups{cpu: map[string]uint64{}}
	c, err := New(Options{
		Containers: ctrs, Sandboxes: pods, Cgroups: cgs,
		DiskInterval: time.Nanosecond, QuietRefresh: time.Hour, ProcRoot: t.TempDir(),
		Network: func(string) ([]Interface, error) { return nil, nil },
		Disk:    func(string) (Disk, error) { return Disk{UsedBytes: used}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.Refresh(ctx) // walks: 4 KiB
	c.opts.DiskInterval = time.Hour
	cgs.step, used = 1e6, 10<<20
	c.Refresh(ctx) // busy, read in full, no walk: the layer grows meanwhile
	cgs.step = 0
	c.Refresh(ctx) // quiet
	c.opts.DiskInterval = time.Nanosecond
	time.Sleep(time.Millisecond)
	c.Refresh(ctx) // walks: a must be walked although quiet
	if a, _ := c.Container("a"); a.Disk == nil || a.Disk.UsedBytes != 10<<20 {
		t.Errorf("writable layer after the walk pass: %+v, want 10 MiB", a.Disk)
	}
	// Once walked with nothing run since, it is quiet again on walk passes.
	walked, _ := c.Container("a")
	time.Sleep(time.Millisecond)
	c.Refresh(ctx)
	if a, _ := c.Container("a"); !a.fullAt.Equal(walked.fullAt) || !a.At.After(walked.At) {
		t.Errorf("quiet walk pass after a walk: read in full at %v (before: %v), want carried forward", a.fullAt, walked.fullAt)
	}
}

// TestCollectorQuietTier: when the cgroup the pods sit in (their QoS tier) used no cpu since
// the last pass, a pass reads that one counter and nothing of the pods or their containers.
func TestCollectorQuietTier(t *testing.T) {
	var pods fakePods
	var ctrs fakeContainers
	for _, id := range []string{"p1", "p2", "p3"} {
		pods = append(pods, sandbox.Sandbox{ID: id, State: sandbox.StateReady, CgroupParent: "/tier/" + id})
		ctrs = append(ctrs, container.Container{ID: id + "c", PodID: id, State: container.StateRunning, CgroupPath: "/tier/" + id + "/c"})
	}
	cgs := &fakeCgroups{cpu: map[string]uint64{}}
	c, err := New(Options{Containers: ctrs, Sandboxes: pods, Cgroups: cgs, QuietRefresh: time.Hour, ProcRoot: t.TempDir(),
		Disk: func(string) (Disk, error) { return Disk{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.Refresh(ctx)
	if len(cgs.extras) != 6 {
		t.Fatalf("first pass: %d full reads, want 6", len(cgs.extras))
	}
	reads := cgs.usageReads
	for range 3 {
		c.Refresh(ctx)
	}
	if len(cgs.extras) != 6 || cgs.usageReads-reads != 3 {
		t.Errorf("three quiet passes: %d full reads, %d counter reads; want 6 and one counter per pass", len(cgs.extras), cgs.usageReads-reads)
	}
	if p, _ := c.Pod("p2"); !p.CPU.HasRate || p.CPU.NanoCores != 0 {
		t.Errorf("quiet pod sample %+v", p)
	}
	// Something below the tier runs: each pod is asked, and read in full.
	cgs.step = 1
	c.Refresh(ctx)
	if len(cgs.extras) != 12 {
		t.Errorf("busy pass: %d full reads, want 12", len(cgs.extras))
	}
}

func TestCPURate(t *testing.T) {
	t0 := time.Unix(100, 0)
	for _, tc := range []struct {
		desc            string
		prevAt, at      time.Time
		prev, cur, want uint64
		has             bool
	}{
		{"no previous sample", time.Time{}, t0, 0, 5, 0, false},
		{"one core", t0, t0.Add(2 * time.Second), 1e9, 3e9, 1e9, true},
		{"half a core", t0, t0.Add(time.Second), 0, 5e8, 5e8, true},
		{"counter went back (new cgroup)", t0, t0.Add(time.Second), 9, 1, 0, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got := cpuRate(tc.prevAt, tc.prev, tc.at, tc.cur)
			if got.HasRate != tc.has || got.NanoCores != tc.want || got.UsageNanos != tc.cur {
				t.Errorf("cpuRate = %+v, want rate %d (%v)", got, tc.want, tc.has)
			}
		})
	}
}

func TestParseNetDev(t *testing.T) {
	raw := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0:    1296      14    1    2    0     0          0         0      836       9    3    4    0     0       0          0
`
	got, err := parseNetDev([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []Interface{{Name: "eth0", RxBytes: 1296, RxPackets: 14, RxErrors: 1, RxDropped: 2, TxBytes: 836, TxPackets: 9, TxErrors: 3, TxDropped: 4}}
	if len(got) != 1 || got[0] != want[0] {
		t.Errorf("parseNetDev = %+v, want %+v", got, want)
	}
	if _, err := parseNetDev([]byte("h\nh\neth0: 1 2\n")); err == nil {
		t.Error("short line accepted")
	}
}

func TestDiskUsage(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := DiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	// dir, a (= b), d
	if d.Inodes != 3 || d.UsedBytes < 1<<20 || d.UsedBytes > 1<<20+64<<10 {
		t.Errorf("DiskUsage = %+v, want 3 inodes and about 1 MiB", d)
	}
	if _, err := DiskUsage(filepath.Join(dir, "nope")); err == nil {
		t.Error("missing dir measured")
	}
}

// TestContainerNow: a container started after the last pass is read on demand, without
// waiting for the next pass and without changing the published sample.
func TestContainerNow(t *testing.T) {
	ctrs := fakeContainers{}
	c, err := New(Options{
		Containers: ctrs, Sandboxes: fakePods{}, Cgroups: &fakeCgroups{cpu: map[string]uint64{}, step: 7},
		Disk: func(string) (Disk, error) { return Disk{}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Refresh(context.Background())
	fresh := container.Container{ID: "fresh", State: container.StateRunning, CgroupPath: "/pod/fresh"}
	s, ok := c.ContainerNow(fresh)
	if !ok || s.At.IsZero() || s.Cgroup.CPUUsageNanos != 7 {
		t.Errorf("on-demand sample %+v %v, want a reading", s, ok)
	}
	if _, ok := c.Container("fresh"); ok {
		t.Error("the on-demand reading was published")
	}
	if _, ok := c.ContainerNow(container.Container{ID: "done", State: container.StateExited, CgroupPath: "/pod/done"}); ok {
		t.Error("an exited container was sampled")
	}
}

// TestPodNow: a ready pod the background has not read the network of yet is read on demand,
// without changing the published sample; one already read, or without a namespace, is not.
func TestPodNow(t *testing.T) {
	var reads int
	c, err := New(Options{
		Containers: fakeContainers{}, Sandboxes: fakePods{}, Cgroups: &fakeCgroups{cpu: map[string]uint64{}},
		Network: func(string) ([]Interface, error) {
			reads++
			return []Interface{{Name: "eth0", RxBytes: 1}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Refresh(context.Background())
	fresh := sandbox.Sandbox{ID: "fresh", State: sandbox.StateReady, NetNSPath: "/ns/fresh"}
	p, ok := c.PodNow(fresh)
	if !ok || p.ID != "fresh" || p.NetworkAt.IsZero() || len(p.Interfaces) != 1 || reads != 1 {
		t.Errorf("PodNow(fresh) = %+v, %v after %d reads", p, ok, reads)
	}
	if _, ok := c.Pod("fresh"); ok {
		t.Error("the on-demand reading was published")
	}
	if _, ok := c.PodNow(sandbox.Sandbox{ID: "host", State: sandbox.StateReady}); ok || reads != 1 {
		t.Errorf("a pod on the node's network was read (%d reads)", reads)
	}
}

// TestCollectorQuietNetwork: a quiet pod's interfaces are read again only when the node's end
// of its veth says packets crossed since they were read; the node's interfaces are read once
// a pass. A pod without a known veth is read every pass.
func TestCollectorQuietNetwork(t *testing.T) {
	pods := fakePods{
		{ID: "pod", State: sandbox.StateReady, CgroupParent: "/pod", NetNSPath: "/ns/pod", HostInterface: "vethpod"},
		{ID: "other", State: sandbox.StateReady, CgroupParent: "/other", NetNSPath: "/ns/other"},
	}
	nets := map[string]int{}
	hostReads := 0
	veth := Interface{Name: "vethpod", RxPackets: 5, TxPackets: 7}
	rxBytes := uint64(100)
	c, err := New(Options{
		Containers: fakeContainers{}, Sandboxes: pods, Cgroups: &fakeCgroups{cpu: map[string]uint64{}},
		QuietRefresh: time.Hour, ProcRoot: t.TempDir(),
		Network: func(path string) ([]Interface, error) {
			nets[path]++
			return []Interface{{Name: "eth0", RxBytes: rxBytes}}, nil
		},
		HostNetwork: func() ([]Interface, error) {
			hostReads++
			return []Interface{{Name: "peapod0", RxPackets: 1000}, veth}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.Refresh(ctx)
	first, _ := c.Pod("pod")
	for range 3 {
		time.Sleep(2 * time.Millisecond)
		c.Refresh(ctx)
	}
	if nets["/ns/pod"] != 1 || nets["/ns/other"] != 4 || hostReads != 4 {
		t.Fatalf("quiet passes: pod read %d times, other %d, the node's interfaces %d; want 1, 4, 4", nets["/ns/pod"], nets["/ns/other"], hostReads)
	}
	p, _ := c.Pod("pod")
	if !p.NetworkAt.After(first.NetworkAt) || len(p.Interfaces) != 1 || p.Interfaces[0].RxBytes != 100 {
		t.Errorf("quiet pod network %+v (first at %v), want the first carried forward, as of now", p, first.NetworkAt)
	}

	// A packet crosses the veth: the pod is read again, once.
	veth.TxPackets++
	rxBytes = 180
	c.Refresh(ctx)
	c.Refresh(ctx)
	if p, _ := c.Pod("pod"); nets["/ns/pod"] != 2 || p.Interfaces[0].RxBytes != 180 {
		t.Errorf("after a packet: pod read %d times (want 2), rx bytes %d (want 180)", nets["/ns/pod"], p.Interfaces[0].RxBytes)
	}

	// The veth is gone from the node's list: read inside the pod every pass.
	veth.Name = "renamed"
	c.Refresh(ctx)
	c.Refresh(ctx)
	if nets["/ns/pod"] != 4 {
		t.Errorf("without its veth: pod read %d times, want 4", nets["/ns/pod"])
	}
}
