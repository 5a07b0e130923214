package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/shim"
	shimclient "github.com/peapod-runtime/peapod/shim/client"
	"github.com/peapod-runtime/peapod/store"
)

// monitorLost is the message of a container whose shim died: its real fate is unknown.
const monitorLost = "the container's monitor (peapod-shim) was lost; its exit code is unknown"

// watch waits for a running container's exit and records it. It ends without recording
// anything when the daemon stops (the next daemon's Recover takes over).
func (m *Manager) watch(e *entry, client *shimclient.Client) {
	rec := e.Record()
	id := rec.ID
	l := m.log.With(log.ContainerID(id), log.PodSandboxID(rec.PodID))
	for {
		st, err := client.Wait(m.ctx, id)
		if m.ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			m.recordExit(e, exitFromShim(st))
		case errors.Is(err, errdefs.ErrUnavailable):
			// A broken connection to a live shim is not a lost monitor: reconnect and wait on.
			if c, cerr := m.shims.client(m.ctx, rec.PodID); cerr == nil && c != client {
				client = c
				continue
			}
			m.recordExit(e, m.exitFromRecords(e.Record()))
		case errors.Is(err, errdefs.ErrNotFound):
			m.recordExit(e, exit{code: 255, reason: ReasonError, message: "the container disappeared from its monitor", at: time.Now()})
		default:
			l.Warn("wait for container exit", zap.Error(err))
			time.Sleep(time.Second)
			continue
		}
		return
	}
}

type exit struct {
	code    int32
	reason  string
	message string
	at      time.Time
}

func exitFromShim(st shim.ContainerState) exit {
	x := exit{code: int32(st.ExitCode), reason: st.Reason, message: st.Message, at: st.FinishedAt}
	if x.at.IsZero() {
		x.at = time.Now()
	}
	switch {
	case st.OOMKilled:
		x.reason = ReasonOOMKilled
	case x.reason == "" && x.code == 0:
		x.reason = ReasonCompleted
	case x.reason == "":
		x.reason = ReasonError
	}
	return x
}

// exitFromRecords is a container's fate when its shim is gone: what the shim persisted if it
// recorded the exit, else "monitor lost".
func (m *Manager) exitFromRecords(c Container) exit {
	// Whatever the records say, the shim is gone: so must be the PID namespace it held.
	defer func() {
		ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
		m.shims.lost(ctx, c.PodID)
		cancel()
	}()
	if dir, err := m.shims.stateDir(c.PodID); err == nil {
		if recs, err := shim.ReadRecords(dir); err == nil {
			for _, r := range recs {
				if r.ID == c.ID && r.Status == shim.StatusStopped {
					return exitFromShim(r)
				}
			}
		}
	}
	if m.shims.markLost(c.PodID) && m.opts.OnShimLost != nil {
		m.opts.OnShimLost()
	}
	m.killOrphans(c)
	return exit{code: 255, reason: ReasonError, message: monitorLost, at: time.Now()}
}

// killOrphans kills what is left in the container's cgroup once its shim is gone: nothing
// supervises those processes any more, and a container reported exited must not run on
// beside the kubelet's next attempt.
func (m *Manager) killOrphans(c Container) {
	if c.CgroupPath == "" {
		return
	}
	pids, err := m.opts.Cgroups.Pids(c.CgroupPath)
	if err != nil {
		if !errors.Is(err, errdefs.ErrNotFound) {
			m.log.Warn("list the processes of a container whose shim is gone", log.ContainerID(c.ID), zap.Error(err))
		}
		return
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			m.log.Warn("kill an orphaned container process", log.ContainerID(c.ID), zap.Int(log.KeyPID, pid), zap.Error(err))
		}
	}
	if len(pids) > 0 {
		m.log.Info("killed the processes of a container whose shim is gone", log.ContainerID(c.ID), zap.Ints("pids", pids))
	}
}

// removeOrphanCgroup removes the cgroup of a container whose shim (which would have removed
// it) is gone, once its processes are killed.
func (m *Manager) removeOrphanCgroup(ctx context.Context, c Container) error {
	if c.CgroupPath == "" {
		return nil
	}
	m.killOrphans(c)
	// RemovePod removes any cgroup with its subtree once it has drained; it never kills.
	if err := m.opts.Cgroups.RemovePod(ctx, c.CgroupPath); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("remove container %s cgroup: %w", c.ID, err)
	}
	return nil
}

// recordExit persists an exit once; later calls do nothing.
func (m *Manager) recordExit(e *entry, x exit) {
	select {
	case <-e.X.exited:
		return
	default:
	}
	changed := false
	c, err := e.Update(func(c *Container) {
		if c.State == StateExited {
			return
		}
		changed = true
		c.State, c.ExitCode, c.Reason, c.Message, c.FinishedAt = StateExited, x.code, x.reason, x.message, x.at
		if c.StartedAt.IsZero() || c.StartedAt.After(c.FinishedAt) {
			c.StartedAt = c.FinishedAt
		}
	})
	if err != nil {
		m.log.Error("record container exit", log.ContainerID(c.ID), zap.Error(err))
		return
	}
	if !changed {
		return // another call recorded the exit
	}
	close(e.X.exited)
	m.emit(EventStopped, c)
	if m.opts.OnExit != nil {
		m.opts.OnExit(c.Reason)
	}
	m.log.Info("container exited", log.ContainerID(c.ID), log.PodSandboxID(c.PodID),
		zap.Int32("exit_code", c.ExitCode), zap.String("reason", c.Reason))
}

// Stop sends the container's stop signal and waits up to timeout for it to exit, then kills
// it. A timeout of 0 kills at once. Stopping an exited container does nothing.
func (m *Manager) Stop(ctx context.Context, id string, timeout time.Duration) error {
	e, unlock, err := m.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	c := e.Record()
	return m.stopLocked(log.With(ctx, log.ContainerID(c.ID), log.PodSandboxID(c.PodID)), e, timeout)
}

func (m *Manager) stopLocked(ctx context.Context, e *entry, timeout time.Duration) error {
	c := e.Record()
	switch c.State {
	case StateExited:
		return nil
	case StateCreated:
		// Never started: there is no user process to signal; the init waits for Start.
		client, err := m.shims.client(ctx, c.PodID)
		if err == nil {
			err = client.Delete(ctx, c.ID)
		}
		if err != nil && !errors.Is(err, errdefs.ErrUnavailable) {
			return fmt.Errorf("stop created container %s: %w", c.ID, err)
		}
		m.recordExit(e, exit{code: 0, reason: ReasonCompleted, message: "stopped before it started", at: time.Now()})
		return nil
	}
	client, err := m.shims.client(ctx, c.PodID)
	if err != nil {
		if errors.Is(err, errdefs.ErrUnavailable) {
			m.recordExit(e, m.exitFromRecords(c))
			return nil
		}
		return err
	}
	if timeout > 0 {
		sig := signalNumber(c.StopSignal)
		if err := client.Signal(ctx, c.ID, sig, false); err != nil && !errors.Is(err, errdefs.ErrFailedPrecondition) && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("signal container %s: %w", c.ID, err)
		}
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-e.X.exited:
			return nil
		case <-t.C:
			log.From(ctx).Info("stop timeout over: killing", zap.Duration("timeout", timeout))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := client.Signal(ctx, c.ID, syscall.SIGKILL, true); err != nil && !errors.Is(err, errdefs.ErrFailedPrecondition) && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("kill container %s: %w", c.ID, err)
	}
	t := time.NewTimer(killWait)
	defer t.Stop()
	select {
	case <-e.X.exited:
		return nil
	case <-t.C:
		return fmt.Errorf("container %s did not exit %v after SIGKILL: %w", c.ID, killWait, errdefs.ErrUnavailable)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Remove kills the container if it runs and deletes it: its process state in the shim, its
// rootfs, its hold on the image and its record. Removing an unknown container is NotFound.
func (m *Manager) Remove(ctx context.Context, id string) error {
	e, unlock, err := m.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	c := e.Record()
	ctx = log.With(ctx, log.ContainerID(c.ID), log.PodSandboxID(c.PodID))
	if err := m.stopLocked(ctx, e, 0); err != nil {
		return err
	}
	client, err := m.shims.client(ctx, c.PodID)
	if err == nil {
		err = client.Delete(ctx, c.ID)
	}
	switch {
	case errors.Is(err, errdefs.ErrUnavailable):
		// The shim is gone and cannot clean up after its container: do it here.
		if err := m.removeOrphanCgroup(ctx, c); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("delete container %s: %w", c.ID, err)
	}
	if err := m.discardDir(c.Dir); err != nil {
		return err
	}
	if c.ImageID != "" {
		if err := m.opts.Images.Release(ctx, c.ImageID, c.ID); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("release image: %w", err)
		}
	}
	if err := m.releaseImageVolumes(ctx, c); err != nil {
		return fmt.Errorf("release image volumes: %w", err)
	}
	name := m.containerName(c.PodID, c.Config.Metadata)
	if err := m.db.Update(func(tx *store.Tx) error {
		if err := tx.Delete(bucket, c.ID); err != nil {
			return err
		}
		return tx.Release(nameKind, name, c.ID)
	}); err != nil {
		return fmt.Errorf("delete container record: %w", err)
	}
	e.Remove()
	m.emit(EventDeleted, c)
	log.From(ctx).Info("container removed")
	return nil
}

// StopPod stops every container of a pod at once (the kubelet has already given each its
// grace period), as StopPodSandbox requires.
func (m *Manager) StopPod(ctx context.Context, podID string) error {
	var errs []error
	for _, c := range m.List(Filter{PodID: podID}) {
		if c.PodID != podID {
			continue
		}
		if err := m.Stop(ctx, c.ID, 0); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RemovePod removes every container of a pod and stops its shim. A create racing the
// removal may register a container after the list was taken: the shim then refuses to stop,
// and the list is taken again. On the last try, whatever the shim still holds without a
// record here (a create cut off by a daemon kill) is removed with the pod.
func (m *Manager) RemovePod(ctx context.Context, podID string) error {
	const tries = 3
	for try := 1; ; try++ {
		var errs []error
		for _, c := range m.List(Filter{PodID: podID}) {
			if c.PodID != podID {
				continue
			}
			if err := m.Remove(ctx, c.ID); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		pod, err := m.opts.Sandboxes.Get(podID)
		if err != nil {
			return err
		}
		err = m.shims.shutdown(ctx, pod, try == tries)
		if try == tries || !errors.Is(err, errdefs.ErrFailedPrecondition) {
			return err
		}
	}
}

// ExecSync runs a command in a running container and returns its output.
func (m *Manager) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (shim.ExecSyncResult, error) {
	c, err := m.CheckRunning(id)
	if err != nil {
		return shim.ExecSyncResult{}, err
	}
	if len(cmd) == 0 {
		return shim.ExecSyncResult{}, fmt.Errorf("exec needs a command: %w", errdefs.ErrInvalidArgument)
	}
	client, err := m.shims.client(ctx, c.PodID)
	if err != nil {
		return shim.ExecSyncResult{}, err
	}
	return client.ExecSync(ctx, c.ID, shim.ExecSyncOptions{Args: cmd, Timeout: timeout})
}

// ReopenLog makes the shim reopen the container's log file after the kubelet rotated it.
func (m *Manager) ReopenLog(ctx context.Context, id string) error {
	c, client, err := m.runningShim(ctx, id)
	if err != nil {
		return err
	}
	return client.ReopenLog(ctx, c.ID)
}

// removeRootfs unmounts the container's rootfs and image volumes and deletes its directory;
// repeating is fine.
func removeRootfs(dir string) error {
	if dir == "" {
		return nil
	}
	if err := unmountRootfs(dir); err != nil {
		return err
	}
	if err := unmountImageVolumes(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove container dir: %w", err)
	}
	return nil
}

// discardDir moves a removed container's directory into the trash at once (one rename), so
// that Remove does not wait for the rootfs unmount and the recursive delete: a goroutine
// finishes them, and New finishes what a daemon killed meanwhile left in the trash.
func (m *Manager) discardDir(dir string) error {
	if dir == "" {
		return nil
	}
	trash := filepath.Join(m.trash, filepath.Base(dir))
	if err := os.Rename(dir, trash); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		m.log.Warn("move container dir to the trash", zap.String("dir", dir), zap.Error(err))
		return removeRootfs(dir)
	}
	go m.emptyTrash(trash)
	return nil
}

// emptyTrash removes discarded container dirs (all of them when dirs is empty).
func (m *Manager) emptyTrash(dirs ...string) {
	if len(dirs) == 0 {
		entries, err := os.ReadDir(m.trash)
		if err != nil {
			m.log.Warn("read the container trash", zap.Error(err))
			return
		}
		for _, e := range entries {
			dirs = append(dirs, filepath.Join(m.trash, e.Name()))
		}
	}
	for _, d := range dirs {
		if err := removeRootfs(d); err != nil {
			m.log.Warn("remove a discarded container dir", zap.String("dir", d), zap.Error(err))
		}
	}
}
