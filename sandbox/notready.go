package sandbox

import (
	"context"
	"errors"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
)

// MarkNotReady records that a ready pod can no longer run containers, for a cause outside
// any call (why, e.g. its PID namespace holder exited): the pod is NotReady with why as its
// Reason, persisted, so that a kubelet stops it and makes a new one instead of retrying
// creates in it. A pod that is not ready already, or gone, is left alone.
func (m *Manager) MarkNotReady(ctx context.Context, id, why string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, e, unlock, err := m.lock(ctx, id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unlock()
	sb := e.Record()
	if sb.State != StateReady {
		return nil
	}
	sb.State, sb.Reason = StateNotReady, why
	if err := update(e, sb); err != nil {
		return err
	}
	m.log.Warn("pod not ready", log.PodSandboxID(sb.ID), zap.String("reason", why))
	return nil
}
