package spec

import (
	_ "embed" // the default seccomp profile is built into the binary
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultSeccompJSON is peapod's RuntimeDefault seccomp profile, in the Docker/Kubernetes
// profile format so that it goes through the same conversion as a node's Localhost profiles.
// It allows what ordinary programs need on amd64 and arm64 and returns EPERM for the rest;
// the syscalls that reach beyond a container (namespaces, mounts, keyrings, bpf, ptrace,
// modules, kexec, reboot, clock setting...) are allowed only when the container holds the
// capability that makes them meaningful. It is read-only data, set once by the compiler.
//
//go:embed seccomp_default.json
var defaultSeccompJSON []byte

// ProfileType is a CRI SecurityProfile's type.
type ProfileType int

// The CRI profile types, same values as the CRI enum.
const (
	ProfileRuntimeDefault ProfileType = iota
	ProfileUnconfined
	ProfileLocalhost
)

// SecurityProfile is a seccomp or AppArmor choice. For seccomp, LocalhostRef is the absolute
// path of a JSON profile on the node; for AppArmor, the name of a loaded profile.
type SecurityProfile struct {
	Type         ProfileType
	LocalhostRef string
}

// ParseLegacyProfile reads the deprecated string form of a profile: "runtime/default" or
// "docker/default", "unconfined", "localhost/<ref>". The empty string means "not set" (nil).
func ParseLegacyProfile(s string) (*SecurityProfile, error) {
	switch {
	case s == "":
		return nil, nil
	case s == "runtime/default" || s == "docker/default":
		return &SecurityProfile{Type: ProfileRuntimeDefault}, nil
	case s == "unconfined":
		return &SecurityProfile{Type: ProfileUnconfined}, nil
	case strings.HasPrefix(s, "localhost/"):
		return &SecurityProfile{Type: ProfileLocalhost, LocalhostRef: strings.TrimPrefix(s, "localhost/")}, nil
	}
	return nil, fmt.Errorf("unknown security profile %q: %w", s, errdefs.ErrInvalidArgument)
}

// Platform is what a seccomp profile's conditional rules are matched against.
type Platform struct {
	// Arch is the Go architecture name of the node ("amd64", "arm64"...).
	Arch string
	// Kernel is the node's kernel version as (major, minor), for minKernel conditions.
	Kernel [2]int
}

// Seccomp resolves a container's seccomp profile. Privileged containers and Unconfined get
// none (nil); RuntimeDefault gets peapod's built-in profile; Localhost reads a JSON profile
// (OCI LinuxSeccomp or the Docker/Kubernetes format) from the absolute path in LocalhostRef.
// caps is the container's capability bounding set, which selects the capability-gated rules.
// A nil profile is unconfined, as the kubelet means it when it sends none.
func Seccomp(sp *SecurityProfile, privileged bool, caps []string, p Platform) (*specs.LinuxSeccomp, error) {
	if sp == nil || privileged {
		return nil, nil
	}
	switch sp.Type {
	case ProfileUnconfined:
		return nil, nil
	case ProfileRuntimeDefault:
		return DefaultSeccomp(caps, p)
	case ProfileLocalhost:
		return LoadSeccompProfile(sp.LocalhostRef, caps, p)
	}
	return nil, fmt.Errorf("unknown seccomp profile type %d: %w", int(sp.Type), errdefs.ErrInvalidArgument)
}

// DefaultSeccomp returns peapod's built-in profile for a container holding caps.
func DefaultSeccomp(caps []string, p Platform) (*specs.LinuxSeccomp, error) {
	sc, err := ConvertSeccompProfile(defaultSeccompJSON, caps, p)
	if err != nil {
		return nil, fmt.Errorf("built-in seccomp profile: %w", err)
	}
	return sc, nil
}

// LoadSeccompProfile reads a node's profile file. The path must be absolute; a missing file or
// invalid JSON is ErrInvalidArgument naming the path.
func LoadSeccompProfile(path string, caps []string, p Platform) (*specs.LinuxSeccomp, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("seccomp profile path %q is not absolute: %w", path, errdefs.ErrInvalidArgument)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("seccomp profile %s does not exist: %w", path, errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("read seccomp profile %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	sc, err := ConvertSeccompProfile(data, caps, p)
	if err != nil {
		return nil, fmt.Errorf("seccomp profile %s: %w", path, err)
	}
	return sc, nil
}

// seccompProfile is the union of the OCI LinuxSeccomp JSON and the Docker/Kubernetes profile
// format (archMap, per-rule includes/excludes, the old single "name").
type seccompProfile struct {
	DefaultAction    specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet  *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures    []specs.Arch             `json:"architectures,omitempty"`
	ArchMap          []seccompArchMap         `json:"archMap,omitempty"`
	Flags            []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	ListenerPath     string                   `json:"listenerPath,omitempty"`
	ListenerMetadata string                   `json:"listenerMetadata,omitempty"`
	Syscalls         []seccompRule            `json:"syscalls,omitempty"`
}

type seccompArchMap struct {
	Arch      specs.Arch   `json:"architecture"`
	SubArches []specs.Arch `json:"subArchitectures"`
}

type seccompRule struct {
	Name     string                   `json:"name,omitempty"`
	Names    []string                 `json:"names,omitempty"`
	Action   specs.LinuxSeccompAction `json:"action"`
	ErrnoRet *uint                    `json:"errnoRet,omitempty"`
	Args     []specs.LinuxSeccompArg  `json:"args,omitempty"`
	Comment  string                   `json:"comment,omitempty"`
	Includes *seccompFilter           `json:"includes,omitempty"`
	Excludes *seccompFilter           `json:"excludes,omitempty"`
}

type seccompFilter struct {
	Arches    []string `json:"arches,omitempty"`
	Caps      []string `json:"caps,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

// ConvertSeccompProfile parses a profile in OCI or Docker/Kubernetes JSON and returns the OCI
// filter for a container holding caps on platform p: rules whose includes do not all hold
// (arches, every listed cap, minKernel) or whose excludes match (arch, any listed cap) are
// dropped; architectures come from "architectures" or, failing that, from the archMap entry
// of the node's architecture. Malformed input is ErrInvalidArgument.
func ConvertSeccompProfile(data []byte, caps []string, p Platform) (*specs.LinuxSeccomp, error) {
	var prof seccompProfile
	if err := json.Unmarshal(data, &prof); err != nil {
		return nil, fmt.Errorf("invalid seccomp JSON: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if !validAction(prof.DefaultAction) {
		return nil, fmt.Errorf("invalid seccomp defaultAction %q: %w", prof.DefaultAction, errdefs.ErrInvalidArgument)
	}
	out := &specs.LinuxSeccomp{
		DefaultAction:    prof.DefaultAction,
		DefaultErrnoRet:  prof.DefaultErrnoRet,
		Architectures:    prof.Architectures,
		Flags:            prof.Flags,
		ListenerPath:     prof.ListenerPath,
		ListenerMetadata: prof.ListenerMetadata,
	}
	if len(out.Architectures) == 0 {
		native := scmpArch(p.Arch)
		for _, m := range prof.ArchMap {
			if m.Arch == native {
				out.Architectures = append([]specs.Arch{m.Arch}, m.SubArches...)
			}
		}
	}
	for i, r := range prof.Syscalls {
		names := slices.Clone(r.Names)
		if r.Name != "" {
			names = append(names, r.Name)
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("seccomp rule %d names no syscall: %w", i, errdefs.ErrInvalidArgument)
		}
		if !validAction(r.Action) {
			return nil, fmt.Errorf("seccomp rule %d (%s): invalid action %q: %w", i, names[0], r.Action, errdefs.ErrInvalidArgument)
		}
		applies, err := ruleApplies(r, caps, p)
		if err != nil {
			return nil, fmt.Errorf("seccomp rule %d (%s): %w", i, names[0], err)
		}
		if !applies {
			continue
		}
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{Names: names, Action: r.Action, ErrnoRet: r.ErrnoRet, Args: r.Args})
	}
	return out, nil
}

func ruleApplies(r seccompRule, caps []string, p Platform) (bool, error) {
	if in := r.Includes; in != nil {
		if len(in.Arches) > 0 && !slices.Contains(in.Arches, p.Arch) {
			return false, nil
		}
		for _, c := range in.Caps {
			if !slices.Contains(caps, c) {
				return false, nil
			}
		}
		if in.MinKernel != "" {
			min, err := parseKernel(in.MinKernel)
			if err != nil {
				return false, err
			}
			if p.Kernel[0] < min[0] || (p.Kernel[0] == min[0] && p.Kernel[1] < min[1]) {
				return false, nil
			}
		}
	}
	if ex := r.Excludes; ex != nil {
		if slices.Contains(ex.Arches, p.Arch) {
			return false, nil
		}
		for _, c := range ex.Caps {
			if slices.Contains(caps, c) {
				return false, nil
			}
		}
	}
	return true, nil
}

// parseKernel reads "major.minor[.anything]".
func parseKernel(v string) ([2]int, error) {
	majorS, rest, _ := strings.Cut(v, ".")
	minorS, _, _ := strings.Cut(rest, ".")
	minorS = strings.TrimRightFunc(minorS, func(r rune) bool { return r < '0' || r > '9' })
	major, err1 := strconv.Atoi(majorS)
	minor, err2 := strconv.Atoi(minorS)
	if err1 != nil || err2 != nil {
		return [2]int{}, fmt.Errorf("invalid kernel version %q: %w", v, errdefs.ErrInvalidArgument)
	}
	return [2]int{major, minor}, nil
}

func validAction(a specs.LinuxSeccompAction) bool {
	switch a {
	case specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap, specs.ActErrno,
		specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify:
		return true
	}
	return false
}

// scmpArch maps a Go architecture name to libseccomp's.
func scmpArch(goarch string) specs.Arch {
	switch goarch {
	case "amd64":
		return specs.ArchX86_64
	case "386":
		return specs.ArchX86
	case "arm64":
		return specs.ArchAARCH64
	case "arm":
		return specs.ArchARM
	case "ppc64le":
		return specs.ArchPPC64LE
	case "s390x":
		return specs.ArchS390X
	case "riscv64":
		return specs.ArchRISCV64
	case "loong64":
		return specs.ArchLOONGARCH64
	case "mips64le":
		return specs.ArchMIPSEL64
	}
	return ""
}
