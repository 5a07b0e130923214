package container

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/shim"
	shimclient "github.com/peapod-runtime/peapod/shim/client"
)

// Recover learns what happened to every container while the daemon was away: it reconnects
// to the pods' shims, records the exits they persisted, watches the containers still
// running, and reports the containers of a shim that died as exited with the monitor lost.
func (m *Manager) Recover(ctx context.Context) error {
	for _, e := range m.ctrs.Entries() {
		c := e.Record()
		l := m.log.With(log.ContainerID(c.ID), log.PodSandboxID(c.PodID))
		pod, err := m.opts.Sandboxes.Get(c.PodID)
		if err != nil {
			l.Warn("container of an unknown pod", zap.Error(err))
			m.recordExit(e, exit{code: 255, reason: ReasonError, message: "the container's pod is gone", at: time.Now()})
			continue
		}
		m.shims.register(pod)
		if c.State == StateExited {
			continue
		}
		client, err := m.shims.client(ctx, pod.ID)
		if err != nil {
			if !errors.Is(err, errdefs.ErrUnavailable) {
				return err
			}
			// A pod's first CreateContainer answers while the pod's shim is still starting: a
			// daemon killed then leaves a pending create and no shim that ever had it. Start
			// the shim and finish the create, as below for a shim that is up.
			if m.neverReachedShim(c) {
				client, _, err := m.shims.get(ctx, pod, true)
				if err == nil {
					// Whatever a shim that died mid-create left of it goes first.
					err = client.Delete(ctx, c.ID)
				}
				if err != nil {
					l.Warn("start the shim of a pending create", zap.Error(err))
				} else if m.resumeCreate(ctx, e, client) {
					l.Info("resuming the create of a container the previous daemon left pending, in a new shim")
					continue
				}
			}
			m.recordExit(e, m.exitFromRecords(c))
			continue
		}
		st, err := client.State(ctx, c.ID)
		switch {
		case errors.Is(err, errdefs.ErrNotFound):
			// The shim makes the container after CreateContainer has answered: a daemon that
			// died in between left the record, the rootfs and the spec; finish the job. A
			// record of a CreateContainer that never answered is only cleaned up.
			if m.resumeCreate(ctx, e, client) {
				l.Info("resuming the create of a container the previous daemon left pending")
				continue
			}
			m.recordExit(e, exit{code: 255, reason: ReasonError, message: "the container was never created (the daemon stopped mid-create)", at: time.Now()})
		case errors.Is(err, errdefs.ErrUnavailable):
			m.recordExit(e, m.exitFromRecords(c))
		case err != nil:
			return err
		case st.Status == shim.StatusStopped:
			m.recordExit(e, exitFromShim(st))
		case st.Status == shim.StatusCreated:
			e.Publish(func(c *Container) { c.Pid = st.Pid })
		case st.Status == shim.StatusRunning:
			if c.State != StateRunning {
				if _, err := e.Update(func(c *Container) { c.State, c.Pid, c.StartedAt = StateRunning, st.Pid, st.StartedAt }); err != nil {
					return err
				}
			}
			go m.watch(e, client)
		}
	}
	return nil
}

// neverReachedShim says c is a create that CreateContainer answered and no shim of its pod
// ever recorded: nothing of it runs anywhere.
func (m *Manager) neverReachedShim(c Container) bool {
	if c.State != StateCreated || c.CgroupPath == "" {
		return false
	}
	dir, err := m.shims.stateDir(c.PodID)
	if err != nil {
		return false
	}
	recs, err := shim.ReadRecords(dir)
	if err != nil {
		return false
	}
	for _, r := range recs {
		if r.ID == c.ID {
			return false
		}
	}
	return true
}

// resumeCreate restarts the background create of a container whose CreateContainer had
// answered (its record is complete and its spec on disk), remounting its rootfs if need be.
// It reports false when there is nothing to resume.
func (m *Manager) resumeCreate(ctx context.Context, e *entry, client *shimclient.Client) bool {
	c := e.Record()
	if c.State != StateCreated || c.CgroupPath == "" {
		return false // the record of a create that never finished
	}
	l := m.log.With(log.ContainerID(c.ID), log.PodSandboxID(c.PodID))
	s, err := readSpec(c.Dir)
	if err != nil {
		l.Warn("resume a pending create", zap.Error(err))
		return false
	}
	rootfs := filepath.Join(c.Dir, "rootfs")
	pod, err := m.opts.Sandboxes.Get(c.PodID)
	if err != nil {
		l.Warn("resume a pending create", zap.Error(err))
		return false
	}
	if !isMountPoint(c.Dir, rootfs) {
		layers, err := m.opts.Images.LayerPaths(ctx, c.ImageID)
		if err == nil {
			_, err = podRootfs(pod, c.Dir, layers)
		}
		if err != nil {
			l.Warn("remount the rootfs of a pending create", zap.Error(err))
			return false
		}
	}
	if _, err := m.mountImageVolumes(ctx, c, pod.UserNSPath); err != nil {
		l.Warn("remount the image volumes of a pending create", zap.Error(err))
		return false
	}
	e.X.created = make(chan struct{}) // not yet serving: nobody else waits on it
	go m.finishCreate(e, readyShim(shimResult{client: client}), shimCreateOptions(c, s, rootfs))
	return true
}
