//go:build !linux

package images

import (
	"archive/tar"
	"context"
	"fmt"
	"io"

	"github.com/containerd/errdefs"
)

type applier struct{}

func newApplier(ctx context.Context, dest string, budget *layerBudget) (*applier, error) {
	return nil, fmt.Errorf("unpack layers: %w", errdefs.ErrNotImplemented)
}

func (a *applier) close()                                   {}
func (a *applier) entry(hdr *tar.Header, r io.Reader) error { return errdefs.ErrNotImplemented }
func (a *applier) finish() error                            { return errdefs.ErrNotImplemented }
