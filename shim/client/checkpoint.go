package client

import (
	"context"

	"github.com/peapod-runtime/peapod/shim/wire"
)

// Checkpoint has the shim dump running container id with CRIU: its images into imagesDir,
// CRIU's log (dump.log) into workDir. With leaveRunning the container goes on running.
// What CRIU cannot do on this node is errdefs.ErrFailedPrecondition with CRIU's reason.
func (c *Client) Checkpoint(ctx context.Context, id, imagesDir, workDir string, leaveRunning bool) error {
	req := wire.CheckpointRequest{ID: id, ImagesDir: imagesDir, WorkDir: workDir, LeaveRunning: leaveRunning}
	return c.err("checkpoint", c.unary(ctx, wire.MethodCheckpoint, req, nil))
}
