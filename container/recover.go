package container

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/sandbox"
	"github.com/peapod-runtime/peapod/shim"
	shimclient "github.com/peapod-runtime/peapod/shim/client"
)

// Recover learns what happened to every container while the daemon was away: it reconnects
// to the pods' shims, records the exits they persisted, watches the containers still
// running, and reports the containers of a shim that died as exited with the monitor lost.
// Pods are recovered side by side, each within the shim timeout: a shim that does not
// answer (stopped, hung) holds back only its own pod, whose containers are then reported
// Unknown until a background retry gets through (recoverPod).
func (m *Manager) Recover(ctx context.Context) error {
	// The holders of pods sharing a PID namespace are watched first: a holder found dead
	// here died on its own while the daemon was away, before anything below stops one on
	// purpose.
	for _, pod := range m.opts.Sandboxes.List(sandbox.Filter{State: sandbox.StateReady}) {
		if pod.Config.Namespaces.PID == sandbox.ModePod {
			m.shims.register(pod)
			m.shims.watchRecordedHolder(pod.ID)
		}
	}
	entries := m.ctrs.Entries()
	pods := map[string]sandbox.Sandbox{}
	byPod := map[string][]recoverItem{}
	for _, e := range entries {
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
		pods[pod.ID] = pod
		byPod[pod.ID] = append(byPod[pod.ID], recoverItem{e: e, c: c})
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, recoverParallel)
	)
	for id, items := range byPod {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := m.recoverPod(ctx, pods[id], items); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("pod %s: %w", id, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// recoverItem is a container to recover, with its record as persisted.
type recoverItem struct {
	e *entry
	c Container
}

// recoverContainers recovers the containers of one pod through its shim. It stops at the
// first error and returns the items it did not finish, that one included.
func (m *Manager) recoverContainers(ctx context.Context, pod sandbox.Sandbox, items []recoverItem) ([]recoverItem, error) {
	for i, it := range items {
		e, c := it.e, it.c
		l := m.log.With(log.ContainerID(c.ID), log.PodSandboxID(c.PodID))
		client, err := m.shims.reconnect(ctx, pod.ID)
		if err != nil {
			if !errors.Is(err, errdefs.ErrUnavailable) {
				return items[i:], err
			}
			// A pod's first CreateContainer answers while the pod's shim is still starting: a
			// daemon killed then leaves a pending create and no shim that ever had it. Start
			// the shim and finish the create, as below for a shim that is up. The new shim
			// is not the one that may not answer: it has the create's own bound.
			if m.neverReachedShim(c) {
				sctx, cancel := context.WithTimeout(m.ctx, createTimeout)
				client, _, err := m.shims.get(sctx, pod, true)
				if err == nil {
					// Whatever a shim that died mid-create left of it goes first.
					err = client.Delete(sctx, c.ID)
				}
				cancel()
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
			return items[i:], err
		case st.Status == shim.StatusStopped:
			m.recordExit(e, exitFromShim(st))
		case st.Status == shim.StatusCreated:
			e.Publish(func(c *Container) { c.Pid = st.Pid })
		case st.Status == shim.StatusRunning:
			if c.State != StateRunning {
				if _, err := e.Update(func(c *Container) { c.State, c.Pid, c.StartedAt = StateRunning, st.Pid, st.StartedAt }); err != nil {
					return items[i:], err
				}
			}
			go m.watch(e, client)
		}
	}
	return nil, nil
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
