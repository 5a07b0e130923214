package netns

import (
	"fmt"
	"math"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// IDMapping is a user namespace's uid and gid maps: one range each, in the runtime spec's
// terms (container id, host id, size).
type IDMapping struct {
	UIDs []specs.LinuxIDMapping `json:"uids"`
	GIDs []specs.LinuxIDMapping `json:"gids"`
}

// Validate checks what the kernel would refuse or what would leave the namespace useless:
// exactly one range each (what the CRI allows), not empty, within 32 bits, and container id
// 0 mapped (a pod whose root has no id cannot set up its containers).
func (m IDMapping) Validate() error {
	for _, set := range []struct {
		name string
		maps []specs.LinuxIDMapping
	}{{"uid", m.UIDs}, {"gid", m.GIDs}} {
		if len(set.maps) != 1 {
			return fmt.Errorf("user namespace needs exactly one %s mapping, got %d: %w", set.name, len(set.maps), errdefs.ErrInvalidArgument)
		}
		r := set.maps[0]
		if r.Size == 0 {
			return fmt.Errorf("user namespace %s mapping of length 0: %w", set.name, errdefs.ErrInvalidArgument)
		}
		if uint64(r.ContainerID)+uint64(r.Size) > math.MaxUint32 || uint64(r.HostID)+uint64(r.Size) > math.MaxUint32 {
			return fmt.Errorf("user namespace %s mapping %d:%d:%d goes past 2^32-1: %w", set.name, r.ContainerID, r.HostID, r.Size, errdefs.ErrInvalidArgument)
		}
		if r.ContainerID != 0 {
			return fmt.Errorf("user namespace %s mapping %d:%d:%d leaves container %s 0 (root) unmapped: %w", set.name, r.ContainerID, r.HostID, r.Size, set.name, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// RootIDs are the host uid and gid that container root maps to.
func (m IDMapping) RootIDs() (uid, gid uint32) {
	if len(m.UIDs) > 0 {
		uid = m.UIDs[0].HostID
	}
	if len(m.GIDs) > 0 {
		gid = m.GIDs[0].HostID
	}
	return uid, gid
}
