package container

import (
	"context"
	"fmt"
)

// ShimStats is what a pod's shim says of itself: for the daemon's debug endpoint, where the
// leak tests read it from outside.
type ShimStats struct {
	PID        int `json:"pid"`
	Goroutines int `json:"goroutines"`
}

// ShimStats asks the pod's running shim for its figures; ErrUnavailable when it has none.
func (m *Manager) ShimStats(ctx context.Context, podID string) (ShimStats, error) {
	client, err := m.shims.client(ctx, podID)
	if err != nil {
		return ShimStats{}, err
	}
	info, err := client.Info(ctx)
	if err != nil {
		return ShimStats{}, fmt.Errorf("pod %s shim info: %w", podID, err)
	}
	return ShimStats{PID: info.Pid, Goroutines: info.Goroutines}, nil
}
