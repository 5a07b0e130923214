package netns

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
)

// sysctlName is the syntax Kubernetes accepts for a sysctl name, with . or / as separator.
var sysctlName = regexp.MustCompile(`^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$`)

// normalizeSysctl returns name in dot form, the way Kubernetes does: in a name whose first
// separator is a slash ("net/ipv4/conf/eth0.100/forwarding") dots and slashes swap places
// ("net.ipv4.conf.eth0/100.forwarding"), so a slash left in the dot form is a literal dot.
func normalizeSysctl(name string) string {
	i := strings.IndexAny(name, "./")
	if i == -1 || name[i] == '.' {
		return name
	}
	return swapDotsAndSlashes(name)
}

func swapDotsAndSlashes(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, s)
}

// sysctlKind returns the namespace that owns the sysctl (in dot form), following the list the
// kubelet uses (k8s.io/component-helpers/node/util/sysctl): kernel.shm*, kernel.msg*,
// kernel.sem and fs.mqueue.* belong to the ipc namespace, net.* to the network namespace.
func sysctlKind(name string) (Kind, bool) {
	switch {
	case name == "kernel.sem",
		strings.HasPrefix(name, "kernel.shm"),
		strings.HasPrefix(name, "kernel.msg"),
		strings.HasPrefix(name, "fs.mqueue."):
		return IPC, true
	case strings.HasPrefix(name, "net."):
		return Net, true
	}
	return "", false
}

// sysctlPath returns the file under /proc/sys for a sysctl in dot form.
func sysctlPath(name string) string {
	return "/proc/sys/" + swapDotsAndSlashes(name)
}

// ValidateSysctl checks that a pod may set the sysctl name: a well-formed name (dots or
// slashes as separators, as Kubernetes accepts), owned by the pod's network or ipc namespace,
// and that namespace not the node's. Anything else is ErrInvalidArgument.
func ValidateSysctl(name string, hostNetwork, hostIPC bool) error {
	_, err := resolveSysctl(name, hostNetwork, hostIPC)
	return err
}

func resolveSysctl(name string, hostNetwork, hostIPC bool) (Kind, error) {
	if len(name) > 253 || !sysctlName.MatchString(name) {
		return "", fmt.Errorf("sysctl %q: not a valid sysctl name: %w", name, errdefs.ErrInvalidArgument)
	}
	kind, ok := sysctlKind(normalizeSysctl(name))
	switch {
	case !ok:
		return "", fmt.Errorf("sysctl %q is not namespaced, so a pod may not set it: %w", name, errdefs.ErrInvalidArgument)
	case kind == Net && hostNetwork:
		return "", fmt.Errorf("sysctl %q belongs to the network namespace, which a hostNetwork pod shares with the node: %w", name, errdefs.ErrInvalidArgument)
	case kind == IPC && hostIPC:
		return "", fmt.Errorf("sysctl %q belongs to the ipc namespace, which a hostIPC pod shares with the node: %w", name, errdefs.ErrInvalidArgument)
	}
	return kind, nil
}
