//go:build !linux

package stats

import (
	"fmt"

	"github.com/containerd/errdefs"
)

func statFS(string, *Disk) error {
	return fmt.Errorf("filesystem statistics need Linux: %w", errdefs.ErrNotImplemented)
}

type deviceNames struct{ sysDev, mounts string }

func newDeviceNames() *deviceNames { return &deviceNames{} }

func (*deviceNames) name(major, minor uint64) string { return fmt.Sprintf("%d:%d", major, minor) }
