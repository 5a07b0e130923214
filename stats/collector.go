package stats

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/container"
	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/sandbox"
)

// Default cadences.
const (
	DefaultInterval     = 2 * time.Second
	DefaultDiskInterval = 5 * time.Second
	DefaultQuietRefresh = 30 * time.Second
)

// containerLister, podLister and cgroupReader are what the collector reads; container.Manager,
// sandbox.Manager and cgroups.Manager in the daemon.
type containerLister interface {
	List(container.Filter) []container.Container
}

type podLister interface {
	List(sandbox.Filter) []sandbox.Sandbox
}

type cgroupReader interface {
	Stats(path string, extra cgroups.Extra) (cgroups.Stats, error)
	// CPUUsage is the cgroup's cumulative cpu time alone: whether anything in it ran.
	CPUUsage(path string) (uint64, error)
}

// containerExtra is what a container's sample reads beyond a pod's: its metrics need OOM
// kills and the process list every pass, and block I/O with the slow parts (ExtraIO: on v1
// five files for what is often "Total 0").
const containerExtra = cgroups.ExtraEvents | cgroups.ExtraProcs

// Options are a Collector's sources and cadence.
type Options struct {
	Containers containerLister
	Sandboxes  podLister
	Cgroups    cgroupReader
	Logger     *zap.Logger
	// Interval between samples of cgroups and networks; DefaultInterval when zero.
	Interval time.Duration
	// DiskInterval between walks of the writable layers and scans of the containers'
	// processes (their file descriptors in /proc); DefaultDiskInterval when zero.
	DiskInterval time.Duration
	// QuietRefresh is how long the sample of a quiet pod or container (its cgroup used no
	// cpu since it was last read in full) is carried forward before it is read in full
	// again; DefaultQuietRefresh when zero. What changes without cpu time in the cgroup is
	// what the kernel does to it (reclaim) and packets that reach a pod nobody reads from.
	QuietRefresh time.Duration
	// Network reads the interfaces of the network namespace pinned at path; nil means
	// ReadNetwork (inside the namespace, from /proc/thread-self/net/dev).
	Network func(path string) ([]Interface, error)
	// HostNetwork reads the node's interfaces, among them the node's end of each pod's veth
	// (Sandbox.HostInterface): a quiet pod whose veth passed no packet since its counters
	// were read is not read again. nil means ReadHostNetwork.
	HostNetwork func() ([]Interface, error)
	// Disk measures a writable layer directory; nil means DiskUsage.
	Disk func(dir string) (Disk, error)
	// ProcRoot is where processes are read (file descriptors, limits); "" means /proc.
	ProcRoot string
}

// CPU is a cumulative cpu time and, once two samples exist, the rate between them.
type CPU struct {
	UsageNanos uint64
	// NanoCores is the cpu used per second between the two latest samples, in billionths of
	// a core; valid only when HasRate.
	NanoCores uint64
	HasRate   bool
}

// Disk is the space and inodes a writable layer uses, and the filesystem holding it.
type Disk struct {
	At        time.Time
	UsedBytes uint64
	Inodes    uint64
	// Major and Minor number the filesystem's device; Device names it as cadvisor does
	// ("/dev/vda", else the mount source such as "overlay"), filled in by the Collector.
	Major, Minor uint64
	Device       string
	// CapacityBytes, InodesTotal and InodesFree are the filesystem's (statfs).
	CapacityBytes           uint64
	InodesTotal, InodesFree uint64
}

// Interface is one network interface's counters.
type Interface struct {
	Name                 string
	RxBytes, RxErrors    uint64
	TxBytes, TxErrors    uint64
	RxPackets, TxPackets uint64
	RxDropped, TxDropped uint64
}

// Container is a container's latest sample.
type Container struct {
	ID    string
	PodID string
	// At is when the cgroup was read; zero while it never was (no cgroup yet).
	At     time.Time
	Cgroup cgroups.Stats
	CPU    CPU
	// Disk is the writable layer's use; nil until first measured.
	Disk *Disk
	// Processes is what the container's processes hold; nil while the cgroup was never read.
	Processes *Processes
	// IO is the cgroup's block I/O with each device named, read at IOAt (with the writable
	// layer, every DiskInterval); Cgroup.IO is not kept.
	IO   []IO
	IOAt time.Time
	// fullAt is when the cgroup was last read in full; At moves on without it while the
	// container is quiet.
	fullAt time.Time
	// slowCPU is the cgroup's cpu usage when the writable layer, block I/O and processes
	// were last read: while it is the usage now, nothing ran that could have changed them.
	slowCPU uint64
}

// IO is a container's block I/O on one device for one operation; Device names it like
// Disk.Device.
type IO struct {
	cgroups.DeviceIO
	Device string
}

// Pod is a pod's latest sample.
type Pod struct {
	ID string
	// At is when the pod cgroup was read; zero while it never was.
	At     time.Time
	Cgroup cgroups.Stats
	CPU    CPU
	// NetworkAt is when Interfaces were read; zero for a pod on the node's network or
	// while they never were.
	NetworkAt  time.Time
	Interfaces []Interface
	// fullAt is when the pod was last read in full (see Container.fullAt).
	fullAt time.Time
	// pass is the Refresh pass that took or carried this sample.
	pass uint64
	// hostRx and hostTx are the packets of the node's end of the pod's veth, read just
	// before Interfaces were (hostKnown).
	hostRx, hostTx uint64
	hostKnown      bool
}

// snapshot is one complete sample; never changed once published.
type snapshot struct {
	containers map[string]Container
	pods       map[string]Pod
}

// Collector samples in the background (Run) and answers from its last sample.
type Collector struct {
	opts Options
	log  *zap.Logger
	last atomic.Pointer[snapshot]
	// mu serialises sampling passes (Run's ticks and Refresh).
	mu       sync.Mutex
	lastDisk time.Time
	devices  *deviceNames
	// pass numbers Refresh's passes; parentUsage is the cpu counter of each pod cgroup's
	// parent (a QoS tier) as the last pass read it.
	pass        uint64
	parentUsage map[string]uint64
}

// New returns a Collector; call Run to start sampling.
func New(opts Options) (*Collector, error) {
	if opts.Containers == nil || opts.Sandboxes == nil || opts.Cgroups == nil {
		return nil, fmt.Errorf("stats collector: missing sources: %w", errdefs.ErrInvalidArgument)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.DiskInterval <= 0 {
		opts.DiskInterval = DefaultDiskInterval
	}
	if opts.QuietRefresh <= 0 {
		opts.QuietRefresh = DefaultQuietRefresh
	}
	if opts.Network == nil {
		opts.Network = ReadNetwork
	}
	if opts.HostNetwork == nil {
		opts.HostNetwork = ReadHostNetwork
	}
	if opts.Disk == nil {
		opts.Disk = DiskUsage
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	c := &Collector{opts: opts, log: opts.Logger, devices: newDeviceNames()}
	c.last.Store(&snapshot{containers: map[string]Container{}, pods: map[string]Pod{}})
	return c, nil
}

// Run samples every Interval until ctx ends.
func (c *Collector) Run(ctx context.Context) {
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		c.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Container returns the latest sample of a created or running container.
func (c *Collector) Container(id string) (Container, bool) {
	s, ok := c.last.Load().containers[id]
	return s, ok
}

// ContainerNow is Container for ct, except that a container the background has no cgroup
// reading of yet (started since the last pass) is read at once, so that a new container's
// stats are never empty. That reading is not kept.
func (c *Collector) ContainerNow(ct container.Container) (Container, bool) {
	if s, ok := c.Container(ct.ID); ok && !s.At.IsZero() {
		return s, true
	}
	if ct.State != container.StateCreated && ct.State != container.StateRunning {
		return Container{}, false
	}
	return c.sampleContainer(ct, Container{}, false), true
}

// Pod returns the latest sample of a pod.
func (c *Collector) Pod(id string) (Pod, bool) {
	s, ok := c.last.Load().pods[id]
	return s, ok
}

// PodNow is Pod for sb, except that the network of a ready pod the background has not read
// yet (started since the last pass) is read at once, so that a new pod's network figures are
// never missing. That reading is not kept.
func (c *Collector) PodNow(sb sandbox.Sandbox) (Pod, bool) {
	s, ok := c.Pod(sb.ID)
	if !s.NetworkAt.IsZero() || sb.State != sandbox.StateReady || sb.NetNSPath == "" {
		return s, ok
	}
	s.ID = sb.ID
	c.readNetwork(sb, &s, nil) // not kept: no need of the node's end of the veth
	return s, true
}

// Refresh takes one sample of everything now and publishes it.
func (c *Collector) Refresh(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.last.Load()
	now := time.Now()
	walkDisks := now.Sub(c.lastDisk) >= c.opts.DiskInterval
	if walkDisks {
		c.lastDisk = now
	}
	next := &snapshot{containers: map[string]Container{}, pods: map[string]Pod{}}
	c.pass++
	hp := &hostPass{read: c.opts.HostNetwork, log: c.log}
	sandboxes := c.opts.Sandboxes.List(sandbox.Filter{})
	quietParents := c.readParents(sandboxes)
	// The cgroups of quiet pods, whose containers below them are quiet too.
	quietPods := map[string]string{}
	for _, sb := range sandboxes {
		if ctx.Err() != nil {
			return
		}
		old := prev.pods[sb.ID]
		if p, ok := c.quietPod(sb, old, quietParents[parentCgroup(sb.CgroupParent)], now, hp); ok {
			next.pods[sb.ID] = p
			quietPods[sb.ID] = sb.CgroupParent
			continue
		}
		p := c.samplePod(sb, old, hp)
		p.pass = c.pass
		next.pods[sb.ID] = p
	}
	for _, ct := range c.opts.Containers.List(container.Filter{}) {
		if ctx.Err() != nil {
			return
		}
		if ct.State != container.StateCreated && ct.State != container.StateRunning {
			continue
		}
		old, seen := prev.containers[ct.ID]
		if seen {
			podCgroup, podQuiet := quietPods[ct.PodID]
			if s, ok := c.quietContainer(ct, old, podQuiet && strings.HasPrefix(ct.CgroupPath, podCgroup+"/"), walkDisks, now); ok {
				next.containers[ct.ID] = s
				continue
			}
		}
		next.containers[ct.ID] = c.sampleContainer(ct, old, seen && !walkDisks)
	}
	c.last.Store(next)
}

// quietPod carries prev forward when the pod's cgroup used no cpu since prev read it in full
// (less than QuietRefresh ago): nothing in the pod ran, so its memory and processes are as
// they were. It reads one file, and the pod's interfaces.
//
// parentQuiet says that the pod cgroup's parent used no cpu since the last pass read it
// (before it read the pod): then a pod sampled by that pass is quiet without reading even its
// counter, and a pass over a node of idle pods reads one file per QoS tier.
func (c *Collector) quietPod(sb sandbox.Sandbox, prev Pod, parentQuiet bool, now time.Time, hp *hostPass) (Pod, bool) {
	if sb.CgroupParent == "" || prev.At.IsZero() || now.Sub(prev.fullAt) >= c.opts.QuietRefresh {
		return Pod{}, false
	}
	usage := prev.Cgroup.CPUUsageNanos
	if !parentQuiet || prev.pass != c.pass-1 {
		var err error
		if usage, err = c.opts.Cgroups.CPUUsage(sb.CgroupParent); err != nil || usage != prev.Cgroup.CPUUsageNanos {
			return Pod{}, false
		}
	}
	out := prev
	out.At, out.CPU, out.pass = now, quietCPU(usage), c.pass
	// Packets reach a pod (and the kernel answers pings and acknowledges) without any cpu
	// time in its cgroup: its interfaces are read every pass, unless the node's end of its
	// veth says no packet crossed since they were.
	if sb.NetNSPath != "" && sb.State == sandbox.StateReady {
		if networkQuiet(sb, prev, hp) {
			out.NetworkAt = now
		} else {
			c.readNetwork(sb, &out, hp)
		}
	}
	return out, true
}

// networkQuiet says no packet crossed the pod's veth since prev read its interfaces.
func networkQuiet(sb sandbox.Sandbox, prev Pod, hp *hostPass) bool {
	if sb.HostInterface == "" || !prev.hostKnown || prev.NetworkAt.IsZero() {
		return false
	}
	rx, tx, ok := hp.packets(sb.HostInterface)
	return ok && rx == prev.hostRx && tx == prev.hostTx
}

// hostPass reads the node's interfaces at most once a pass, when a pod first needs them.
type hostPass struct {
	read func() ([]Interface, error)
	log  *zap.Logger
	done bool
	ifs  map[string]Interface
}

// packets are the packets the node's interface name received and sent, as this pass read
// them; ok is false when it is not there (or could not be read).
func (h *hostPass) packets(name string) (rx, tx uint64, ok bool) {
	if !h.done {
		h.done = true
		ifs, err := h.read()
		if err != nil {
			h.log.Debug("read the node's interfaces", zap.Error(err))
		}
		h.ifs = make(map[string]Interface, len(ifs))
		for _, i := range ifs {
			h.ifs[i.Name] = i
		}
	}
	i, ok := h.ifs[name]
	return i.RxPackets, i.TxPackets, ok
}

// readParents reads the cpu counter of the parent of every pod cgroup (once each) and
// returns those that did not move since the last pass.
func (c *Collector) readParents(pods []sandbox.Sandbox) map[string]bool {
	usage := map[string]uint64{}
	quiet := map[string]bool{}
	for _, sb := range pods {
		p := parentCgroup(sb.CgroupParent)
		if _, done := usage[p]; done || p == "" {
			continue
		}
		u, err := c.opts.Cgroups.CPUUsage(p)
		if err != nil {
			continue
		}
		usage[p] = u
		if last, ok := c.parentUsage[p]; ok && last == u {
			quiet[p] = true
		}
	}
	c.parentUsage = usage
	return quiet
}

// parentCgroup is the parent of a cgroupfs pod cgroup path ("/kubepods/besteffort" of
// "/kubepods/besteffort/pod<uid>"), "" for the root or a systemd slice name.
func parentCgroup(p string) string {
	if !strings.HasPrefix(p, "/") {
		return ""
	}
	d := path.Dir(p)
	if d == "/" {
		return ""
	}
	return d
}

// quietContainer is quietPod for a container: quiet when its pod is (underPod: its cgroup is
// below the pod's) or when its own cgroup used no cpu since prev. Its writable layer, block
// I/O and descriptors are carried too: nothing wrote or opened anything. On a pass that
// walks the disks (walkDisks), a container that used cpu since its last walk is not quiet,
// however idle since: it may have written its layer after that walk (a container that
// wrote 10 MiB and slept showed its layer's first 4 KiB until the next full read).
func (c *Collector) quietContainer(ct container.Container, prev Container, underPod, walkDisks bool, now time.Time) (Container, bool) {
	if ct.CgroupPath == "" || prev.At.IsZero() || now.Sub(prev.fullAt) >= c.opts.QuietRefresh {
		return Container{}, false
	}
	usage := prev.Cgroup.CPUUsageNanos
	if !underPod {
		var err error
		if usage, err = c.opts.Cgroups.CPUUsage(ct.CgroupPath); err != nil || usage != prev.Cgroup.CPUUsageNanos {
			return Container{}, false
		}
	}
	if walkDisks && usage != prev.slowCPU {
		return Container{}, false
	}
	out := prev
	out.At, out.CPU = now, quietCPU(usage)
	return out, true
}

// quietCPU is the cpu of a cgroup that used none since the last sample: a rate of zero.
func quietCPU(usage uint64) CPU { return CPU{UsageNanos: usage, HasRate: true} }

func (c *Collector) samplePod(sb sandbox.Sandbox, prev Pod, hp *hostPass) Pod {
	out := Pod{ID: sb.ID}
	if sb.CgroupParent != "" {
		out.At, out.Cgroup, out.CPU = c.readCgroup(log.PodSandboxID(sb.ID), sb.CgroupParent, 0, prev.At, prev.Cgroup)
		out.fullAt = out.At
	}
	if sb.NetNSPath != "" && sb.State == sandbox.StateReady {
		c.readNetwork(sb, &out, hp)
	}
	return out
}

// readNetwork reads the pod's interfaces inside its namespace, and first (with hp) the
// packets of the node's end of its veth, so that a packet between the two reads shows next
// pass.
func (c *Collector) readNetwork(sb sandbox.Sandbox, out *Pod, hp *hostPass) {
	var rx, tx uint64
	known := false
	if sb.HostInterface != "" && hp != nil {
		rx, tx, known = hp.packets(sb.HostInterface)
	}
	ifs, err := c.opts.Network(sb.NetNSPath)
	if err != nil {
		c.log.Debug("read pod network counters", log.PodSandboxID(sb.ID), zap.Error(err))
		out.hostKnown = false
		return
	}
	out.NetworkAt, out.Interfaces = time.Now(), ifs
	out.hostRx, out.hostTx, out.hostKnown = rx, tx, known
}

// sampleContainer reads ct's cgroup and, unless keepSlow and prev has them, walks its
// writable layer and scans its processes' file descriptors (the slow parts, every
// DiskInterval).
func (c *Collector) sampleContainer(ct container.Container, prev Container, keepSlow bool) Container {
	out := Container{ID: ct.ID, PodID: ct.PodID}
	id := log.ContainerID(ct.ID)
	readIO := !keepSlow || prev.IOAt.IsZero()
	if ct.CgroupPath != "" {
		extra := containerExtra
		if readIO {
			extra |= cgroups.ExtraIO
		}
		out.At, out.Cgroup, out.CPU = c.readCgroup(id, ct.CgroupPath, extra, prev.At, prev.Cgroup)
		out.fullAt = out.At
	}
	out.slowCPU = prev.slowCPU
	if !keepSlow {
		out.slowCPU = out.Cgroup.CPUUsageNanos
	}
	switch {
	case out.At.IsZero():
	case readIO:
		out.IOAt = out.At
		for _, d := range out.Cgroup.IO {
			out.IO = append(out.IO, IO{DeviceIO: d, Device: c.devices.name(d.Major, d.Minor)})
		}
	default:
		out.IO, out.IOAt = prev.IO, prev.IOAt
	}
	out.Cgroup.IO = nil
	switch {
	case keepSlow && prev.Processes != nil:
		out.Processes = prev.Processes
	case !out.At.IsZero():
		p := ReadProcesses(c.opts.ProcRoot, out.Cgroup.Procs, ct.Pid)
		out.Processes = &p
	}
	switch {
	case keepSlow && prev.Disk != nil:
		out.Disk = prev.Disk
	case ct.Dir != "":
		d, err := c.opts.Disk(ct.Dir + "/upper")
		if err != nil {
			c.log.Debug("measure writable layer", id, zap.Error(err))
			out.Disk = prev.Disk
		} else {
			d.Device = c.devices.name(d.Major, d.Minor)
			out.Disk = &d
		}
	}
	return out
}

// readCgroup reads the cgroup at p and the cpu rate since the previous reading. A cgroup
// that does not exist (yet, or any more) is no sample.
func (c *Collector) readCgroup(id zap.Field, p string, extra cgroups.Extra, prevAt time.Time, prev cgroups.Stats) (time.Time, cgroups.Stats, CPU) {
	st, err := c.opts.Cgroups.Stats(p, extra)
	at := time.Now()
	if err != nil {
		if !errors.Is(err, errdefs.ErrNotFound) {
			c.log.Debug("read cgroup stats", id, zap.String(log.KeyCgroup, p), zap.Error(err))
		}
		return time.Time{}, cgroups.Stats{}, CPU{}
	}
	return at, st, cpuRate(prevAt, prev.CPUUsageNanos, at, st.CPUUsageNanos)
}

// cpuRate is the cpu used per second between two samples, in nanocores.
func cpuRate(prevAt time.Time, prevNanos uint64, at time.Time, nanos uint64) CPU {
	out := CPU{UsageNanos: nanos}
	dt := at.Sub(prevAt)
	if prevAt.IsZero() || dt <= 0 || nanos < prevNanos {
		return out
	}
	out.NanoCores = uint64(float64(nanos-prevNanos) / dt.Seconds())
	out.HasRate = true
	return out
}
