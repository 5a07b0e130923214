package spec

import (
	"fmt"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// NamespaceMode says whose namespace a container uses; same values as the CRI enum.
type NamespaceMode int

// The CRI namespace modes.
const (
	// ModePod: the pod's namespace (a pinned path, or the pod's PID holder).
	ModePod NamespaceMode = iota
	// ModeContainer: a new namespace of the container's own.
	ModeContainer
	// ModeNode: the node's namespace (no entry in the spec).
	ModeNode
	// ModeTarget: another container's namespace (PID only).
	ModeTarget
)

// Namespace is one namespace choice. Path is the namespace file to join (a pinned
// /run/peapod/ns/<pod>/net, or /proc/<pid>/ns/pid) for ModePod and ModeTarget.
type Namespace struct {
	Mode NamespaceMode
	Path string
}

// Namespaces are a container's namespace choices. The mount namespace is always new.
type Namespaces struct {
	Network Namespace
	IPC     Namespace
	// UTS follows the pod: its pinned namespace, or the node's for a hostNetwork pod.
	UTS Namespace
	PID Namespace
	// Cgroup gives the container its own cgroup namespace (what cgroup v2 nodes do).
	Cgroup bool
	// User is the pod's user namespace; the zero value is the node's.
	User UserNamespace
}

// UserNamespace is a pod's own user namespace, which its containers join: Path pins it, and
// container root is RootUID:RootGID on the host.
type UserNamespace struct {
	Path             string
	RootUID, RootGID uint32
}

// WithNamespaces sets the namespaces: mount always new; network, IPC and UTS joined by path
// (ModePod), new (ModeContainer) or the node's (ModeNode, omitted); PID new, the pod's
// holder's or a target container's by path, or the node's. ModeTarget is only for PID, and
// ModePod and ModeTarget need a path: otherwise ErrInvalidArgument.
func WithNamespaces(ns Namespaces) Opt {
	return func(s *specs.Spec) error {
		list, err := NamespaceList(ns)
		if err != nil {
			return err
		}
		s.Linux.Namespaces = list
		return nil
	}
}

// NamespaceList is the spec's namespace list for ns; see WithNamespaces.
func NamespaceList(ns Namespaces) ([]specs.LinuxNamespace, error) {
	list := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	if ns.User.Path != "" {
		// libcontainer joins it first and reads the mapping from it: the spec carries no
		// mapping of its own.
		list = append(list, specs.LinuxNamespace{Type: specs.UserNamespace, Path: ns.User.Path})
	}
	for _, n := range []struct {
		typ    specs.LinuxNamespaceType
		choice Namespace
	}{
		{specs.NetworkNamespace, ns.Network},
		{specs.IPCNamespace, ns.IPC},
		{specs.UTSNamespace, ns.UTS},
		{specs.PIDNamespace, ns.PID},
	} {
		switch n.choice.Mode {
		case ModeNode:
			continue
		case ModeContainer:
			list = append(list, specs.LinuxNamespace{Type: n.typ})
		case ModeTarget:
			if n.typ != specs.PIDNamespace {
				return nil, fmt.Errorf("%s namespace: target mode is only for pid: %w", n.typ, errdefs.ErrInvalidArgument)
			}
			fallthrough
		case ModePod:
			if n.choice.Path == "" {
				return nil, fmt.Errorf("%s namespace: mode %d needs a namespace path: %w", n.typ, int(n.choice.Mode), errdefs.ErrInvalidArgument)
			}
			list = append(list, specs.LinuxNamespace{Type: n.typ, Path: n.choice.Path})
		default:
			return nil, fmt.Errorf("%s namespace: unknown mode %d: %w", n.typ, int(n.choice.Mode), errdefs.ErrInvalidArgument)
		}
	}
	if ns.Cgroup {
		list = append(list, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return list, nil
}
