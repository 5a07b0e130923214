package spec

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// KnownCapabilities lists every Linux capability by number (index = capability number).
func KnownCapabilities() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
		"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
		"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
		"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
		"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
		"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
		"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
		"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
		"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
	}
}

// DefaultCapabilities is the runtime default set of an unprivileged container: the 14 that
// Docker, containerd and CRI-O grant.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
		"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
}

// Capabilities is the CRI's capability request.
type Capabilities struct {
	// Add and Drop take names with or without the CAP_ prefix, in any case, or "ALL".
	Add  []string
	Drop []string
	// AddAmbient are raised into the ambient set as well (so a non-root process keeps them
	// across execve).
	AddAmbient []string
}

// NormalizeCapability turns "net_admin", "NET_ADMIN" or "cap_net_admin" into "CAP_NET_ADMIN";
// an unknown name is ErrInvalidArgument.
func NormalizeCapability(name string) (string, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	if !slices.Contains(KnownCapabilities(), n) {
		return "", fmt.Errorf("unknown capability %q: %w", name, errdefs.ErrInvalidArgument)
	}
	return n, nil
}

// ResolveCapabilities computes a container's capability sets.
//
// host is what the daemon itself holds (HostCapabilities); nil means "not known", and then
// nothing is checked against it. The base set is the runtime default (limited to host), or
// all of host for a privileged container, which ignores Add and Drop like containerd and the
// kubelet expect. "ALL" in Add means all of host; "ALL" in Drop empties the set; both are
// applied before the named entries, so Drop [ALL] + Add [NET_BIND_SERVICE] keeps exactly one.
// A named capability the daemon does not hold cannot be granted: ErrFailedPrecondition
// naming it, rather than an opaque libcontainer failure at start. Ambient capabilities are
// added to every set, and are the only inheritable ones; a later Drop of
// one removes it everywhere.
func ResolveCapabilities(req Capabilities, privileged bool, host []string) (*specs.LinuxCapabilities, error) {
	all := host
	if all == nil {
		all = KnownCapabilities()
	}
	set := map[string]bool{}
	if privileged {
		for _, c := range all {
			set[c] = true
		}
		return capSets(set, nil), nil
	}
	held := func(c string) bool { return host == nil || slices.Contains(host, c) }
	for _, c := range DefaultCapabilities() {
		if held(c) {
			set[c] = true
		}
	}
	var add, drop, ambient []string
	for _, list := range []struct {
		in  []string
		out *[]string
	}{{req.Add, &add}, {req.Drop, &drop}, {req.AddAmbient, &ambient}} {
		for _, name := range list.in {
			if strings.EqualFold(name, "ALL") && list.out != &ambient {
				*list.out = append(*list.out, "ALL")
				continue
			}
			c, err := NormalizeCapability(name)
			if err != nil {
				return nil, err
			}
			*list.out = append(*list.out, c)
		}
	}
	if slices.Contains(add, "ALL") {
		for _, c := range all {
			set[c] = true
		}
	}
	if slices.Contains(drop, "ALL") {
		clear(set)
	}
	for _, c := range append(slices.Clone(add), ambient...) {
		if c == "ALL" {
			continue
		}
		if !held(c) {
			return nil, fmt.Errorf("capability %s is not held by peapod on this node, so a container cannot get it: %w", c, errdefs.ErrFailedPrecondition)
		}
		set[c] = true
	}
	for _, c := range drop {
		delete(set, c)
	}
	amb := map[string]bool{}
	for _, c := range ambient {
		amb[c] = set[c] // an ambient capability outside the permitted set is refused by the kernel
	}
	return capSets(set, amb), nil
}

func capSets(set, ambient map[string]bool) *specs.LinuxCapabilities {
	var list, amb []string
	for _, c := range KnownCapabilities() { // capability order, for stable specs
		if set[c] {
			list = append(list, c)
		}
		if ambient[c] {
			amb = append(amb, c)
		}
	}
	return &specs.LinuxCapabilities{
		Bounding:    list,
		Effective:   slices.Clone(list),
		Permitted:   slices.Clone(list),
		Inheritable: amb,
		Ambient:     slices.Clone(amb),
	}
}

// ParseProcStatusCapabilities reads a /proc/<pid>/status and returns the capabilities present
// in both its bounding (CapBnd) and permitted (CapPrm) sets: what that process can hand to a
// child. Bits beyond the known capabilities are ignored.
func ParseProcStatusCapabilities(r io.Reader) ([]string, error) {
	var bnd, prm uint64
	var haveBnd, havePrm bool
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch key {
		case "CapBnd", "CapPrm":
			v, err := strconv.ParseUint(strings.TrimSpace(val), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("parse %s %q: %w", key, val, err)
			}
			if key == "CapBnd" {
				bnd, haveBnd = v, true
			} else {
				prm, havePrm = v, true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !haveBnd {
		return nil, fmt.Errorf("no CapBnd line in status")
	}
	mask := bnd
	if havePrm {
		mask &= prm
	}
	var out []string
	for i, name := range KnownCapabilities() {
		if mask&(1<<uint(i)) != 0 {
			out = append(out, name)
		}
	}
	return out, nil
}
