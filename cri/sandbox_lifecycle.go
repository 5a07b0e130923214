package cri

import (
	"context"
)

// stopSandbox stops a pod's containers, then the pod itself, with new containers held out
// of it meanwhile.
func (s *Server) stopSandbox(ctx context.Context, id string) error {
	sb, err := s.opts.Sandboxes.Get(id)
	if err != nil {
		return err
	}
	release, err := s.opts.Containers.HoldPod(ctx, sb.ID)
	if err != nil {
		return err
	}
	defer release()
	if err := s.opts.Containers.StopPod(ctx, sb.ID); err != nil {
		return err
	}
	return s.opts.Sandboxes.Stop(ctx, sb.ID)
}

// removeSandbox removes a pod's containers, then the pod itself, with new containers held
// out of it meanwhile.
func (s *Server) removeSandbox(ctx context.Context, id string) error {
	sb, err := s.opts.Sandboxes.Get(id)
	if err != nil {
		return err
	}
	release, err := s.opts.Containers.HoldPod(ctx, sb.ID)
	if err != nil {
		return err
	}
	defer release()
	if err := s.opts.Containers.RemovePod(ctx, sb.ID); err != nil {
		return err
	}
	return s.opts.Sandboxes.Remove(ctx, sb.ID)
}
