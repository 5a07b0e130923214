//go:build !linux

package images

import (
	"fmt"
	"io/fs"

	"github.com/containerd/errdefs"
)

func syncFS(dir string) error {
	return fmt.Errorf("syncfs %s: %w", dir, errdefs.ErrNotImplemented)
}

func statOf(fi fs.FileInfo) (ino, blocks, nlink uint64) {
	return 0, uint64(fi.Size()+511) / 512, 1
}

func fsSpace(dir string) (free, size int64, err error) {
	return 0, 0, fmt.Errorf("statfs %s: %w", dir, errdefs.ErrNotImplemented)
}
