package sandbox

import (
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
)

// The pod CIDR's place in the store: one key of its own, apart from the pod records.
const (
	runtimeBucket = "runtime"
	podCIDRKey    = "pod_cidr"
)

// SetPodCIDR persists the node's pod CIDR (one or more comma-separated CIDRs, already
// validated) as the kubelet hands it down through UpdateRuntimeConfig; it survives restarts.
func (m *Manager) SetPodCIDR(cidr string) error {
	if err := m.db.Put(runtimeBucket, podCIDRKey, cidr); err != nil {
		return fmt.Errorf("store pod CIDR: %w", err)
	}
	return nil
}

// PodCIDR is the last pod CIDR SetPodCIDR stored, "" when none ever was.
func (m *Manager) PodCIDR() (string, error) {
	var cidr string
	if err := m.db.Get(runtimeBucket, podCIDRKey, &cidr); err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return "", nil
		}
		return "", fmt.Errorf("read pod CIDR: %w", err)
	}
	return cidr, nil
}
