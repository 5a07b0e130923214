package container

import (
	"context"
	"errors"
	"time"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/shim"
)

// Recover learns what happened to every container while the daemon was away: it reconnects
// to the pods' shims, records the exits they persisted, watches the containers still
// running, and reports the containers of a shim that died as exited with the monitor lost.
func (m *Manager) Recover(ctx context.Context) error {
	m.mu.RLock()
	entries := make([]*entry, 0, len(m.ctrs))
	for _, e := range m.ctrs {
		entries = append(entries, e)
	}
	m.mu.RUnlock()
	for _, e := range entries {
		c := e.c
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
			m.recordExit(e, m.exitFromRecords(c))
			continue
		}
		st, err := client.State(ctx, c.ID)
		switch {
		case errors.Is(err, errdefs.ErrNotFound):
			// Created records are written before the shim makes the container: a daemon that
			// died in between left only the record.
			m.recordExit(e, exit{code: 255, reason: ReasonError, message: "the container was never created (the daemon stopped mid-create)", at: time.Now()})
		case errors.Is(err, errdefs.ErrUnavailable):
			m.recordExit(e, m.exitFromRecords(c))
		case err != nil:
			return err
		case st.Status == shim.StatusStopped:
			m.recordExit(e, exitFromShim(st))
		case st.Status == shim.StatusRunning:
			if c.State != StateRunning {
				if _, err := m.update(e, func(c *Container) { c.State, c.Pid, c.StartedAt = StateRunning, st.Pid, st.StartedAt }); err != nil {
					return err
				}
			}
			go m.watch(e, client)
		}
	}
	return nil
}
