//go:build !linux

package shim

import (
	"fmt"
	"os"

	"github.com/containerd/errdefs"
)

// OpenLogFile needs openat2 and O_PATH: containers run on Linux only.
func OpenLogFile(root, rel string) (*os.File, error) {
	return nil, fmt.Errorf("open log %q in %s: %w", rel, root, errdefs.ErrNotImplemented)
}
