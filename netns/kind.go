package netns

import (
	"fmt"

	"github.com/containerd/errdefs"
)

// Kind names a namespace type the way /proc/<pid>/ns/<kind> does.
type Kind string

// The namespaces a pod can share among its containers and that NewPinned can create.
const (
	Net Kind = "net"
	IPC Kind = "ipc"
	UTS Kind = "uts"
	// User is a pod's own user namespace (NewPinnedInUserNamespace), which owns its other
	// namespaces. It is pinned like them but never entered with Do: a multithreaded process
	// cannot join a user namespace.
	User Kind = "user"
)

// PodKinds returns the namespaces a pod with no host namespaces owns: net, ipc and uts.
func PodKinds() []Kind { return []Kind{Net, IPC, UTS} }

func (k Kind) valid() error {
	switch k {
	case Net, IPC, UTS:
		return nil
	}
	return fmt.Errorf("namespace kind %q (want net, ipc or uts): %w", string(k), errdefs.ErrInvalidArgument)
}
