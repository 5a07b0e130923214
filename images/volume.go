package images

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
)

// UseAsVolume records that container containerID mounts image id (a full id, as Resolve
// returns it) as an image volume. Unlike Use, which lets a Remove take the image's names and
// keeps its content for the container, this makes Remove refuse the image: the kubelet
// mounts an image volume by the id PullImage returned and expects the image listed while a
// container shows its files. Calling it twice is fine; an image that is not stored (or was
// removed) is errdefs.ErrNotFound.
func (s *Service) UseAsVolume(ctx context.Context, id, containerID string) error {
	if containerID == "" {
		return fmt.Errorf("use image %s as a volume: empty container id: %w", id, errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.record(id)
	if r == nil || r.Removed {
		return fmt.Errorf("image %q: %w", id, errdefs.ErrNotFound)
	}
	if slices.Contains(r.VolumeUsers, containerID) {
		return nil
	}
	n := r.clone()
	n.VolumeUsers = append(n.VolumeUsers, containerID)
	slices.Sort(n.VolumeUsers)
	if err := s.db.Put(imagesBucket, n.ID, n); err != nil {
		return fmt.Errorf("image %s mounted by %s: %w", id, containerID, err)
	}
	s.images[n.ID] = n
	return nil
}

// ReleaseVolume undoes UseAsVolume. Releasing what is not used, or an unknown image,
// succeeds.
func (s *Service) ReleaseVolume(ctx context.Context, id, containerID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.record(id)
	if r == nil || !slices.Contains(r.VolumeUsers, containerID) {
		return nil
	}
	n := r.clone()
	n.VolumeUsers = slices.DeleteFunc(n.VolumeUsers, func(x string) bool { return x == containerID })
	if err := s.db.Put(imagesBucket, n.ID, n); err != nil {
		return fmt.Errorf("release image volume %s from %s: %w", id, containerID, err)
	}
	s.images[n.ID] = n
	return nil
}

// volumeInUse refuses the removal of an image that containers mount as an image volume.
func volumeInUse(r *record) error {
	if len(r.VolumeUsers) == 0 {
		return nil
	}
	users := r.VolumeUsers
	more := ""
	if len(users) > 3 {
		users, more = users[:3], fmt.Sprintf(" and %d more", len(r.VolumeUsers)-3)
	}
	return fmt.Errorf("image %s is mounted as an image volume by container %s%s: remove the container first: %w",
		r.ID, strings.Join(users, ", "), more, errdefs.ErrFailedPrecondition)
}
