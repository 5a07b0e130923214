package cgroups

import (
	"fmt"
	"maps"
	"slices"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
)

// CheckResources validates r (Validate) and checks that this host can honour it, so that a
// container is refused with a clear error before anything is created rather than failing
// opaquely inside libcontainer: unified (cgroup v2) settings on a v1 host are
// errdefs.ErrInvalidArgument, hugepage limits without a hugetlb controller are
// errdefs.ErrFailedPrecondition.
func (m *Manager) CheckResources(r Resources) error {
	if err := r.Validate(); err != nil {
		return err
	}
	return checkHost(r, m.v2, hugetlbAvailable)
}

func checkHost(r Resources, v2 bool, hugetlb func(v2 bool) bool) error {
	if len(r.Unified) > 0 && !v2 {
		return fmt.Errorf("unified %v: cgroup v2 settings cannot be honoured on this cgroup v1 host: %w",
			slices.Sorted(maps.Keys(r.Unified)), errdefs.ErrInvalidArgument)
	}
	if len(r.HugepageLimits) > 0 && !hugetlb(v2) {
		return fmt.Errorf("hugepage_limits: no hugetlb cgroup controller is available on this host: %w", errdefs.ErrFailedPrecondition)
	}
	return nil
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
