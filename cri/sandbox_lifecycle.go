package cri

import (
	"context"
)

// stopSandbox stops a pod's containers, then the pod itself.
func (s *Server) stopSandbox(ctx context.Context, id string) error {
	return s.opts.Sandboxes.Stop(ctx, id)
}

// removeSandbox removes a pod's containers, then the pod itself.
func (s *Server) removeSandbox(ctx context.Context, id string) error {
	return s.opts.Sandboxes.Remove(ctx, id)
}
