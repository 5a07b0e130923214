package cgroups

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
)

// CheckResources validates r (Validate) and checks that this host can honour it, so that a
// container is refused with a clear error before anything is created rather than failing
// opaquely inside libcontainer. It returns r as this host applies it.
//
// Unified (cgroup v2) settings on a v1 host are errdefs.ErrInvalidArgument. Hugepage limits
// on a host without a hugetlb controller are dropped (logged at debug) when the manager
// tolerates that, as it does by default: a kubelet sends a limit for every page size the node
// has, 0 when the pod asks for none, so refusing them would refuse every pod on such a node.
// With WithTolerateMissingHugetlb(false) they are errdefs.ErrFailedPrecondition.
func (m *Manager) CheckResources(ctx context.Context, r Resources) (Resources, error) {
	if err := r.Validate(); err != nil {
		return Resources{}, err
	}
	return checkHost(ctx, r, m.v2, m.tolerateNoHugetlb, hugetlbAvailable)
}

func checkHost(ctx context.Context, r Resources, v2, tolerateNoHugetlb bool, hugetlb func(v2 bool) bool) (Resources, error) {
	if len(r.Unified) > 0 && !v2 {
		return Resources{}, fmt.Errorf("unified %v: cgroup v2 settings cannot be honoured on this cgroup v1 host: %w",
			slices.Sorted(maps.Keys(r.Unified)), errdefs.ErrInvalidArgument)
	}
	if len(r.HugepageLimits) > 0 && !hugetlb(v2) {
		if !tolerateNoHugetlb {
			return Resources{}, fmt.Errorf("hugepage_limits: no hugetlb cgroup controller is available on this host: %w", errdefs.ErrFailedPrecondition)
		}
		sizes := make([]string, 0, len(r.HugepageLimits))
		for _, h := range r.HugepageLimits {
			sizes = append(sizes, h.PageSize)
		}
		log.From(ctx).Debug("hugepage limits dropped: no hugetlb cgroup controller on this host",
			zap.Strings("page_sizes", sizes))
		r.HugepageLimits = nil
	}
	return r, nil
}

// hugetlbAvailable reports whether containers can get hugepage limits: a mounted v1 hugetlb
// hierarchy (a hybrid host may leave it out), or hugetlb among the v2 controllers.
func hugetlbAvailable(v2 bool) bool {
	if v2 {
		all, err := cgroups.GetAllSubsystems()
		return err == nil && slices.Contains(all, "hugetlb")
	}
	_, err := cgroups.FindCgroupMountpoint("", "hugetlb")
	return err == nil
}

// HugetlbAvailable reports whether this host can apply hugepage limits to containers.
func (m *Manager) HugetlbAvailable() bool { return hugetlbAvailable(m.v2) }
