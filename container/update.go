package container

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/cgroups"
	"github.com/peapod-runtime/peapod/internal/log"
)

// UpdateResources changes a created or running container's cgroup limits live, then records
// them so that its status reports them. res is merged over what the container has, the way
// containerd does it: a zero field keeps the current value, a set one replaces it (unified
// keys one by one). oom_score_adj cannot change after start and is ignored, as in containerd.
// The merged result is validated before anything is written: an invalid value is
// errdefs.ErrInvalidArgument and changes nothing. An exited container is
// errdefs.ErrFailedPrecondition.
//
// The cgroup is written directly (libcontainer in the shim created it): on cgroup v1 runc's
// saved state of the container then still lists the creation-time limits, which nothing
// reads back.
func (m *Manager) UpdateResources(ctx context.Context, id string, res *cgroups.Resources) error {
	if res == nil {
		return fmt.Errorf("resources are required: %w", errdefs.ErrInvalidArgument)
	}
	e, unlock, err := m.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	c := e.Record()
	ctx = log.With(ctx, log.ContainerID(c.ID), log.PodSandboxID(c.PodID))
	if c.State != StateCreated && c.State != StateRunning {
		return fmt.Errorf("container %s is %s: only a created or running container's resources can change: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	merged := mergeResources(c.Config.Resources, res)
	if _, err := m.opts.Cgroups.CheckResources(ctx, merged); err != nil {
		return fmt.Errorf("update container %s resources: %w", c.ID, err)
	}
	if c.CgroupPath == "" {
		return fmt.Errorf("container %s has no cgroup: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	// Write only what the request sets, so that an untouched setting is never rewritten; but
	// memory and memory+swap go together, which lets the cgroup library order the two writes
	// (v1 refuses a memory limit above memory+swap at every step).
	apply, err := m.opts.Cgroups.CheckResources(ctx, *res)
	if err != nil {
		return fmt.Errorf("update container %s resources: %w", c.ID, err)
	}
	apply.OomScoreAdj = 0
	if apply.MemoryLimitInBytes != 0 || apply.MemorySwapLimitInBytes != 0 {
		apply.MemoryLimitInBytes, apply.MemorySwapLimitInBytes = merged.MemoryLimitInBytes, merged.MemorySwapLimitInBytes
	}
	if err := m.opts.Cgroups.Update(ctx, c.CgroupPath, apply.ToSpec(m.opts.Cgroups.IsV2())); err != nil {
		return fmt.Errorf("update container %s resources: %w", c.ID, err)
	}
	if _, err := e.Update(func(c *Container) { c.Config.Resources = &merged }); err != nil {
		return err
	}
	log.From(ctx).Info("container resources updated",
		zap.Int64("cpu_quota", merged.CPUQuota), zap.Int64("cpu_shares", merged.CPUShares),
		zap.Int64("memory_limit_in_bytes", merged.MemoryLimitInBytes))
	return nil
}

// mergeResources lays the set fields of upd over cur (nil: nothing set yet). The pids limit
// comes from the node's config, never from an update.
func mergeResources(cur, upd *cgroups.Resources) cgroups.Resources {
	var out cgroups.Resources
	if cur != nil {
		out = *cur
		out.HugepageLimits = slices.Clone(cur.HugepageLimits)
		out.Unified = maps.Clone(cur.Unified)
	}
	setInt := func(dst *int64, v int64) {
		if v != 0 {
			*dst = v
		}
	}
	setInt(&out.CPUPeriod, upd.CPUPeriod)
	setInt(&out.CPUQuota, upd.CPUQuota)
	setInt(&out.CPUShares, upd.CPUShares)
	setInt(&out.MemoryLimitInBytes, upd.MemoryLimitInBytes)
	setInt(&out.MemorySwapLimitInBytes, upd.MemorySwapLimitInBytes)
	if upd.CpusetCpus != "" {
		out.CpusetCpus = upd.CpusetCpus
	}
	if upd.CpusetMems != "" {
		out.CpusetMems = upd.CpusetMems
	}
	if len(upd.HugepageLimits) > 0 {
		out.HugepageLimits = slices.Clone(upd.HugepageLimits)
	}
	if len(upd.Unified) > 0 {
		if out.Unified == nil {
			out.Unified = map[string]string{}
		}
		maps.Copy(out.Unified, upd.Unified)
	}
	return out
}
