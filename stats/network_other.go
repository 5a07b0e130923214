//go:build !linux

package stats

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// ReadNetwork is Linux-only.
func ReadNetwork(string) ([]Interface, error) {
	return nil, fmt.Errorf("network namespaces need Linux: %w", errdefs.ErrNotImplemented)
}

// ReadHostNetwork needs Linux.
func ReadHostNetwork() ([]Interface, error) {
	return nil, fmt.Errorf("network namespaces need Linux: %w", errdefs.ErrNotImplemented)
}
