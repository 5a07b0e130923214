package stats

import (
	"context"
	"errors"
	"fmt"
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
	Stats(path string) (cgroups.Stats, error)
}

// Options are a Collector's sources and cadence.
type Options struct {
	Containers containerLister
	Sandboxes  podLister
	Cgroups    cgroupReader
	Logger     *zap.Logger
	// Interval between samples of cgroups and networks; DefaultInterval when zero.
	Interval time.Duration
	// DiskInterval between walks of the writable layers; DefaultDiskInterval when zero.
	DiskInterval time.Duration
	// Network reads the interfaces of the network namespace pinned at path; nil means
	// ReadNetwork (inside the namespace, from /proc/thread-self/net/dev).
	Network func(path string) ([]Interface, error)
	// Disk measures a writable layer directory; nil means DiskUsage.
	Disk func(dir string) (Disk, error)
}

// CPU is a cumulative cpu time and, once two samples exist, the rate between them.
type CPU struct {
	UsageNanos uint64
	// NanoCores is the cpu used per second between the two latest samples, in billionths of
	// a core; valid only when HasRate.
	NanoCores uint64
	HasRate   bool
}

// Disk is the space and inodes a writable layer uses.
type Disk struct {
	At        time.Time
	UsedBytes uint64
	Inodes    uint64
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
	if opts.Network == nil {
		opts.Network = ReadNetwork
	}
	if opts.Disk == nil {
		opts.Disk = DiskUsage
	}
	c := &Collector{opts: opts, log: opts.Logger}
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
	for _, sb := range c.opts.Sandboxes.List(sandbox.Filter{}) {
		if ctx.Err() != nil {
			return
		}
		next.pods[sb.ID] = c.samplePod(sb, prev.pods[sb.ID])
	}
	for _, ct := range c.opts.Containers.List(container.Filter{}) {
		if ctx.Err() != nil {
			return
		}
		if ct.State != container.StateCreated && ct.State != container.StateRunning {
			continue
		}
		old, seen := prev.containers[ct.ID]
		next.containers[ct.ID] = c.sampleContainer(ct, old, seen && !walkDisks)
	}
	c.last.Store(next)
}

func (c *Collector) samplePod(sb sandbox.Sandbox, prev Pod) Pod {
	out := Pod{ID: sb.ID}
	l := c.log.With(log.PodSandboxID(sb.ID))
	if sb.CgroupParent != "" {
		out.At, out.Cgroup, out.CPU = c.readCgroup(l, sb.CgroupParent, prev.At, prev.Cgroup)
	}
	if sb.NetNSPath != "" && sb.State == sandbox.StateReady {
		ifs, err := c.opts.Network(sb.NetNSPath)
		if err != nil {
			l.Debug("read pod network counters", zap.Error(err))
		} else {
			out.NetworkAt, out.Interfaces = time.Now(), ifs
		}
	}
	return out
}

func (c *Collector) sampleContainer(ct container.Container, prev Container, keepDisk bool) Container {
	out := Container{ID: ct.ID, PodID: ct.PodID}
	l := c.log.With(log.ContainerID(ct.ID))
	if ct.CgroupPath != "" {
		out.At, out.Cgroup, out.CPU = c.readCgroup(l, ct.CgroupPath, prev.At, prev.Cgroup)
	}
	switch {
	case keepDisk && prev.Disk != nil:
		out.Disk = prev.Disk
	case ct.Dir != "":
		d, err := c.opts.Disk(ct.Dir + "/upper")
		if err != nil {
			l.Debug("measure writable layer", zap.Error(err))
			out.Disk = prev.Disk
		} else {
			out.Disk = &d
		}
	}
	return out
}

// readCgroup reads the cgroup at p and the cpu rate since the previous reading. A cgroup
// that does not exist (yet, or any more) is no sample.
func (c *Collector) readCgroup(l *zap.Logger, p string, prevAt time.Time, prev cgroups.Stats) (time.Time, cgroups.Stats, CPU) {
	st, err := c.opts.Cgroups.Stats(p)
	at := time.Now()
	if err != nil {
		if !errors.Is(err, errdefs.ErrNotFound) {
			l.Debug("read cgroup stats", zap.String(log.KeyCgroup, p), zap.Error(err))
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
