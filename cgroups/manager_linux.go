package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/cgroups/systemd"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
)

// IsV2 reports whether /sys/fs/cgroup is the unified cgroup v2 hierarchy. A hybrid host
// (v1 controllers, cgroup2 at /sys/fs/cgroup/unified) is v1.
func IsV2() bool { return cgroups.IsCgroup2UnifiedMode() }

// Manager creates, updates, reads and removes pod cgroups with one driver. It keeps no state
// of its own beyond caches (cgroup readers for Stats, the v1 hierarchies, whether it made the
// QoS tiers), so it is safe for concurrent use and any Manager can clean up after another.
type Manager struct {
	driver string
	v2     bool
	root   string
	logger *zap.Logger
	// drain is how long RemovePod waits for processes to leave the cgroup.
	drain time.Duration
	// readers caches what Stats needs to read a cgroup again (see stats_linux.go).
	readers *statReaders
	// tolerateNoHugetlb drops hugepage limits on a host without a hugetlb controller
	// instead of refusing them (CheckResources).
	tolerateNoHugetlb bool
	// v1Mounts is each v1 controller's hierarchy (see v1Paths), found once.
	v1Mounts func() (map[string]string, error)
	// tiersMade is set once ensureTiers has made the QoS tiers (see CreatePod).
	tiersMade atomic.Bool
}

// Option configures a Manager.
type Option func(*Manager)

// WithTierRoot replaces DefaultTierRoot, so that tests get a tier tree of their own. With the
// systemd driver the name must not contain "-", systemd's slice separator.
func WithTierRoot(name string) Option { return func(m *Manager) { m.root = name } }

// WithTolerateMissingHugetlb sets whether CheckResources drops hugepage limits on a host
// without a hugetlb controller (true, the default) or refuses them (false).
func WithTolerateMissingHugetlb(tolerate bool) Option {
	return func(m *Manager) { m.tolerateNoHugetlb = tolerate }
}

// NewManager returns a Manager for driver "cgroupfs" (also "") or "systemd". The systemd driver
// needs systemd running as the init system; without it the error wraps
// errdefs.ErrFailedPrecondition and says so.
func NewManager(driver string, logger *zap.Logger, opts ...Option) (*Manager, error) {
	driver, err := checkDriver(driver)
	if err != nil {
		return nil, err
	}
	if driver == DriverSystemd && !systemd.IsRunningSystemd() {
		pid1, _ := os.ReadFile("/proc/1/comm")
		return nil, fmt.Errorf("cgroup driver systemd: systemd is not running on this host (no /run/systemd/system, PID 1 is %q); use the cgroupfs driver: %w",
			strings.TrimSpace(string(pid1)), errdefs.ErrFailedPrecondition)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	m := &Manager{driver: driver, v2: IsV2(), root: DefaultTierRoot, logger: logger, drain: time.Second, readers: newStatReaders(), tolerateNoHugetlb: true}
	m.v1Mounts = sync.OnceValues(v1Hierarchies)
	for _, o := range opts {
		o(m)
	}
	if m.root == "" || strings.ContainsAny(m.root, "/\x00") || m.root == "." || m.root == ".." ||
		(driver == DriverSystemd && strings.Contains(m.root, "-")) {
		return nil, fmt.Errorf("cgroup tier root %q: %w", m.root, errdefs.ErrInvalidArgument)
	}
	m.logger.Info("cgroup manager ready", zap.String("driver", m.driver), zap.Bool("cgroup_v2", m.v2), zap.String("tier_root", m.tiers()[0]))
	return m, nil
}

// Driver returns "cgroupfs" or "systemd", for CRI's RuntimeConfig.
func (m *Manager) Driver() string { return m.driver }

// IsV2 reports whether the Manager writes cgroup v2 files; ToSpec wants it.
func (m *Manager) IsV2() bool { return m.v2 }

// PodCgroupParent is the package's PodCgroupParent with this Manager's driver and tier root.
func (m *Manager) PodCgroupParent(callerParent, podUID string, class QoSClass) (string, error) {
	return podCgroupPath(m.root, callerParent, podUID, class, m.driver)
}

// tiers returns the tier root and the burstable and besteffort tiers, in creation order.
func (m *Manager) tiers() []string {
	if m.driver == DriverSystemd {
		r := "/" + m.root + ".slice"
		return []string{r, r + "/" + m.root + "-burstable.slice", r + "/" + m.root + "-besteffort.slice"}
	}
	r := "/" + m.root
	return []string{r, r + "/burstable", r + "/besteffort"}
}

// CreatePod creates the pod cgroup at p (from PodCgroupParent) and applies res, the pod's
// totals (the kubelet's sandbox resources plus overhead). A BestEffort pod without cpu
// shares gets the minimum (2, weight 1 on v2), as the kubelet gives it. When p is in
// peapod's tiers, the tiers are created first: the root, burstable and besteffort, with the
// besteffort tier at cpu.shares 2 (cpu.weight 1 on v2); on v2 every level delegates the
// controllers to the next through cgroup.subtree_control. A caller's own parents (a kubelet's
// /kubepods tree) are left as they are. Calling it again re-applies res.
func (m *Manager) CreatePod(ctx context.Context, p string, class QoSClass, res *specs.LinuxResources) error {
	if err := checkCgroupPath(p); err != nil {
		return err
	}
	lr, err := libResources(res, m.v2)
	if err != nil {
		return fmt.Errorf("pod cgroup %s: %w", p, err)
	}
	if class == BestEffort && lr.CpuShares == 0 && lr.CpuWeight == 0 {
		lr.CpuShares, lr.CpuWeight = minCPU(m.v2)
	}
	tiers := m.tiers()
	if slices.Contains(tiers, p) {
		return fmt.Errorf("cgroup %s is a QoS tier, not a pod: %w", p, errdefs.ErrInvalidArgument)
	}
	if strings.HasPrefix(p, tiers[0]+"/") && !m.tiersIntact(tiers) {
		if err := m.ensureTiers(tiers); err != nil {
			return err
		}
		m.tiersMade.Store(true)
	}
	if err := m.apply(p, lr); err != nil {
		return fmt.Errorf("create pod cgroup %s: %w", p, err)
	}
	log.From(ctx).Debug("pod cgroup ready", zap.String(log.KeyCgroup, p), zap.Stringer("qos", class))
	return nil
}

func minCPU(v2 bool) (shares, weight uint64) {
	if v2 {
		return MinCPUShares, CPUSharesToWeight(MinCPUShares)
	}
	return MinCPUShares, 0
}

// tiersIntact reports whether this Manager made the QoS tiers and the besteffort tier, the
// one with a setting of its own, still exists where that setting lives (cpu on v1). Making
// them again for every pod was a third of a pod cgroup's cost: three cgroups of a dozen
// controllers each, created and written. A tier removed behind peapod's back is made again.
func (m *Manager) tiersIntact(tiers []string) bool {
	if !m.tiersMade.Load() {
		return false
	}
	rd, err := m.libManager(tiers[2], &cgroups.Resources{SkipDevices: true}, false)
	if err != nil {
		return false
	}
	dir := rd.Path("cpu")
	return dir != "" && cgroups.PathExists(dir)
}

func (m *Manager) ensureTiers(tiers []string) error {
	for i, t := range tiers {
		lr := &cgroups.Resources{SkipDevices: true, SkipFreezeOnSet: true}
		if i == 2 {
			lr.CpuShares, lr.CpuWeight = minCPU(m.v2)
		}
		if err := m.apply(t, lr); err != nil {
			return fmt.Errorf("create qos tier %s: %w", t, err)
		}
	}
	return nil
}

// apply creates the cgroup at p if needed and writes lr into it.
func (m *Manager) apply(p string, lr *cgroups.Resources) error {
	lm, err := m.libManager(p, lr, m.driver == DriverSystemd)
	if err != nil {
		return err
	}
	if err := checkHugetlb(lm, lr); err != nil {
		return err
	}
	if err := lm.Apply(-1); err != nil {
		return err
	}
	return lm.Set(lr)
}

// checkHugetlb turns the library's "container could not join or create cgroup" into a clear
// error on v1 hosts without a v1 hugetlb hierarchy (hybrid hosts may give hugetlb to cgroup2).
func checkHugetlb(lm cgroups.Manager, lr *cgroups.Resources) error {
	if len(lr.HugetlbLimit) > 0 && lm.Path("hugetlb") == "" {
		return fmt.Errorf("hugepage limits: no hugetlb cgroup hierarchy is mounted on this host: %w", errdefs.ErrFailedPrecondition)
	}
	return nil
}

// Update writes res into the existing cgroup at p: a pod's (UpdatePodSandboxResources) or a
// container's (UpdateContainerResources, path from ContainerCgroupPath). Only the fields set
// in res change. A missing cgroup is errdefs.ErrNotFound.
func (m *Manager) Update(ctx context.Context, p string, res *specs.LinuxResources) error {
	if err := checkCgroupPath(p); err != nil {
		return err
	}
	lr, err := libResources(res, m.v2)
	if err != nil {
		return fmt.Errorf("cgroup %s: %w", p, err)
	}
	if _, err := m.existing(p); err != nil {
		return err
	}
	lm, err := m.libManager(p, lr, m.driver == DriverSystemd)
	if err == nil {
		err = checkHugetlb(lm, lr)
	}
	if err != nil {
		return fmt.Errorf("update cgroup %s: %w", p, err)
	}
	if err := lm.Set(lr); err != nil {
		return fmt.Errorf("update cgroup %s: %w", p, err)
	}
	log.From(ctx).Debug("cgroup updated", zap.String(log.KeyCgroup, p))
	return nil
}

// RemovePod removes the pod cgroup at p and everything below it (the containers' cgroups) in
// every controller. A cgroup that is already gone is not an error. Processes still inside
// get a short while to exit (the shim reaps killed containers); if some remain, RemovePod
// fails with errdefs.ErrFailedPrecondition naming their pids and removes nothing: it never
// kills, the sandbox stops its containers first. The QoS tiers are never removed.
func (m *Manager) RemovePod(ctx context.Context, p string) error {
	if err := checkCgroupPath(p); err != nil {
		return err
	}
	if slices.Contains(m.tiers(), p) {
		return fmt.Errorf("cgroup %s is a QoS tier, not a pod: %w", p, errdefs.ErrInvalidArgument)
	}
	rd, err := m.existing(p)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	pids, err := m.drained(ctx, rd)
	if err != nil {
		return fmt.Errorf("remove cgroup %s: %w", p, err)
	}
	if len(pids) > 0 {
		return fmt.Errorf("remove cgroup %s: processes %v are still inside: %w", p, pids, errdefs.ErrFailedPrecondition)
	}
	lm := rd
	if m.driver == DriverSystemd {
		// Stop the unit too, or systemd keeps (and may recreate) the cgroup.
		if lm, err = m.libManager(p, &cgroups.Resources{SkipDevices: true}, true); err != nil {
			return fmt.Errorf("remove cgroup %s: %w", p, err)
		}
	}
	if err := lm.Destroy(); err != nil {
		return fmt.Errorf("remove cgroup %s: %w", p, err)
	}
	log.From(ctx).Debug("pod cgroup removed", zap.String(log.KeyCgroup, p))
	return nil
}

// drained polls until no process is left below the cgroup, the drain time is up or ctx ends,
// and returns the pids still there.
func (m *Manager) drained(ctx context.Context, rd cgroups.Manager) ([]int, error) {
	deadline := time.Now().Add(m.drain)
	for {
		pids, err := allPids(rd)
		if err != nil || len(pids) == 0 || time.Now().After(deadline) {
			return pids, err
		}
		select {
		case <-ctx.Done():
			return pids, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Pids returns the processes in the cgroup at p and below, from every controller (on v1 a
// process may sit in a sub-cgroup in some controllers only). A missing cgroup is
// errdefs.ErrNotFound.
func (m *Manager) Pids(p string) ([]int, error) {
	rd, err := m.existing(p)
	if err != nil {
		return nil, err
	}
	return allPids(rd)
}

func allPids(rd cgroups.Manager) ([]int, error) {
	var all []int
	for _, dir := range rd.GetPaths() {
		pids, err := cgroups.GetAllPids(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("list processes in %s: %w", dir, err)
		}
		all = append(all, pids...)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}

// OOMKillCount returns how many processes the kernel's OOM killer killed because the cgroup
// at p hit its memory limit: the oom_kill counter of memory.oom_control on v1 and of
// memory.events on v2. The kernel counts a kill in the victim's own cgroup, whichever limit
// (the container's or the pod's) was hit; on v1 that is all, on v2 it also counts in every
// ancestor. So ask the container's cgroup about a container. Read it before the cgroup is
// removed. A missing cgroup is errdefs.ErrNotFound.
func (m *Manager) OOMKillCount(p string) (uint64, error) {
	rd, err := m.existing(p)
	if err != nil {
		return 0, err
	}
	n, err := rd.OOMKillCount()
	if err != nil {
		return 0, fmt.Errorf("read oom kills of cgroup %s: %w", p, err)
	}
	return n, nil
}

// OOMKilled reports whether the OOM killer has killed anything in the cgroup at p.
func (m *Manager) OOMKilled(p string) (bool, error) {
	n, err := m.OOMKillCount(p)
	return n > 0, err
}

// existing returns a reader for the cgroup at p, or errdefs.ErrNotFound when it does not
// exist in any controller.
func (m *Manager) existing(p string) (cgroups.Manager, error) {
	if err := checkCgroupPath(p); err != nil {
		return nil, err
	}
	// Files read the same whichever driver created the cgroup, so reading never needs systemd.
	rd, err := m.libManager(p, &cgroups.Resources{SkipDevices: true}, false)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", p, err)
	}
	for _, dir := range rd.GetPaths() {
		if cgroups.PathExists(dir) {
			return rd, nil
		}
	}
	return nil, fmt.Errorf("cgroup %s: %w", p, errdefs.ErrNotFound)
}

// libManager returns the cgroup library's manager for p: fs (v1) or fs2 (v2) by path, or the
// systemd manager for the unit p names.
func (m *Manager) libManager(p string, lr *cgroups.Resources, viaSystemd bool) (cgroups.Manager, error) {
	cg := &cgroups.Cgroup{Resources: lr}
	if viaSystemd {
		parent, name, prefix, err := systemdUnit(p)
		if err != nil {
			return nil, err
		}
		cg.Systemd, cg.Parent, cg.Name, cg.ScopePrefix = true, parent, name, prefix
	} else {
		cg.Path = p
		if !m.v2 {
			if paths, ok := m.v1Paths(p, lr); ok {
				return fs.NewManager(cg, paths)
			}
		}
	}
	return manager.New(cg)
}

// v1Paths is where the cgroup library's fs driver puts the cgroup at p in each v1
// controller: the controller's hierarchy joined with p. The library finds each hierarchy
// again for every manager it makes, a dozen lookups that cost as much as creating the pod
// cgroup itself; peapod asks it once (v1Hierarchies) and joins. ok is false when the
// library must decide (no hierarchies found, or no devices controller for a manager that
// needs one: its own error then says so).
func (m *Manager) v1Paths(p string, lr *cgroups.Resources) (paths map[string]string, ok bool) {
	mounts, err := m.v1Mounts()
	if err != nil || len(mounts) == 0 {
		return nil, false
	}
	if _, ok := mounts["devices"]; !ok && !lr.SkipDevices {
		return nil, false
	}
	paths = make(map[string]string, len(mounts))
	for name, dir := range mounts {
		paths[name] = filepath.Join(dir, p)
	}
	return paths, true
}

// v1Hierarchies asks the cgroup library where the root cgroup "/" is in each v1 controller
// it knows (the controllers the host lacks are left out).
func v1Hierarchies() (map[string]string, error) {
	lm, err := fs.NewManager(&cgroups.Cgroup{Path: "/", Resources: &cgroups.Resources{SkipDevices: true}}, nil)
	if err != nil {
		return nil, err
	}
	return lm.GetPaths(), nil
}

// systemdUnit splits a systemd cgroup path into the parent slice and the unit: a slice
// (".../a-b.slice/a-b-c.slice": parent a-b.slice, name a-b-c.slice) or a container scope
// (".../x.slice/peapod-<id>.scope": parent x.slice, name <id>, prefix peapod).
func systemdUnit(p string) (parent, name, prefix string, err error) {
	dir, base := path.Split(p)
	parent = "-.slice"
	if dir != "/" {
		parent = path.Base(dir)
	}
	switch {
	case strings.HasSuffix(base, ".slice"):
		name = base
	case strings.HasPrefix(base, containerScopePrefix+"-") && strings.HasSuffix(base, ".scope"):
		prefix = containerScopePrefix
		name = strings.TrimSuffix(strings.TrimPrefix(base, prefix+"-"), ".scope")
	default:
		return "", "", "", fmt.Errorf("cgroup %s: not a systemd slice or a %s-<id>.scope: %w", p, containerScopePrefix, errdefs.ErrInvalidArgument)
	}
	// A slice's name spells out its ancestry; a scope sits directly in its slice.
	want, err := systemd.ExpandSlice(parent)
	if name == base {
		want, err = systemd.ExpandSlice(base)
	} else {
		want = path.Join(want, base)
	}
	if err != nil || want != p {
		return "", "", "", fmt.Errorf("cgroup %s: not where systemd nests unit %s: %w", p, base, errdefs.ErrInvalidArgument)
	}
	return parent, name, prefix, nil
}
