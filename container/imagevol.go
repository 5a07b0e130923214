package container

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/containerd/errdefs"
	"go.uber.org/zap"

	"github.com/peapod-runtime/peapod/internal/log"
	"github.com/peapod-runtime/peapod/volumes"
)

// resolveImageVolumes finds the image of each image volume the config asks for: like the
// container's own image, it must have been pulled already (the kubelet pulls it first and
// names it by the id PullImage returned).
func (m *Manager) resolveImageVolumes(ctx context.Context, cfg Config) ([]ImageVolume, error) {
	var out []ImageVolume
	for i, mnt := range cfg.Mounts {
		if mnt.Image == "" {
			continue
		}
		id, err := m.opts.Images.Resolve(ctx, mnt.Image)
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				return nil, fmt.Errorf("image %q of the image volume at %s is not present on this node (pull it first): %w", mnt.Image, mnt.ContainerPath, errdefs.ErrNotFound)
			}
			return nil, fmt.Errorf("image volume at %s: %w", mnt.ContainerPath, err)
		}
		out = append(out, ImageVolume{Index: i, ImageID: id})
	}
	return out, nil
}

// mountImageVolumes holds (images.UseAsVolume) and mounts c's image volumes, and returns
// c's mounts with each image volume's HostPath set to what the container sees: its sub path
// in the mounted image. Mounts already there (a resumed create) are kept.
func (m *Manager) mountImageVolumes(ctx context.Context, c Container, usernsPath string) ([]volumes.Mount, error) {
	if len(c.ImageVolumes) == 0 {
		return c.Config.Mounts, nil
	}
	mounts := slices.Clone(c.Config.Mounts)
	for _, v := range c.ImageVolumes {
		if v.Index < 0 || v.Index >= len(mounts) {
			return nil, fmt.Errorf("image volume %d of %d mounts: %w", v.Index, len(mounts), errdefs.ErrInvalidArgument)
		}
		mnt := &mounts[v.Index]
		if err := m.opts.Images.UseAsVolume(ctx, v.ImageID, c.ID); err != nil {
			return nil, fmt.Errorf("hold the image volume %s at %s: %w", v.ImageID, mnt.ContainerPath, err)
		}
		layers, err := m.opts.Images.LayerPaths(ctx, v.ImageID)
		if err != nil {
			return nil, fmt.Errorf("image volume %s layers: %w", v.ImageID, err)
		}
		root, err := mountImageVolume(c.Dir, v.Index, layers, usernsPath)
		if err != nil {
			return nil, err
		}
		src, err := imageSubPath(root, mnt.ImageSubPath)
		if err != nil {
			return nil, fmt.Errorf("image volume at %s (image %s): %w", mnt.ContainerPath, v.ImageID, err)
		}
		mnt.HostPath = src
	}
	return mounts, nil
}

// releaseImageVolumes drops c's holds on its image volumes' images (their overlays go with
// the container's dir, see removeRootfs).
func (m *Manager) releaseImageVolumes(ctx context.Context, c Container) error {
	var errs []error
	for _, v := range c.ImageVolumes {
		if err := m.opts.Images.ReleaseVolume(ctx, v.ImageID, c.ID); err != nil {
			errs = append(errs, err)
			log.From(ctx).Error("release image volume", zap.String(log.KeyImage, v.ImageID), zap.Error(err))
		}
	}
	return errors.Join(errs...)
}
