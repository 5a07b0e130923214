package server

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"

	"github.com/peapod-runtime/peapod/internal/log/corelog"
	"github.com/peapod-runtime/peapod/shim"
)

// checkpointer is what a RuntimeContainer that can checkpoint (shim/libct's, with CRIU)
// adds: it dumps the running container's process tree into imagesDir.
type checkpointer interface {
	Checkpoint(ctx context.Context, imagesDir, workDir string, leaveRunning bool) error
}

// checkpoint dumps a running container with the runtime's CRIU support. Reaping is held off
// meanwhile: CRIU runs as the shim's child and libcontainer waits for it itself.
func (s *Server) checkpoint(ctx context.Context, id, imagesDir, workDir string, leaveRunning bool) error {
	c, err := s.get(id)
	if err != nil {
		return err
	}
	cp, ok := c.rt.(checkpointer)
	if !ok {
		return fmt.Errorf("checkpoint container %s: this shim's runtime cannot checkpoint: %w", id, errdefs.ErrNotImplemented)
	}
	c.ops.Lock()
	defer c.ops.Unlock()
	if st := c.state(); st.Status != shim.StatusRunning || c.hasExited() {
		return fmt.Errorf("checkpoint container %s: it is %s, not running: %w", id, st.Status, errdefs.ErrFailedPrecondition)
	}
	s.reaper.hold(func() { err = cp.Checkpoint(ctx, imagesDir, workDir, leaveRunning) })
	if err != nil {
		c.log.Warn("checkpoint failed", corelog.Error(err))
		return err
	}
	c.log.Info("container checkpointed", corelog.String("images_dir", imagesDir), corelog.Bool("leave_running", leaveRunning))
	return nil
}
