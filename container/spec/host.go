package spec

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/peapod-runtime/peapod/volumes"
)

// WantNoFile is the RLIMIT_NOFILE containers get where the node allows it (what Docker and
// containerd's systemd unit give).
const WantNoFile uint64 = 1048576

// Host is what Generate needs to know about the node and the daemon. Probe it once at start
// with ProbeHost; tests build it by hand.
type Host struct {
	// Capabilities the daemon can hand to a child (bounding ∩ permitted): "all capabilities"
	// for a privileged container, and the ceiling for everyone else.
	Capabilities []string
	// NoFileLimit is the containers' RLIMIT_NOFILE (soft = hard); 0 leaves the inherited one.
	NoFileLimit uint64
	// OOMScoreAdjFloor, when set, is the lowest oom_score_adj a container gets: without
	// CAP_SYS_RESOURCE the kernel refuses anything below the daemon's own, and libcontainer
	// then fails opaquely. ProbeHost sets it when the capability is missing; a config switch
	// may clear it.
	OOMScoreAdjFloor *int
	// AppArmor is on; AppArmorDefault is the loaded profile RuntimeDefault means ("" if none);
	// AppArmorProfileExists checks Localhost names (nil: LoadedAppArmorProfile).
	AppArmor              bool
	AppArmorDefault       string
	AppArmorProfileExists func(string) (bool, error)
	// RecursiveReadOnly says the kernel can do "rro" mounts.
	RecursiveReadOnly bool
	// DevDir is where privileged containers' devices come from ("" means /dev).
	DevDir string
	// Platform selects architecture- and kernel-specific seccomp rules.
	Platform Platform
	// MountLookup finds a host path's mount for propagation checks (nil: the real table).
	MountLookup volumes.MountLookup
	// CDISpecDirs are where CDI device specs are read from (nil: DefaultCDISpecDirs).
	CDISpecDirs []string
}

// ProbeHost reads the facts about this node and this process.
func ProbeHost() (Host, error) {
	h := Host{
		AppArmor:          AppArmorEnabled(),
		RecursiveReadOnly: volumes.RecursiveReadOnlySupported(),
		DevDir:            "/dev",
		Platform:          Platform{Arch: runtime.GOARCH},
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return Host{}, fmt.Errorf("read own capabilities: %w", err)
	}
	h.Capabilities, err = ParseProcStatusCapabilities(f)
	_ = f.Close()
	if err != nil {
		return Host{}, fmt.Errorf("read own capabilities: %w", err)
	}
	sysResource := slices.Contains(h.Capabilities, "CAP_SYS_RESOURCE")
	if h.NoFileLimit, err = NoFileLimit(sysResource); err != nil {
		return Host{}, err
	}
	if !sysResource {
		own, err := OwnOOMScoreAdj()
		if err != nil {
			return Host{}, err
		}
		h.OOMScoreAdjFloor = &own
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		if v, err := parseKernel(unix.ByteSliceToString(u.Release[:])); err == nil {
			h.Platform.Kernel = v
		}
	}
	return h, nil
}

// NoFileLimit is the RLIMIT_NOFILE containers can be given: WantNoFile when this process's
// hard limit allows it, or when it holds CAP_SYS_RESOURCE and the kernel's fs.nr_open does;
// otherwise this process's own hard limit (on this VM 20000: higher fails without the
// capability).
func NoFileLimit(hasSysResource bool) (uint64, error) {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	if rl.Max >= WantNoFile {
		return WantNoFile, nil
	}
	if hasSysResource {
		b, err := os.ReadFile("/proc/sys/fs/nr_open")
		if err == nil {
			if nrOpen, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
				return min(WantNoFile, nrOpen), nil
			}
		}
	}
	return rl.Max, nil
}

// OwnOOMScoreAdj is this process's oom_score_adj.
func OwnOOMScoreAdj() (int, error) {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0, fmt.Errorf("read own oom_score_adj: %w", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse own oom_score_adj %q: %w", b, err)
	}
	return v, nil
}
