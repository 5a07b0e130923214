//go:build !linux

package netns

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
)

var errNotLinux = fmt.Errorf("namespaces need Linux: %w", errdefs.ErrNotImplemented)

// NewPinned is Linux-only.
func NewPinned(context.Context, string, string, ...Kind) (map[Kind]string, error) {
	return nil, errNotLinux
}

// NewPinnedInUserNamespace is Linux-only.
func NewPinnedInUserNamespace(context.Context, string, string, IDMapping, ...Kind) (map[Kind]string, error) {
	return nil, errNotLinux
}

// Remove is Linux-only.
func Remove(string) error { return errNotLinux }

// RemoveAll is Linux-only.
func RemoveAll(string) error { return errNotLinux }

// IsPinned is Linux-only.
func IsPinned(string) (bool, error) { return false, errNotLinux }

// Load is Linux-only.
func Load(string) (map[Kind]string, error) { return nil, errNotLinux }

// Do is Linux-only.
func Do(string, func() error) error { return errNotLinux }

// DoAll is Linux-only.
func DoAll(map[Kind]string, func() error) error { return errNotLinux }

// SetSysctls is Linux-only.
func SetSysctls(context.Context, map[Kind]string, map[string]string) error { return errNotLinux }
